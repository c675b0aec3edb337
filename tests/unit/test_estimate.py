"""The R1 estimate's arithmetic (tools/estimate_r1.py), checked where the answer is known."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from glue_jobs.recommender.metrics import RunMetrics
from tests.sample_metrics import metrics_json

spec = importlib.util.spec_from_file_location(
    "estimate_r1", Path(__file__).resolve().parents[2] / "tools" / "estimate_r1.py")
assert spec and spec.loader
est = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = est  # dataclasses look their module up
spec.loader.exec_module(est)

TIMINGS = {"read_validate": 10.0, "split": 1.0, "tune": 100.0, "fit": 8.0, "evaluate": 6.0,
           "recommend": 4.0, "write": 2.0, "publish": 50.0}
METRICS = RunMetrics.from_dict(metrics_json(
    counts={"input_rows": 1_000_000, "ratings": 1_000_000, "users": 20_000, "items": 5_000, "never_play_again": 0,
            "train": 800_000, "validation": 100_000, "test": 100_000, "quarantined": 0, "recommendations": 100_000},
    grid=[{"rank": r, "reg_param": g, "rmse": 1.0} for r in (10, 20, 50) for g in (0.05, 0.1, 0.2)],
    best_params={"rank": 20, "reg_param": 0.1, "popularity_weight": 0.0},
    evaluated_users=15_000, spark={"master": "local[2]"}, timings_s=TIMINGS))


def test_als_flops_is_the_issue_formula() -> None:
    # 2 * nnz * k^2 + (users + items) * k^3 / 3
    assert est.als_flops(1000, 10, 20, 3) == 2 * 1000 * 9 + 30 * 27 / 3
    assert est.tuning_flops(1000, 10, 20, [3, 5], 2, 4) == pytest.approx(
        (est.als_flops(1000, 10, 20, 3) + est.als_flops(1000, 10, 20, 5)) * 2 * 4)


def test_the_measured_run_scaled_to_itself_costs_what_it_measured() -> None:
    measured = est.measured_work(METRICS, 10)
    seconds = est.core_seconds(METRICS, measured, measured)
    assert seconds == {k: v * 2 for k, v in TIMINGS.items() if k not in ("publish", "tune")}
    assert est.driver_tune_seconds(METRICS, measured, measured) == TIMINGS["tune"]


def test_each_stage_scales_with_its_own_work() -> None:
    measured = est.measured_work(METRICS, 10)
    n = METRICS.counts
    bigger = est.work_of(n.ratings * 4, n.users * 2, n.items * 3, 0.8, 0.1, [10, 20, 50], 3, 20, 10, 0.75)
    seconds = est.core_seconds(METRICS, measured, bigger)
    assert seconds["read_validate"] == pytest.approx(10.0 * 2 * 4)    # linear in ratings
    assert seconds["recommend"] == pytest.approx(4.0 * 2 * 2 * 3)     # users x items
    # the tuning grows by the ratio of its FLOPs: nnz x4, users + items 25k -> 55k
    def grid(nnz: float, users_items: float) -> float:
        return sum(2 * nnz * k**2 + users_items * k**3 / 3 for k in (10, 20, 50))
    tune_s = est.driver_tune_seconds(METRICS, measured, bigger)  # on the driver: not times the cores
    assert tune_s == pytest.approx(100.0 * grid(3_200_000, 55_000) / grid(800_000, 25_000))


def test_a_measured_scoring_share_scales_by_cells_and_the_rest_of_the_top_n_by_users() -> None:
    """With task_s.recommend_scoring, only the block scoring grows with users x artists; seen lists,
    rows and the sorted output grow with the users. Without it, all of the stage is scoring."""
    split = METRICS.with_(task_s={"recommend_scoring": 5.0})  # of the stage's 4 s x 2 cores = 8 core-s
    measured = est.measured_work(split, 10)
    n = split.counts
    bigger = est.work_of(n.ratings * 4, n.users * 2, n.items * 3, 0.8, 0.1, [10, 20, 50], 3, 20, 10, 0.75)
    assert est.recommend_parts(split) == (5.0, 3.0)
    assert est.core_seconds(split, measured, bigger)["recommend"] == pytest.approx(5.0 * 2 * 3 + 3.0 * 2)
    assert est.core_seconds(split, measured, measured)["recommend"] == pytest.approx(8.0)
    assert est.recommend_parts(METRICS) == (8.0, 0.0)
    # the similar artists are priced at the scoring's rate per multiply-add, not the whole stage's
    assert est.similar_core_seconds(split, measured, bigger) == pytest.approx(
        est.similar_core_seconds(METRICS, measured, bigger) * 5.0 / 8.0)
    # a scoring clock above the stage's core-seconds (a partition scored twice) counts as the whole stage
    assert est.recommend_parts(METRICS.with_(task_s={"recommend_scoring": 20.0})) == (8.0, 0.0)


def test_tuning_on_a_bounded_sample_costs_the_same_however_big_the_data() -> None:
    """Above --tune-sample-ratings, tuning sees a fixed number of ratings (whole users)."""
    bound = 900_000  # the measured run's train + validation: it tuned on everything
    measured = est.measured_work(METRICS, 10, bound)
    n = METRICS.counts
    huge = est.work_like(METRICS, n.ratings * 100, n.users * 100, n.items, 10, bound)
    assert est.tuned_share(n.ratings * 100, 0.8, 0.1, bound) == pytest.approx(0.01)
    assert est.driver_tune_seconds(METRICS, measured, huge) == pytest.approx(TIMINGS["tune"])
    assert huge.fit_flops > 90 * measured.fit_flops  # the final fit still sees every rating
    # ranking metrics over at most --eval-users test users: the evaluation stops growing there
    evaluated = est.work_like(METRICS, n.ratings * 100, n.users * 100, n.items, 10, bound, eval_bound=15_000)
    seconds = est.core_seconds(METRICS, measured, evaluated)
    assert seconds["evaluate"] == pytest.approx(TIMINGS["evaluate"] * 2)
    assert seconds["recommend"] == pytest.approx(TIMINGS["recommend"] * 2 * 100)


def test_the_bias_only_candidate_adds_no_als_work() -> None:
    with_bias = RunMetrics.from_dict(metrics_json(
        counts={"input_rows": 1_000_000, "ratings": 1_000_000, "users": 20_000, "items": 5_000, "never_play_again": 0,
                "train": 800_000, "validation": 100_000, "test": 100_000, "quarantined": 0,
                "recommendations": 100_000},
        grid=[{"rank": 0, "reg_param": 0.0, "rmse": 1.1},
              *({"rank": r, "reg_param": g, "rmse": 1.0} for r in (10, 20, 50) for g in (0.05, 0.1, 0.2))],
        best_params={"rank": 20, "reg_param": 0.1, "popularity_weight": 0.0},
        evaluated_users=15_000, spark={"master": "local[2]"}, timings_s=TIMINGS))
    assert est.grid_of(with_bias) == est.grid_of(METRICS) == ([10, 20, 50], 3)
    # When the bias-only model won, its fit (sums over the ratings) scales with the ratings.
    won = RunMetrics.from_dict({**with_bias.as_dict(), "best_params": {"rank": 0, "reg_param": 0.0,
                                                                      "popularity_weight": 0.0}})
    measured = est.measured_work(won, 10)
    bigger = est.work_like(won, 4_000_000, 40_000, 10_000, 10)
    assert est.core_seconds(won, measured, bigger)["fit"] == pytest.approx(TIMINGS["fit"] * 2 * 4)


def test_a_run_fitted_on_the_driver_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(RunMetrics.from_dict({**METRICS.as_dict(), "spark": {"master": "local[2]", "model": "numpy"}})
                    .to_json())
    sys.argv = ["estimate_r1.py", str(path)]
    assert est.main() == 2
    assert "fitted and evaluated on the driver" in capsys.readouterr().err


def test_similar_artists_are_priced_at_the_top_n_rate_and_stay_a_small_share(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """About artists^2 x rank multiply-adds (98,211^2 x 50 = 4.8e11 at full R1), at the core-seconds per
    multiply-add the measured top-N took (a top-N cell: rank + 1 of them)."""
    bound, eval_users = est.TuningOptions.sample_ratings, est.TuningOptions.eval_users  # main's defaults
    measured = est.measured_work(METRICS, 10, bound)
    target = est.work_like(METRICS, est.R1["ratings"], est.R1["users"], est.R1["items"], 10, bound, eval_users)
    assert target.similar_madds == est.R1["items"] ** 2 * 20
    per_madd = TIMINGS["recommend"] * 2 / (20_000 * 5_000 * 21)  # 4 s on 2 cores, 20,000 x 5,000 cells, rank 20
    similar_s = est.similar_core_seconds(METRICS, measured, target)
    assert similar_s == pytest.approx(target.similar_madds * per_madd)
    executors = sum(est.core_seconds(METRICS, measured, target).values())
    assert 0 < similar_s < 0.05 * executors, "a small share of a run"
    path = tmp_path / "metrics.json"
    path.write_text(METRICS.to_json())
    sys.argv = ["estimate_r1.py", str(path), "--workers", "10"]
    assert est.main() == 0
    printed = capsys.readouterr().out
    assert f"similar artists: {target.similar_madds:.3g} multiply-adds" in printed
    total = executors + similar_s  # the executors' total includes it
    assert f"; total {total / 3600:.2f}" in printed and f"similar {similar_s / 3600:.2f}" in printed
