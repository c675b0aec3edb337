"""--tuning auto|full|reuse: which runs reuse the published run's tuning, and why (no Spark)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from glue_jobs import contracts as c
from glue_jobs.recommender.config import ConfigError, Feedback, JobConfig, TuningMode, TuningOptions, parse_args
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.metrics import BestParams
from glue_jobs.recommender.reuse import Previous, decide, published_run
from tests.sample_metrics import metrics_json

TUNED = "20261129T160000Z-3f2a"  # tuned 2.0 days before NOW
REUSING = "20261201T040000Z-77aa"  # reused TUNED's parameters 0.5 days before NOW
NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
RATINGS = 19842  # counts.ratings of the sample metrics.json
AUTO, FULL, REUSE = (TuningOptions(tuning_mode=mode) for mode in TuningMode)


def publish(root: Path, run_id: str = TUNED, **changes: object) -> Path:
    """A published run under root: its metrics.json and latest.json naming it."""
    run = Path(c.run_path(str(root), run_id))
    run.mkdir(parents=True, exist_ok=True)
    (run / c.METRICS_FILE).write_text(json.dumps(metrics_json(run_id=run_id, **changes)))
    (root / c.LATEST_FILE).write_text(json.dumps({"run_id": run_id, "path": str(run)}))
    return root


def choose(root: Path | None, options: TuningOptions = AUTO, ratings: int = RATINGS,
           feedback: Feedback = Feedback.EXPLICIT) -> tuple[bool, str | None, str]:
    decision = decide(published_run(str(root) if root else None, options, feedback), ratings, options, NOW)
    assert (decision.params is None) == (not decision.origin.reused)
    return decision.origin.reused, decision.origin.reused_from, decision.origin.reason


def test_a_small_recent_change_reuses_the_published_params(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    publish(tmp_path)
    with caplog.at_level(logging.INFO, logger="recommender"):
        decision = decide(published_run(str(tmp_path), AUTO, Feedback.EXPLICIT), int(RATINGS * 1.048), AUTO, NOW)
    assert decision.params == BestParams(rank=10, reg_param=0.1, popularity_weight=30.0, bias_reg=30.0,
                                         blend_weight=4.0)
    assert (decision.origin.mode, decision.origin.reused_from) == ("reused", TUNED)
    assert (f"reusing rank=10 reg=0.1 weight=30 blend=4 from {TUNED} (ratings +4.8% since {TUNED} tuned them "
            "2.0 days ago)") in caplog.text


@pytest.mark.parametrize("factor, expected", [(1.31, "ratings changed +31.0%"), (0.7, "ratings changed -30.0%"),
                                              (1.26, "ratings changed +26.0%")])
def test_a_change_at_or_above_retune_change_tunes(tmp_path: Path, factor: float, expected: str) -> None:
    reused, reused_from, reason = choose(publish(tmp_path), ratings=round(RATINGS * factor))
    assert not reused and reused_from is None
    assert reason.startswith(expected)


def test_retune_change_is_the_threshold(tmp_path: Path) -> None:
    publish(tmp_path)
    assert choose(tmp_path, TuningOptions(retune_change=0.5), ratings=round(RATINGS * 1.31))[0]
    assert not choose(tmp_path, TuningOptions(retune_change=0.3), ratings=round(RATINGS * 1.31))[0]
    # "less than": at 0, no change is small enough and auto always tunes
    assert not choose(tmp_path, TuningOptions(retune_change=0.0), ratings=RATINGS)[0]


def test_a_tuning_older_than_retune_days_is_not_reused(tmp_path: Path) -> None:
    publish(tmp_path)
    reused, _, reason = choose(tmp_path, TuningOptions(retune_days=1.5))
    assert not reused and reason.startswith(f"{TUNED} tuned 2.0 days ago")
    assert choose(tmp_path, TuningOptions(retune_days=2.5))[0]


def test_a_chain_of_reuses_counts_the_days_from_the_run_that_tuned(tmp_path: Path) -> None:
    publish(tmp_path, REUSING, tuning={"mode": "reused", "reused_from": TUNED, "reason": "ratings +1.0%"})
    # The published run is half a day old, but its parameters were tuned two days ago by TUNED.
    assert not choose(tmp_path, TuningOptions(retune_days=1.0))[0]
    reused, reused_from, reason = choose(tmp_path, TuningOptions(retune_days=3.0))
    assert reused and reused_from == TUNED
    assert reason == f"ratings +0.0% since {TUNED} tuned them 2.0 days ago"


def test_a_chain_of_small_changes_is_measured_from_the_ratings_that_were_tuned_on(tmp_path: Path) -> None:
    """Each reusing run is published: +10% on +10% on +10% must not pass a 25% threshold forever."""
    tuned_on = round(RATINGS / 1.2)  # REUSING already had 20% more than TUNED tuned on
    publish(tmp_path, REUSING, tuning={"mode": "reused", "reused_from": TUNED, "reason": "",
                                       "tuned_ratings": tuned_on})
    reused, _, reason = choose(tmp_path, ratings=round(RATINGS * 1.1))  # +10% since REUSING, +32% since TUNED
    assert not reused and reason.startswith(f"ratings changed +32.0% since {TUNED} tuned")
    decision = decide(published_run(str(tmp_path), AUTO, Feedback.EXPLICIT), RATINGS, AUTO, NOW)
    assert decision.origin.tuned_ratings == tuned_on  # carried along the chain


def test_parameters_this_runs_grid_could_not_choose_are_not_reused(tmp_path: Path) -> None:
    publish(tmp_path)  # rank 10, regParam 0.1, weight 30 (0.3 of the scale), chosen by rmse at k=10
    narrower = TuningOptions(ranks=(20, 50), popularity_weights=(0.0,))
    reused, _, reason = choose(tmp_path, narrower)
    assert not reused and "rank 10 is not in --ranks" in reason and "popularity weight 30 is not in" in reason
    assert not choose(tmp_path, TuningOptions(metric="ndcg"))[0]
    assert not choose(tmp_path, TuningOptions(k=5))[0]
    with pytest.raises(JobFailed, match="--tuning reuse cannot reuse .*rank 10 is not in --ranks"):
        choose(tmp_path, TuningOptions(tuning_mode=TuningMode.REUSE, ranks=(20,)))


def test_a_bias_reg_outside_this_runs_values_is_not_reused(tmp_path: Path) -> None:
    publish(tmp_path, best_params={"rank": 10, "reg_param": 0.1, "popularity_weight": 30.0, "bias_reg": 30.0})
    options = published_run(str(tmp_path), AUTO, Feedback.EXPLICIT)
    assert decide(options, RATINGS, AUTO, NOW, bias_regs=(10.0, 30.0)).params == BestParams(10, 0.1, 30.0, 30.0)
    refused = decide(options, RATINGS, AUTO, NOW, bias_regs=(10.0, 100.0))
    assert refused.params is None and "bias reg 30 is not in --bias-reg" in refused.origin.reason
    # A run from before the shrinkage was tuned recorded none: it was 10.
    publish(tmp_path, best_params={"rank": 10, "reg_param": 0.1, "popularity_weight": 30.0})
    legacy = published_run(str(tmp_path), AUTO, Feedback.EXPLICIT)
    assert decide(legacy, RATINGS, AUTO, NOW, bias_regs=(10.0,)).params is not None
    assert decide(legacy, RATINGS, AUTO, NOW, bias_regs=(30.0,)).params is None


def test_a_blend_weight_outside_this_runs_values_is_not_reused(tmp_path: Path) -> None:
    publish(tmp_path)  # blend weight 4
    assert choose(tmp_path, TuningOptions(blend_weights=(0.0, 4.0)))[0]
    reused, _, reason = choose(tmp_path, TuningOptions(blend_weights=(0.0, 8.0)))
    assert not reused and "blend weight 4 is not in --blend-weights" in reason
    # An unblended run is always reusable: the unblended ranking is a point of every blend curve.
    publish(tmp_path, best_params={"rank": 10, "reg_param": 0.1, "popularity_weight": 30.0, "bias_reg": 30.0})
    assert choose(tmp_path, TuningOptions(blend_weights=(8.0,)))[0]


def test_full_always_tunes_without_reading_the_published_run(tmp_path: Path) -> None:
    publish(tmp_path)
    assert choose(tmp_path, FULL) == (False, None, "--tuning full")
    assert choose(None, FULL) == (False, None, "--tuning full")


def test_reuse_ignores_the_change_and_the_age(tmp_path: Path) -> None:
    publish(tmp_path)
    options = TuningOptions(tuning_mode=TuningMode.REUSE, retune_days=0.1)
    reused, reused_from, _ = choose(tmp_path, options, ratings=RATINGS * 3)
    assert reused and reused_from == TUNED


@pytest.mark.parametrize("setup, missing", [
    (None, "no --runs-root"),
    (lambda root: root, "no run is published under"),
    (lambda root: (publish(root), (Path(c.run_path(str(root), TUNED)) / c.METRICS_FILE).unlink()),
     f"the published run {TUNED} has no metrics.json"),
    (lambda root: (publish(root), (Path(c.run_path(str(root), TUNED)) / c.METRICS_FILE).write_text("{}")),
     f"the published run {TUNED}'s metrics.json is unreadable"),
    (lambda root: publish(root, feedback="implicit"), "learned from implicit feedback, this run from explicit"),
], ids=["no-runs-root", "no-latest-json", "no-metrics-json", "bad-metrics-json", "other-feedback"])
def test_without_a_run_to_reuse_auto_tunes_and_reuse_fails_naming_the_way_out(tmp_path: Path, setup, missing) -> None:  # type: ignore[no-untyped-def]
    root = None if setup is None else tmp_path
    if setup is not None:
        setup(tmp_path)
    reused, _, reason = choose(root)
    assert not reused and missing in reason
    with pytest.raises(JobFailed) as failed:
        published_run(str(root) if root else None, REUSE, Feedback.EXPLICIT)
    assert missing in str(failed.value)
    assert "--runs-root" in str(failed.value) and "--tuning full" in str(failed.value)


def test_a_published_run_whose_id_holds_no_time_is_retuned(tmp_path: Path) -> None:
    publish(tmp_path, "manual-run")
    reused, _, reason = choose(tmp_path)
    assert not reused and reason == "cannot tell when manual-run tuned: not a run id"
    assert choose(tmp_path, REUSE)[0], "--tuning reuse asked for it: the age does not matter"


def test_previous_names_the_run_that_tuned() -> None:
    from glue_jobs.recommender.metrics import RunMetrics, TuningOrigin

    own = RunMetrics.from_dict(metrics_json(run_id=TUNED))
    assert Previous(own).tuned_by == TUNED
    assert Previous(own.with_(run_id=REUSING, tuning=TuningOrigin("reused", TUNED))).tuned_by == TUNED


def test_the_options_have_their_documented_defaults_and_limits() -> None:
    config = parse_args(["--input", "r.tsv", "--runs-root", "/tmp/root"])
    assert (config.tuning.tuning_mode, config.tuning.retune_change, config.tuning.retune_days) == \
        (TuningMode.AUTO, 0.25, 7.0)
    assert parse_args(["--input", "r.tsv", "--output", "o", "--tuning", "reuse"]).tuning.tuning_mode is TuningMode.REUSE
    for argv, problem in ((["--tuning", "sometimes"], "--tuning must be auto, full or reuse"),
                          (["--retune-change", "-0.1"], "--retune-change must not be negative"),
                          (["--retune-days", "0"], "--retune-days must be positive")):
        with pytest.raises(ConfigError, match=problem):
            parse_args(["--input", "r.tsv", "--output", "o", *argv])
    assert JobConfig.from_fields(inputs=("r",), output="o", tuning_mode="full").tuning.tuning_mode is TuningMode.FULL
