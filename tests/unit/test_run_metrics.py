"""RunMetrics is the typed form of metrics.json: the layout other tools read must survive it."""

from __future__ import annotations

import json

import pytest

from glue_jobs.recommender.metrics import Baselines, Gate, Ranking, RunMetrics
from tests.sample_metrics import metrics_json

# The top-level keys of metrics.json that people, the report, QuickSight's SQL and the tools
# read by name (README "Outputs"): renaming one breaks them.
DOCUMENTED_KEYS = {
    "baselines", "best_params", "bias_reg_curve", "blend_curve", "catalog_coverage", "counts", "evaluated_users",
    "feedback", "grid",
    "input_format", "k", "mae", "map_at_k", "ndcg_at_k", "popularity_weight_curve", "precision_at_k",
    "quality_gate", "quarantine", "recall_at_k", "rmse", "run_id", "selection_metric", "spark",
    "timings_s", "top_n", "tuning",
}


@pytest.mark.parametrize("extra", [{}, {"dms_changes": {"I": 10, "U": 2, "D": 1}},
                                   {"published": {"aurora_rows": 1690, "dynamodb_items": 338}},
                                   {"task_s": {"recommend_scoring": 9.1}}])
def test_metrics_json_round_trips_through_the_typed_form(extra: dict[str, object]) -> None:
    doc = metrics_json(**extra)
    typed = RunMetrics.from_json(json.dumps(doc))
    assert json.loads(typed.to_json()) == doc
    assert set(typed.as_dict()) == DOCUMENTED_KEYS | set(extra)


def test_metrics_json_from_before_tuning_reuse_reads_as_a_run_that_tuned() -> None:
    doc = metrics_json()
    del doc["tuning"]
    typed = RunMetrics.from_dict(doc)
    assert typed.tuning.mode == "full" and not typed.tuning.reused and typed.tuning.reused_from is None


def test_metrics_json_from_before_the_blend_reads_as_an_unblended_run() -> None:
    doc = metrics_json()
    del doc["blend_curve"]
    del doc["best_params"]["blend_weight"]  # type: ignore[attr-defined]
    typed = RunMetrics.from_dict(doc)
    assert typed.best_params.blend_weight == 0.0 and typed.blend_curve == []
    assert typed.best_params.rank == 10 and typed.best_params.popularity_weight == 30.0


def test_metrics_json_from_before_similar_artists_reads_as_a_run_without_them() -> None:
    doc = metrics_json()
    counts = {k: v for k, v in doc["counts"].items() if k not in ("similar_artists", "similar_lists")}  # type: ignore[attr-defined]
    typed = RunMetrics.from_dict({**doc, "counts": counts})
    assert (typed.counts.similar_artists, typed.counts.similar_lists) == (0, 0)
    assert typed.counts.recommendations == 1690
    assert RunMetrics.from_dict(doc).counts.similar_artists == 9000


def test_a_reused_tuning_round_trips_with_the_run_it_came_from() -> None:
    doc = metrics_json(tuning={"mode": "reused", "reused_from": "20261129T160000Z-3f2a", "reason": "ratings +5.0%",
                               "tuned_ratings": 18900})
    typed = RunMetrics.from_json(json.dumps(doc))
    assert typed.tuning.reused and typed.tuning.reused_from == "20261129T160000Z-3f2a"
    assert json.loads(typed.to_json())["tuning"] == doc["tuning"]


def test_attributes_read_what_the_flat_keys_hold() -> None:
    typed = RunMetrics.from_dict(metrics_json())
    assert (typed.rmse, typed.ndcg_at_k, typed.baselines.bias_rmse) == (17.56, 0.117, 20.1)
    assert typed.baselines.popularity.precision_at_k == 0.029
    assert typed.best_params.rank == 10 and typed.counts.recommendations == 1690
    assert typed.quality_gate.below and typed.quality_gate.limit == 20.1


def test_implicit_runs_have_no_rating_errors_and_gate_from_above() -> None:
    gate = Gate(True, "ndcg_at_k", 0.2, "popularity_ndcg_at_k", 0.1, below=False)
    doc = metrics_json(feedback="implicit", rmse=None, mae=None, quality_gate=gate.as_dict(),
                       baselines=Baselines(popularity=Ranking(ndcg_at_k=0.1)).as_dict())
    typed = RunMetrics.from_dict(doc)
    assert typed.rmse is None and typed.baselines.bias_rmse is None
    assert json.loads(typed.to_json())["quality_gate"] == {
        "passed": True, "metric": "ndcg_at_k", "value": 0.2, "baseline": "popularity_ndcg_at_k",
        "must_be_above": 0.1}
    assert json.loads(typed.to_json())["baselines"]["popularity_ndcg_at_k"] == 0.1


def test_the_tuned_bias_shrinkage_round_trips_and_the_report_names_it() -> None:
    from glue_jobs.recommender import report

    doc = metrics_json(
        best_params={"rank": 10, "reg_param": 0.1, "popularity_weight": 30.0, "bias_reg": 100.0},
        grid=[{"rank": 0, "reg_param": 0.0, "rmse": 19.5}, {"rank": 10, "reg_param": 0.1, "rmse": 15.8}],
        bias_reg_curve=[{"bias_reg": 10.0, "rmse": 15.8, "bias_only_rmse": 19.5},
                        {"bias_reg": 100.0, "rmse": 15.0, "bias_only_rmse": 21.2}])
    doc["baselines"] = {**doc["baselines"], "bias_reg": 10.0}  # type: ignore[dict-item]
    metrics = RunMetrics.from_dict(json.loads(json.dumps(doc)))
    assert metrics.best_params.bias_reg == 100.0 and metrics.baselines.bias_reg == 10.0
    assert RunMetrics.from_json(metrics.to_json()) == metrics
    line = report.model_choice(metrics)
    assert "Biases shrunk by 100 (--bias-reg; rmse 15 against 15.8 at 10); the bias baseline's by 10." in line
    # A run from before: nothing recorded, nothing said, and it reads as shrinkage 10 nowhere.
    before = metrics_json(grid=doc["grid"], best_params={"rank": 10, "reg_param": 0.1, "popularity_weight": 30.0})
    del before["bias_reg_curve"]
    old = RunMetrics.from_dict(before)
    assert old.best_params.bias_reg is None and old.bias_reg_curve == [] and "Biases" not in report.model_choice(old)


def test_the_report_says_whether_the_ranking_blends_in_the_companion() -> None:
    from glue_jobs.recommender import report

    grid = [{"rank": 0, "reg_param": 0.0, "rmse": 19.5}, {"rank": 10, "reg_param": 0.1, "rmse": 15.8}]
    blended = RunMetrics.from_dict(metrics_json(grid=grid))  # blend weight 4, curve 0.03 -> 0.032
    assert ("The ranking blends in the implicit companion at weight 4 (--blend-weights; validation NDCG@10 0.032 "
            "against 0.03 unblended).") in report.model_choice(blended)
    params = {"rank": 10, "reg_param": 0.1, "popularity_weight": 30.0, "bias_reg": 30.0}
    lost = RunMetrics.from_dict(metrics_json(grid=grid, best_params=params, blend_curve=[
        {"blend_weight": 0.0, "popularity_weight": 30.0, "ndcg_at_k": 0.03},
        {"blend_weight": 1.0, "popularity_weight": 30.0, "ndcg_at_k": 0.029}]))
    assert "not blended" in report.model_choice(lost) and "blends in" not in report.model_choice(lost)
    unstaged = RunMetrics.from_dict(metrics_json(grid=grid, best_params=params, blend_curve=[]))
    assert "companion" not in report.model_choice(unstaged)
