"""Similar artists on Spark: the tasks' lists are the driver's, and the bias-only model has none."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from pyspark.sql import types as T

from glue_jobs import contracts as c
from glue_jobs.recommender import similar
from glue_jobs.recommender.config import Feedback
from glue_jobs.recommender.model import BIAS, FEATURES, N_RATINGS, ModelParams, RecommenderModel

pytestmark = pytest.mark.spark

ITEMS = T.StructType([T.StructField(c.ARTIST_ID, T.IntegerType(), False),
                      T.StructField(BIAS, T.DoubleType(), False),
                      T.StructField(FEATURES, T.ArrayType(T.FloatType(), False), True),
                      T.StructField(N_RATINGS, T.LongType(), False)])


def model_of(spark, ids: np.ndarray, factors: np.ndarray | None, counts: np.ndarray, rank: int,  # type: ignore[no-untyped-def]
             partitions: int = 3) -> RecommenderModel:
    """A model whose items are these artists (features null where `factors` is None), spread over
    several partitions as ALS's item blocks are."""
    rows = [(int(a), 0.0, None if factors is None else factors[i].tolist(), int(counts[i]))
            for i, a in enumerate(ids.tolist())]
    items = spark.createDataFrame(rows, ITEMS).repartition(partitions)
    params = ModelParams(Feedback.EXPLICIT, rank, 0.1, 5, 50.0, 10.0, 0.0, 100.0, 42)
    return RecommenderModel(params, spark.createDataFrame([], "user_id int"), items)


def test_the_spark_path_gives_the_driver_paths_lists(spark) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    ids = rng.choice(100_000, size=300, replace=False)
    factors = rng.normal(size=(300, 8)).astype(np.float32)  # as Spark stores them
    factors[:5] = 0.0  # no direction: left out on both paths
    counts = rng.integers(1, 20, size=300)
    fitted = model_of(spark, ids, factors, counts, rank=8)
    # Blocks of 16 artists: each of the 3 partitions scores several.
    got = similar.similar_artists(spark, fitted, None, n=6, min_ratings=5, block=16)
    assert got is not None and tuple(got.columns) == c.SIMILAR_ARTIST_COLUMNS
    rows = [tuple(r) for r in got.collect()]
    driver = similar.on_driver(spark, similar.artist_vectors(ids, factors.astype(np.float64), counts, 5), 6)
    assert rows == [tuple(r) for r in driver.orderBy(c.ARTIST_ID, c.RANK).collect()]
    assert rows == sorted(rows, key=lambda r: (r[0], r[1])), "sorted by artist, rank"
    eligible = {int(a) for a, f, n in zip(ids, factors, counts) if n >= 5 and f.any()}
    assert {r[0] for r in rows} == eligible and {r[2] for r in rows} <= eligible
    assert len(rows) == 6 * len(eligible)


def test_a_bias_only_model_has_no_similar_artists(spark, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    ids = np.arange(1, 11)
    fitted = model_of(spark, ids, np.zeros((10, 0)), np.full(10, 50), rank=0)
    with caplog.at_level(logging.INFO, logger="recommender"):
        assert similar.similar_artists(spark, fitted, None, n=5, min_ratings=5) is None
    assert "no similar artists this run: the bias-only model (rank 0)" in caplog.text
