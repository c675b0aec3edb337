"""Event-triggered runs under one runs root: a little more data reuses the published run's tuning."""

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

pytestmark = [pytest.mark.spark, pytest.mark.e2e]


def config(inputs: Path, root: Path, **kw: object) -> JobConfig:
    return JobConfig.from_fields(inputs=(str(inputs),), runs_root=str(root), ranks=(4, 8), reg_params=(0.05, 0.2),
                                 max_iter=5, shuffle_partitions=2, popularity_weights=(0.0, 0.1), **kw)


def published(root: Path, run_id: str) -> dict[str, Any]:
    assert json.loads((root / c.LATEST_FILE).read_text())["run_id"] == run_id
    return dict(json.loads((Path(c.run_path(str(root), run_id)) / c.METRICS_FILE).read_text()))


def test_more_data_reuses_the_published_tuning_until_a_full_run(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = datagen.r1_lines(datagen.generate(12_000, seed=11, bad_share=0.0), 11)
    head, whole, root = tmp_path / "head.tsv", tmp_path / "whole.tsv", tmp_path / "root"
    datagen.write_r1(head, lines[: len(lines) * 95 // 100])  # the new data: ~5% more ratings
    datagen.write_r1(whole, lines)

    first = execute(spark, config(head, root))  # nothing published yet: auto tunes
    tuned = published(root, first.run_id)
    assert tuned["tuning"]["mode"] == "full" and len(tuned["grid"]) == 5

    second = execute(spark, config(whole, root))  # the default: --tuning auto
    reused = published(root, second.run_id)
    assert reused["counts"]["ratings"] > tuned["counts"]["ratings"]
    assert reused["tuning"]["mode"] == "reused" and reused["tuning"]["reused_from"] == first.run_id
    assert reused["best_params"] == tuned["best_params"]
    assert reused["grid"] == [] and reused["popularity_weight_curve"] == []
    assert reused["timings_s"]["tune"] < 0.2 * tuned["timings_s"]["tune"]
    report = (Path(second.output) / c.REPORT_FILE).read_text()
    assert f"tuning reused from {first.run_id}" in report

    third = execute(spark, config(whole, root, tuning_mode="full"))
    again = published(root, third.run_id)
    assert again["tuning"]["mode"] == "full" and again["tuning"]["reused_from"] is None
    assert len(again["grid"]) == 5


def test_reuse_without_a_published_run_fails_before_reading_any_data(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing_input = tmp_path / "not-there.tsv"  # reading it would fail differently
    with pytest.raises(JobFailed, match=r"--tuning reuse has no tuning to reuse.*--runs-root.*--tuning full"):
        execute(spark, config(missing_input, tmp_path / "root", tuning_mode="reuse"))
    assert not (tmp_path / "root").exists(), "nothing was written"
