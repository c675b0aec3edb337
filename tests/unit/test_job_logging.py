"""What the job says while it runs: one line per stage start and end, no py4j chatter."""

from __future__ import annotations

import logging

import pytest

from glue_jobs.recommender.job import StageTimer
from glue_jobs.recommender.main import main


def test_each_stage_logs_its_start_and_its_duration(caplog: pytest.LogCaptureFixture) -> None:
    timer = StageTimer()
    with caplog.at_level(logging.INFO, logger="recommender"), timer("split"):
        pass
    lines = [r.getMessage() for r in caplog.records if r.name == "recommender"]
    assert lines[0] == "stage split: started"
    assert lines[1].startswith("stage split: done in ") and lines[1].endswith(" s")
    assert set(timer.timings) == {"split"}


def test_the_job_silences_py4j_connection_chatter() -> None:
    logging.getLogger("py4j").setLevel(logging.NOTSET)
    assert main(["--input", "x", "--output", "y", "--top_n", "3"]) == 2  # stops before any Spark work
    assert logging.getLogger("py4j").getEffectiveLevel() >= logging.WARNING
