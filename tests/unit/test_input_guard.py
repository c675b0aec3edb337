"""The input guard: this run's input against the published run's, read from a runs root (no Spark)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from glue_jobs import contracts as c
from glue_jobs.recommender import config as cfg
from glue_jobs.recommender.config import Feedback, GateOptions
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.guard import check_input
from glue_jobs.recommender.metrics import RATING_BUCKETS, InputComparison, InputProfile, RunMetrics, rating_bucket
from glue_jobs.recommender.reuse import Previous, read_published
from tests.sample_metrics import metrics_json

PUBLISHED = "20261129T160000Z-3f2a"
BEFORE = 10_000  # learnable ratings of the published run
SHAPE = (5, 5, 5, 5, 10, 10, 15, 20, 15, 10)  # the published run's histogram, in percent


def profile(ratings: int = BEFORE, shape: tuple[int, ...] = SHAPE) -> InputProfile:
    """An input profile whose histogram has `shape` (percent per bucket) over `ratings` ratings."""
    assert sum(shape) == 100
    return InputProfile(ratings, ratings // 30, ratings // 15, tuple(ratings * p // 100 for p in shape), 0.008, 0.01)


PROFILED = profile()  # the published run's input profile, unless a test gives another


def published(root: Path, before: InputProfile | None = PROFILED) -> Previous:
    """A run published under root (metrics.json, latest.json), read back as the job reads it."""
    run = Path(c.run_path(str(root), PUBLISHED))
    run.mkdir(parents=True)
    counts = {**metrics_json()["counts"], "ratings": BEFORE}  # type: ignore[dict-item]
    doc = metrics_json(run_id=PUBLISHED, counts=counts)
    if before is not None:
        doc["input_profile"] = before.as_dict()
    (run / c.METRICS_FILE).write_text(json.dumps(doc))
    (root / c.LATEST_FILE).write_text(json.dumps({"run_id": PUBLISHED, "path": str(run)}))
    return read_published(str(root))


@pytest.mark.parametrize("ratings, refused", [(5_000, False), (4_999, True), (12_000, False)])
def test_a_shrink_beyond_max_shrink_is_refused_naming_the_figures(tmp_path: Path, ratings: int,
                                                                  refused: bool) -> None:
    previous = published(tmp_path)
    if not refused:  # 5,000 is exactly (1 - 0.5) x 10,000: allowed
        found = check_input(profile(ratings), previous, GateOptions())
        assert found.verdict == "passed" and found.previous_run_id == PUBLISHED and found.histogram_tvd == 0.0
        return
    with pytest.raises(JobFailed) as err:
        check_input(profile(ratings), previous, GateOptions())
    message = str(err.value)
    for figure in ("4,999", "10,000", PUBLISHED, "a drop of 50.0%", "--max-shrink 0.5", "distance 0.000",
                   "--allow-shrink", "Nothing was trained or published"):
        assert figure in message, figure
    assert "histogram moved" not in message  # only the shrink was beyond its limit


def test_a_published_run_of_the_other_feedback_is_compared_too(tmp_path: Path) -> None:
    """A feed that changed enough to flip --feedback auto (per-user rescaled values) is what the guard
    is for: the input profile does not depend on the feedback, so such a run is compared, while
    its tuning is not offered for reuse."""
    from glue_jobs.recommender import reuse
    from glue_jobs.recommender.config import TuningOptions

    run = Path(c.run_path(str(tmp_path), PUBLISHED))
    run.mkdir(parents=True)
    counts = {**metrics_json()["counts"], "ratings": BEFORE}  # type: ignore[dict-item]
    doc = metrics_json(run_id=PUBLISHED, counts=counts, feedback="implicit", input_profile=PROFILED.as_dict())
    (run / c.METRICS_FILE).write_text(json.dumps(doc))
    (tmp_path / c.LATEST_FILE).write_text(json.dumps({"run_id": PUBLISHED, "path": str(run)}))
    previous = read_published(str(tmp_path))
    with pytest.raises(JobFailed, match="Learnable ratings 4,000"):
        check_input(profile(4_000), previous, GateOptions())
    reusable = reuse.published_run(str(tmp_path), TuningOptions(), Feedback.EXPLICIT, previous)
    assert reusable.metrics is None and "learned from implicit feedback" in reusable.missing


def test_a_histogram_shift_beyond_its_limit_is_refused(tmp_path: Path) -> None:
    previous = published(tmp_path, profile(shape=(100, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
    at_limit = check_input(profile(shape=(80, 20, 0, 0, 0, 0, 0, 0, 0, 0)), previous, GateOptions())
    assert at_limit.verdict == "passed" and at_limit.histogram_tvd == pytest.approx(0.2)
    with pytest.raises(JobFailed, match=r"histogram moved more than --max-histogram-shift 0\.2.*distance 0\.210"):
        check_input(profile(shape=(79, 21, 0, 0, 0, 0, 0, 0, 0, 0)), previous, GateOptions())
    looser = GateOptions(max_histogram_shift=0.25)
    assert check_input(profile(shape=(79, 21, 0, 0, 0, 0, 0, 0, 0, 0)), previous, looser).verdict == "passed"


def test_allow_shrink_overrides_both_and_the_run_logs_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    previous = published(tmp_path, profile(shape=(100, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
    with caplog.at_level(logging.INFO, logger="recommender"):
        found = check_input(profile(3_000, SHAPE), previous, GateOptions(allow_shrink=True))
    assert found.verdict == "refused" and found.overridden
    assert found.drop == pytest.approx(0.7) and found.histogram_tvd == pytest.approx(0.95)
    assert "--allow-shrink overrides it" in caplog.text and "3,000 learnable ratings against 10,000" in caplog.text


def test_a_published_run_without_a_profile_compares_ratings_only(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    previous = published(tmp_path, before=None)  # metrics.json from before the guard
    assert previous.metrics is not None and previous.metrics.input_profile is None
    with caplog.at_level(logging.INFO, logger="recommender"):
        found = check_input(profile(9_000, (100, 0, 0, 0, 0, 0, 0, 0, 0, 0)), previous, GateOptions())
    assert found.verdict == "passed" and found.histogram_tvd is None and found.previous_ratings == BEFORE
    assert "ratings only" in caplog.text and "no input profile" in caplog.text
    with pytest.raises(JobFailed, match="not recorded by the published run"):
        check_input(profile(4_000), previous, GateOptions())


@pytest.mark.parametrize("root, says", [(None, "no --runs-root"), ("empty", "no run is published under")])
def test_without_a_published_run_nothing_is_compared_in_one_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, root: str | None, says: str) -> None:
    previous = read_published(str(tmp_path) if root else None)
    with caplog.at_level(logging.INFO, logger="recommender"):
        found = check_input(profile(10), previous, GateOptions())
    assert found.verdict == "not compared" and found.previous_run_id is None and not found.overridden
    lines = [r.getMessage() for r in caplog.records if "input guard" in r.getMessage()]
    assert len(lines) == 1 and says in lines[0]


def test_metrics_json_records_profile_and_verdict_and_older_files_still_load(tmp_path: Path) -> None:
    previous = published(tmp_path)
    found = check_input(profile(9_000), previous, GateOptions())
    doc = metrics_json(input_profile=profile(9_000).as_dict(), input_guard=found.as_dict())
    assert doc["input_profile"]["histogram"]["90-100"] == 900  # type: ignore[index]
    typed = RunMetrics.from_json(json.dumps(doc))
    assert typed.input_profile == profile(9_000) and typed.input_guard == found
    assert typed.input_guard.previous_profile == PROFILED
    written = json.loads(typed.to_json())
    assert {k: written[k] for k in ("input_profile", "input_guard")} == json.loads(
        json.dumps({k: doc[k] for k in ("input_profile", "input_guard")}))
    old = RunMetrics.from_json(json.dumps(metrics_json()))  # no "input_profile", no "input_guard"
    assert old.input_profile is None and old.input_guard is None
    assert "input_profile" not in old.as_dict()


def test_rating_buckets_are_ten_of_width_ten_with_100_in_the_last() -> None:
    assert RATING_BUCKETS[0] == "0-9" and RATING_BUCKETS[-1] == "90-100" and len(RATING_BUCKETS) == 10
    assert [rating_bucket(r) for r in (0, 9, 10, 89, 90, 99, 100)] == [0, 0, 1, 8, 9, 9, 9]
    assert InputComparison.from_dict(InputComparison("passed", "x").as_dict()) == InputComparison("passed", "x")


# --- --allow-shrink: a bare flag on a command line, `--allow-shrink true` as a Glue argument ----------
BASE = ["--input", "x", "--output", "y"]


@pytest.mark.parametrize("extra, allowed", [([], False), (["--allow-shrink"], True),
                                            (["--allow-shrink", "true"], True), (["--allow-shrink", "False"], False),
                                            (["--allow-shrink", "--top-n", "3"], True)])
def test_allow_shrink_is_a_bare_flag_or_takes_a_value(extra: list[str], allowed: bool) -> None:
    conf = cfg.parse_args([*BASE, *extra])
    assert conf.gates.allow_shrink is allowed
    assert conf.model.top_n == (3 if "--top-n" in extra else 5)


def test_allow_shrink_as_a_glue_job_argument() -> None:
    assert cfg.job_arguments({"allow-shrink": True, "max_shrink": 0.3}) == {
        "--allow-shrink": "true", "--max-shrink": "0.3"}
    job_args = {**cfg.job_arguments({"--input": "s3://raw/", "--output": "s3://cur/run"}),
                **cfg.job_arguments({"allow-shrink": True})}
    argv = ["script.py", "--JOB_NAME", "j", *[part for kv in job_args.items() for part in kv]]

    def fake_get_resolved_options(argv: list[str], names: list[str]) -> dict[str, str]:
        return {n.replace("-", "_"): argv[argv.index(f"--{n}") + 1] for n in names}

    conf = cfg.parse_args(cfg.glue_argv(argv, fake_get_resolved_options))
    assert conf.gates.allow_shrink is True


def test_bad_guard_values_are_refused_naming_the_option() -> None:
    with pytest.raises(cfg.ConfigError, match="--allow-shrink must be true or false, got 'maybe'"):
        cfg.job_arguments({"allow-shrink": "maybe"})
    with pytest.raises(cfg.ConfigError, match="--max-shrink must lie in 0..1, got 1.5"):
        cfg.parse_args([*BASE, "--max-shrink", "1.5"])
    with pytest.raises(cfg.ConfigError, match="--max-histogram-shift must lie in 0..1, got -0.1"):
        cfg.parse_args([*BASE, "--max-histogram-shift", "-0.1"])


def test_other_command_lines_get_the_flag_form_too() -> None:
    parser = argparse.ArgumentParser()
    cfg.add_options(parser, ["allow-shrink"])
    assert parser.parse_args(["--allow-shrink"]).allow_shrink is True
    assert parser.parse_args(["--allow-shrink", "no"]).allow_shrink is False
    assert parser.parse_args([]).allow_shrink is False
