"""Too little data stops the run before tuning, with exit 2 and a message naming what is missing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.main import main
from glue_jobs.recommender.stages import check_enough_data

pytestmark = pytest.mark.spark


def test_two_ratings_exit_2_before_tuning_and_write_nothing(spark, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             capsys: pytest.CaptureFixture[str],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    ratings = tmp_path / "two.tsv"
    ratings.write_text("1\t10\t50\n2\t11\t70\n")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="recommender"):
        code = main(["--input", str(ratings), "--output", str(out), "--shuffle-partitions", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: too little data to train and evaluate: " in err
    assert "(2 ratings: " in err and "need at least one rating in each split" in err
    assert "split is empty" in err or "splits are empty" in err
    assert not out.exists()
    started = [r.getMessage() for r in caplog.records if r.getMessage().endswith(": started")]
    assert started[-1] == "stage split: started", f"nothing may run after the split: {started}"


SCHEMA = "user_id int, artist_id int, rating int"


@pytest.mark.parametrize("train, test, missing", [
    ([(1, 10, 50), (1, 11, 60)], [(1, 12, 70)], "train holds the ratings of only one user"),
    ([(1, 10, 50), (2, 10, 60)], [(1, 12, 70)], "train holds the ratings of only one artist"),
    ([(1, 10, 50), (2, 11, 60)], [(3, 10, 70)], "no test user has ratings in train"),
    ([(1, 10, 50), (2, 11, 60)], [], "the test split is empty"),
])
def test_each_missing_need_is_named(spark, train, test, missing) -> None:  # type: ignore[no-untyped-def]
    train_df, test_df = spark.createDataFrame(train, SCHEMA), spark.createDataFrame(test, SCHEMA)
    sizes = (len(train), 1, len(test))
    counts = rf"\({sum(sizes)} ratings: {len(train)} train, 1 validation, {len(test)} test\)"
    with pytest.raises(JobFailed, match=rf"too little data to train and evaluate: {missing} {counts}"):
        check_enough_data(train_df, test_df, sizes)


def test_just_enough_data_passes(spark) -> None:  # type: ignore[no-untyped-def]
    train = spark.createDataFrame([(1, 10, 50), (2, 11, 60)], SCHEMA)
    test = spark.createDataFrame([(3, 10, 70), (2, 10, 70)], SCHEMA)
    check_enough_data(train, test, (2, 1, 2))  # user 2 is in both


def test_a_test_user_in_train_is_found_beyond_the_first_thousand_test_rows(spark) -> None:  # type: ignore[no-untyped-def]
    train = spark.createDataFrame([(1, 10, 50), (5000, 11, 60)], SCHEMA)
    test = spark.createDataFrame([(u, 10, 70) for u in range(2, 5001)], SCHEMA).orderBy("user_id")
    check_enough_data(train, test, (2, 1, 4999))
