"""The input guard on real runs: a truncated copy of the feed is refused before training, with
nothing written, and accepted with --allow-shrink; the profile matches the file, counted in Python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender.config import JobConfig
from glue_jobs.recommender.job import JobFailed
from glue_jobs.recommender.main import execute
from glue_jobs.recommender.metrics import RATING_BUCKETS, rating_bucket

pytestmark = [pytest.mark.spark, pytest.mark.e2e]


def config(inputs: Path, root: Path, **kw: object) -> JobConfig:
    return JobConfig.from_fields(inputs=(str(inputs),), runs_root=str(root), ranks=(4,), reg_params=(0.1,),
                                 max_iter=5, shuffle_partitions=2, popularity_weights=(0.0,), **kw)


def profile_of(lines: list[str]) -> dict[str, Any]:
    """The input profile of clean R1 lines, computed without Spark."""
    rows = [tuple(int(v) for v in line.split("\t")) for line in lines]
    learn = [r for r in rows if r[2] != c.NEVER_PLAY_AGAIN]
    hist = [0] * len(RATING_BUCKETS)
    for _, _, rating in learn:
        hist[rating_bucket(rating)] += 1
    return {"ratings": len(learn), "users": len({u for u, _, _ in learn}), "artists": len({a for _, a, _ in learn}),
            "histogram": dict(zip(RATING_BUCKETS, hist, strict=True)),
            "never_play_again_share": round((len(rows) - len(learn)) / len(rows), 6), "quarantine_share": 0.0}


def test_a_truncated_feed_is_refused_before_training_and_runs_with_allow_shrink(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = datagen.r1_lines(datagen.generate(8_000, seed=5, bad_share=0.0), 5)
    whole, head, root = tmp_path / "whole.tsv", tmp_path / "head.tsv", tmp_path / "root"
    datagen.write_r1(whole, lines)
    datagen.write_r1(head, lines[: len(lines) * 3 // 10])  # a half-copied upload: the first 30%

    first = execute(spark, config(whole, root))
    metrics = json.loads((Path(first.output) / c.METRICS_FILE).read_text())
    assert metrics["input_profile"] == profile_of(lines)
    assert metrics["input_guard"]["verdict"] == "not compared"
    latest = (root / c.LATEST_FILE).read_text()

    with pytest.raises(JobFailed) as refused:
        execute(spark, config(head, root, tuning_mode="reuse"))
    message = str(refused.value)
    for figure in (f"{profile_of(lines)['ratings']:,}", f"{profile_of(lines[: len(lines) * 3 // 10])['ratings']:,}",
                   first.run_id, "--max-shrink 0.5", "--allow-shrink", "Nothing was trained or published"):
        assert figure in message, figure
    assert sorted(p.name for p in (root / c.RUNS_PREFIX).iterdir()) == [first.run_id], "nothing written for it"
    assert (root / c.LATEST_FILE).read_text() == latest

    second = execute(spark, config(head, root, tuning_mode="reuse", allow_shrink="true"))
    assert json.loads((root / c.LATEST_FILE).read_text())["run_id"] == second.run_id
    found = json.loads((Path(second.output) / c.METRICS_FILE).read_text())["input_guard"]
    assert found["verdict"] == "refused" and found["overridden"] is True
    assert found["previous_run_id"] == first.run_id and found["drop"] > 0.5
    assert found["previous_profile"] == metrics["input_profile"]
    report = (Path(second.output) / c.REPORT_FILE).read_text()
    assert f'href="../{first.run_id}/{c.REPORT_FILE}"' in report and "overridden with --allow-shrink" in report
