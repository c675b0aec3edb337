"""The read and split stages' figures taken in fewer Spark passes are the ones the separate passes gave."""

from __future__ import annotations

import numpy as np
import pytest

from glue_jobs import contracts as c
from glue_jobs.recommender import local_model, stages
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.metrics import RATING_BUCKETS

pytestmark = pytest.mark.spark

SCHEMA = "user_id int, artist_id int, rating int"


def test_collect_rows_keeps_extreme_ids_ratings_and_splits_in_pair_order(spark) -> None:  # type: ignore[no-untyped-def]
    big = c.MAX_ID
    splits = [[(big, big, 100), (1, big, 0)], [(big, 1, 37)], [(1, 1, 0), (2, 5, 99)]]
    frames = [spark.createDataFrame(rows, SCHEMA).repartition(3) for rows in splits]
    blocked = spark.createDataFrame([(2, 7)], "user_id int, artist_id int")
    rows, pairs = local_model.collect_rows(frames, blocked)
    expected = sorted((u, a, r, s) for s, part in enumerate(splits) for u, a, r in part)
    assert rows.dtype == np.float64
    assert [tuple(int(v) for v in row) for row in rows] == expected
    assert pairs.tolist() == [[2.0, 7.0]]


def _local(train: list[tuple[int, int, int]], test: list[tuple[int, int, int]]) -> local_model.LocalData:
    rows = np.array([(*r, local_model.TRAIN) for r in train] + [(*r, local_model.TEST) for r in test]
                    + [(9, 9, 50, local_model.VALID)], dtype=np.float64).reshape(-1, 4)
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    return local_model.indexed(rows, np.zeros((0, 2)), np.unique(rows[:, 0]).astype(np.int64))


@pytest.mark.parametrize("train, test, missing", [
    ([(1, 10, 50), (1, 11, 60)], [(1, 12, 70)], "train holds the ratings of only one user"),
    ([(1, 10, 50), (2, 10, 60)], [(1, 12, 70)], "train holds the ratings of only one artist"),
    ([(1, 10, 50), (2, 11, 60)], [(3, 10, 70)], "no test user has ratings in train"),
    ([(1, 10, 50), (2, 11, 60)], [], "the test split is empty"),
    ([], [(3, 10, 70)], "the train split is empty"),
])
def test_the_checks_on_the_driver_name_what_sparks_name(spark, train, test, missing) -> None:  # type: ignore[no-untyped-def]
    sizes = (len(train), 1, len(test))
    with pytest.raises(JobFailed) as on_spark:
        stages.check_enough_data(spark.createDataFrame(train, SCHEMA), spark.createDataFrame(test, SCHEMA), sizes)
    local = _local(train, test)
    assert stages.local_split_sizes(local) == sizes
    with pytest.raises(JobFailed) as on_driver:
        stages.check_enough_local(local, sizes)
    assert missing in str(on_driver.value)
    assert str(on_driver.value) == str(on_spark.value)


def test_just_enough_data_passes_on_the_driver() -> None:
    stages.check_enough_local(_local([(1, 10, 50), (2, 11, 60)], [(3, 10, 70), (2, 10, 70)]), (2, 1, 2))


def test_input_figures_equal_the_separate_counts(spark) -> None:  # type: ignore[no-untyped-def]
    quarantine = spark.createDataFrame(
        [(c.DUPLICATE_PAIR, "f", "x"), (c.DUPLICATE_PAIR, "f", "y"), (c.NON_INTEGER_ID, "f", "z")],
        f"{c.QUARANTINE_REASON} string, {c.QUARANTINE_SOURCE} string, {c.QUARANTINE_LINE} string")
    blocked = spark.createDataFrame([(1, 3), (4, 3)], "user_id int, artist_id int")
    learn = spark.createDataFrame([(1, 1, 0), (1, 2, 100), (2, 1, 55), (3, 7, 55)], SCHEMA)
    counts, n_blocked, (n_learn, users, artists, histogram) = stages.input_figures(quarantine, blocked, learn)
    expected = {reason: 0 for reason in c.QUARANTINE_REASONS} | {c.DUPLICATE_PAIR: 2, c.NON_INTEGER_ID: 1}
    assert counts == expected and list(counts) == list(expected)
    assert (n_blocked, n_learn, users, artists) == (2, 4, 3, 3)
    bucket = stages.rating_bucket_column()
    assert histogram == tuple(learn.filter(bucket == i).count() for i in range(len(RATING_BUCKETS)))
    assert sum(histogram) == 4
