"""The rule "never recommend what the user already rated" in every mode: every valid input row
is seen, whatever its rating (0 and 255 too), including on listening-like data where many rows
are 0 (a user's fewest plays, log-scaled per user) and implicit ALS learns nothing from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender import stages
from glue_jobs.recommender.config import Feedback, JobConfig
from glue_jobs.recommender.main import execute

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
N_RATINGS = 20_000


@pytest.fixture(scope="module")
def listening(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[int, int], int]]:
    """Generated ratings shifted down so that about a third are 0; the 255s stay."""
    data = datagen.generate(N_RATINGS, seed=5, bad_share=0.0)
    ratings = data.ratings.copy()
    played = ratings != c.NEVER_PLAY_AGAIN
    ratings[played] = np.clip(ratings[played] - 50, 0, 100)
    rows = dict(zip(zip(data.users.tolist(), data.artists.tolist()), ratings.tolist()))
    path = tmp_path_factory.mktemp("listening") / "plays.tsv"
    datagen.write_r1(path, [f"{u}\t{a}\t{r}" for (u, a), r in rows.items()])
    return path, rows


@pytest.mark.parametrize("feedback", [Feedback.IMPLICIT, Feedback.EXPLICIT])
def test_no_recommendation_is_a_pair_of_the_input(spark, listening, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  feedback: Feedback) -> None:
    path, rows = listening
    zeros = sum(r == 0 for r in rows.values())
    assert zeros > N_RATINGS // 4, "the data must hold many rating-0 rows for this test to mean anything"
    assert any(r == c.NEVER_PLAY_AGAIN for r in rows.values())
    conf = JobConfig.from_fields(inputs=(str(path),), output=str(tmp_path / "out"), feedback=feedback,
                                 ranks=(8,), reg_params=(0.1,), max_iter=5, shuffle_partitions=2,
                                 popularity_weights=(0.0, 0.1), min_ndcg_gain=-1.0, min_rmse_gain=-1.0)
    metrics = execute(spark, conf).metrics
    assert metrics.spark["model"] == "numpy", "small input is tuned, fitted and ranked on the driver"
    assert [(g["rank"], g["reg_param"]) for g in metrics.grid] == [*([(0, 0.0)] if feedback.has_ratings else []),
                                                                    (8, 0.1)], "implicit: no bias-only model"
    recs = spark.read.parquet(str(tmp_path / "out" / c.RECOMMENDATIONS_DIR)).collect()
    assert len(recs) == 5 * len({u for u, _ in rows}), "every user gets a full list"
    seen = [(r.user_id, r.artist_id, rows[(r.user_id, r.artist_id)]) for r in recs
            if (r.user_id, r.artist_id) in rows]
    assert not seen, f"{len(seen)} recommendations were already rated, e.g. {seen[:5]}"


def test_splits_are_the_same_when_recomputed(spark, listening) -> None:  # type: ignore[no-untyped-def]
    """A stage that drops a split's cache (or an executor that loses it) must get the same split
    back: each row's split may not depend on partitioning or order."""
    path, rows = listening
    conf = JobConfig.from_fields(inputs=(str(path),), output="unused")
    inputs = stages.read_inputs(spark, conf.input, conf.gates)
    splits = stages.split(inputs, conf.tuning, conf.model.seed)
    try:
        before = [sorted(map(tuple, df.collect())) for df in (splits.train, splits.valid, splits.test)]
        splits.train.unpersist()  # as a stage that drops it would: the others stay cached
        whole = [(r.user_id, r.artist_id) for r in splits.whole.collect()]
        assert len(whole) == len(set(whole)) == sum(r != c.NEVER_PLAY_AGAIN for r in rows.values())
        assert splits.train.count() == splits.sizes[0]
        for df in (splits.valid, splits.test):
            df.unpersist()
        after = [sorted(map(tuple, df.collect())) for df in (splits.train, splits.valid, splits.test)]
        assert after == before
    finally:
        splits.__exit__(None, None, None)
        inputs.__exit__(None, None, None)
