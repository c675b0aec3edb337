"""A complete metrics.json of an explicit run, for tests that need one to change a field of."""

from __future__ import annotations


def metrics_json(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "run_id": "20261130T021148Z-90ea", "feedback": "explicit", "k": 10, "top_n": 5,
        "spark": {"master": "local[2]", "shuffle_partitions": 4}, "input_format": "r1",
        "quarantine": {"malformed_line": 3, "duplicate_pair": 0},
        "best_params": {"rank": 10, "reg_param": 0.1, "popularity_weight": 30.0, "bias_reg": 30.0,
                        "blend_weight": 4.0},
        "blend_curve": [{"blend_weight": 0.0, "popularity_weight": 30.0, "ndcg_at_k": 0.03},
                        {"blend_weight": 4.0, "popularity_weight": 30.0, "ndcg_at_k": 0.032}],
        "bias_reg_curve": [{"bias_reg": 10.0, "rmse": 17.9, "bias_only_rmse": 20.1},
                           {"bias_reg": 30.0, "rmse": 17.8, "bias_only_rmse": 20.3}],
        "grid": [{"rank": 10, "reg_param": 0.1, "rmse": 17.8}],
        "popularity_weight_curve": [{"popularity_weight": 0.0, "ndcg_at_k": 0.03}],
        "selection_metric": "rmse", "rmse": 17.56, "mae": 13.9, "precision_at_k": 0.045,
        "recall_at_k": 0.14, "ndcg_at_k": 0.117, "map_at_k": 0.07,
        "baselines": {"global_mean_rmse": 24.0, "global_mean_mae": 19.7, "bias_rmse": 20.1, "bias_mae": 16.2,
                      "popularity_precision_at_k": 0.029, "popularity_recall_at_k": 0.11,
                      "popularity_ndcg_at_k": 0.076, "popularity_map_at_k": 0.046, "bias_reg": 10.0},
        "evaluated_users": 232,
        "quality_gate": {"passed": True, "metric": "rmse", "value": 17.56, "baseline": "bias_rmse",
                         "must_be_below": 20.1},
        "catalog_coverage": 0.05,
        "counts": {"input_rows": 20100, "ratings": 19842, "users": 338, "items": 1409, "never_play_again": 158,
                   "train": 15979, "validation": 1971, "test": 1892, "quarantined": 100, "recommendations": 1690,
                   "similar_artists": 9000, "similar_lists": 900},
        "timings_s": {"tune": 22.1, "write": 2.5},
        "tuning": {"mode": "full", "reused_from": None, "reason": "--tuning full", "tuned_ratings": 19842},
    }
    doc.update(changes)
    return doc
