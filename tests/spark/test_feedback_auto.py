"""--feedback auto: play counts scaled per user are read as implicit feedback, ratings as explicit,
decided from the input right after it is read, with the reason in metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender import stages
from glue_jobs.recommender.config import ConfigError, Feedback, JobConfig
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.main import execute

pytestmark = pytest.mark.spark
N_RATINGS = 12_000


def ratings_frame(spark, users: np.ndarray, artists: np.ndarray, ratings: np.ndarray):  # type: ignore[no-untyped-def]
    rows = [(int(u), int(a), int(r)) for u, a, r in zip(users, artists, ratings) if r <= c.RATING_MAX]
    return spark.createDataFrame(rows, f"{c.USER_ID} int, {c.ARTIST_ID} int, {c.RATING} int")


@pytest.mark.parametrize(("shape", "expected"), [("listening", Feedback.IMPLICIT), ("r1", Feedback.EXPLICIT),
                                                 ("stars", Feedback.EXPLICIT)])
def test_each_generated_shape_is_read_as_what_it_is(spark, shape: str, expected: Feedback) -> None:  # type: ignore[no-untyped-def]
    data = datagen.generate(N_RATINGS, seed=2, bad_share=0.0, shape=shape)
    feedback, reason = stages.detect_feedback(ratings_frame(spark, data.users, data.artists, data.ratings))
    assert feedback is expected
    assert reason.startswith("--feedback auto: ") and reason.endswith(expected.value)


def test_the_rule_is_the_share_of_users_spanning_the_whole_scale(spark) -> None:  # type: ignore[no-untyped-def]
    """Ten users with 3 ratings each: k of them rate exactly 0..100, the rest 10..90. Users with
    fewer ratings, or one value only, are not counted."""
    def frame(spanning: int):  # type: ignore[no-untyped-def]
        rows = [(u, a, r) for u in range(10) for a, r in enumerate((0, 50, 100) if u < spanning else (10, 50, 90))]
        rows += [(100, 1, 0), (100, 2, 100), (101, 1, 70), (101, 2, 70), (101, 3, 70)]  # not counted
        return spark.createDataFrame(rows, f"{c.USER_ID} int, {c.ARTIST_ID} int, {c.RATING} int")

    assert stages.detect_feedback(frame(9))[0] is Feedback.IMPLICIT  # 90%: the threshold
    feedback, reason = stages.detect_feedback(frame(8))
    assert feedback is Feedback.EXPLICIT and "8 of 10 users" in reason and "(80%" in reason


def test_auto_metric_follows_the_feedback_decided_and_a_given_metric_must_suit_it() -> None:
    auto = JobConfig.from_fields(inputs=("x",), output="o", feedback="auto")
    assert auto.tuning.metric == "auto"
    assert auto.with_feedback(Feedback.IMPLICIT).tuning.metric == "ndcg"
    assert auto.with_feedback(Feedback.EXPLICIT).tuning.metric == "rmse"
    assert JobConfig.from_fields(inputs=("x",), output="o", metric="auto").tuning.metric == "auto"
    ranked = JobConfig.from_fields(inputs=("x",), output="o", feedback="auto", metric="ndcg")
    assert ranked.with_feedback(Feedback.EXPLICIT).tuning.metric == "ndcg"  # given: kept
    with pytest.raises(ConfigError, match="--feedback implicit has no rating scale"):
        JobConfig.from_fields(inputs=("x",), output="o", feedback="auto", metric="rmse").with_feedback(
            Feedback.IMPLICIT)
    with pytest.raises(RuntimeError, match="resolve it"):
        _ = Feedback.AUTO.has_ratings


@pytest.fixture(scope="module")
def plays(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = datagen.generate(N_RATINGS, seed=4, bad_share=0.0, shape="listening")
    path = tmp_path_factory.mktemp("auto") / "plays.tsv"
    datagen.write_r1(path, datagen.r1_lines(data))
    return path


def test_a_run_on_listening_logs_trains_implicit_and_says_why(spark, plays: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = JobConfig.from_fields(inputs=(str(plays),), output=str(tmp_path / "out"), feedback="auto",
                                 ranks=(8,), reg_params=(0.1,), max_iter=5, shuffle_partitions=2,
                                 popularity_weights=(0.0,), min_ndcg_gain=-1.0)
    execute(spark, conf)
    metrics = json.loads((tmp_path / "out" / c.METRICS_FILE).read_text())
    assert metrics["feedback"] == "implicit" and metrics["selection_metric"] == "ndcg"
    assert metrics["feedback_reason"].endswith("so play counts scaled per user: implicit")
    assert metrics["rmse"] is None  # no rating scale: nothing predicted on one


def test_auto_with_a_metric_that_cannot_suit_the_data_stops_before_training(spark, plays: Path,  # type: ignore[no-untyped-def]
                                                                            tmp_path: Path) -> None:
    conf = JobConfig.from_fields(inputs=(str(plays),), output=str(tmp_path / "out"), feedback="auto", metric="rmse")
    with pytest.raises(JobFailed, match="so play counts scaled per user: implicit; but --feedback implicit has no "
                                        "rating scale to compute RMSE on"):
        execute(spark, conf)
    assert not (tmp_path / "out").exists()
