"""Similar artists ("fans also like"): per artist, the artists whose factors point the same way.

The final model's artist factors place artists that the same users rate alike close together;
the cosine of two factor vectors is their similarity. Each artist's top-N is computed in blocks
of artists, one matrix product per block against the broadcast unit-length factor matrix (as
`recommend` scores users), so artists x artists never exists as rows or as one matrix and a
task's memory stays flat however large the catalogue. Artists with fewer than
--min-artist-ratings ratings in the final fit have factors shaped mostly by the regularisation:
they neither get a list nor appear in one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from glue_jobs import contracts as c
from glue_jobs.recommender import local_model, recommend
from glue_jobs.recommender.model import FEATURES, N_RATINGS, RecommenderModel

log = logging.getLogger("recommender")

SIMILAR_SCHEMA = T.StructType([
    T.StructField(c.ARTIST_ID, T.IntegerType(), False),
    T.StructField(c.RANK, T.IntegerType(), False),
    T.StructField(c.SIMILAR_ARTIST_ID, T.IntegerType(), False),
    T.StructField(c.SIMILARITY, T.DoubleType(), False),
])
SimilarRow = tuple[int, int, int, float]  # SIMILAR_SCHEMA
DIGITS = c.SIMILARITY_DIGITS  # ranked as published, so equal shown values are always in artist-id order


@dataclass(frozen=True)
class ArtistVectors:
    """The eligible artists' factors scaled to unit length, in artist-id order (which breaks ties)."""

    artist_ids: np.ndarray  # int64, sorted
    unit: np.ndarray  # artists x rank, every row of length 1

    @property
    def size(self) -> int:
        return int(self.artist_ids.size)


def artist_vectors(ids: np.ndarray, factors: np.ndarray, n_ratings: np.ndarray, min_ratings: int) -> ArtistVectors:
    """The artists with at least `min_ratings` fit ratings and a non-zero factor vector (a zero
    vector has no direction to compare), unit-normalised and sorted by artist id."""
    if not np.size(ids):
        return ArtistVectors(np.zeros(0, dtype=np.int64), np.zeros((0, 0)))
    order = np.argsort(ids, kind="stable")
    ids = np.asarray(ids, dtype=np.int64)[order]
    vectors = np.asarray(factors, dtype=np.float64).reshape(ids.size, -1)[order]
    norms = np.linalg.norm(vectors, axis=1)
    keep = (np.asarray(n_ratings)[order] >= min_ratings) & (norms > 0)
    return ArtistVectors(ids[keep], vectors[keep] / norms[keep, None])


def similar_block(query_ids: np.ndarray, vectors: ArtistVectors, n: int) -> Iterator[SimilarRow]:
    """The top-n most similar artists of each query artist (ids that are in `vectors`), itself
    excluded, best first, ties by artist id: one matrix product for the whole block."""
    size = vectors.size
    take = min(n, size - 1)
    if take <= 0 or not query_ids.size:
        return
    pos = np.searchsorted(vectors.artist_ids, query_ids)
    sims = vectors.unit[pos] @ vectors.unit.T
    sims[np.arange(pos.size), pos] = -np.inf  # never similar to itself
    kth = np.partition(sims, size - take, axis=1)[:, size - take]
    for i, artist in enumerate(query_ids.tolist()):
        # Rounding is monotone: what ranks in the top `take` once rounded lies within one unit of
        # the last digit below the raw kth value, so only those are rounded (rounding the whole
        # block cost more than its matrix product).
        cand = np.flatnonzero(sims[i] >= kth[i] - 10.0 ** -DIGITS)
        shown = np.round(sims[i, cand], DIGITS)
        order = np.lexsort((cand, -shown))[:take]  # cand is in id order: ties go to the lower id
        for rank, j in enumerate(order.tolist(), start=1):
            yield int(artist), rank, int(vectors.artist_ids[cand[j]]), float(shown[j])


def similar_rows(query_ids: np.ndarray, vectors: ArtistVectors, n: int,
                 block: int | None = None) -> Iterator[SimilarRow]:
    """similar_block over `query_ids` in blocks of `block` artists (default: as many as fit
    recommend.BLOCK_CELLS similarities against every eligible artist)."""
    step = block or recommend.block_rows(vectors.size)
    for start in range(0, query_ids.size, step):
        yield from similar_block(query_ids[start:start + step], vectors, n)


def on_driver(spark: SparkSession, vectors: ArtistVectors, n: int, block: int | None = None) -> DataFrame:
    """Every eligible artist's list, computed on the driver (the factors are NumPy arrays there)."""
    rows = list(similar_rows(vectors.artist_ids, vectors, n, block))
    return spark.createDataFrame(rows, SIMILAR_SCHEMA)


def on_spark(spark: SparkSession, artists: DataFrame, vectors: ArtistVectors, n: int,
             block: int | None = None) -> DataFrame:
    """Every eligible artist's list, computed by the tasks: `artists` (artist_id) is split over
    them as it is partitioned, each scores its artists in blocks against the broadcast vectors;
    ids that are not eligible are skipped."""
    bc = spark.sparkContext.broadcast(vectors)

    def score_partition(part: Iterable[Any]) -> Iterator[SimilarRow]:
        known: ArtistVectors = bc.value
        ids = np.fromiter((row[c.ARTIST_ID] for row in part), dtype=np.int64)
        yield from similar_rows(np.unique(ids[np.isin(ids, known.artist_ids)]), known, n, block)

    return spark.createDataFrame(artists.select(c.ARTIST_ID).rdd.mapPartitions(score_partition), SIMILAR_SCHEMA)


def model_vectors(items: DataFrame, min_ratings: int) -> ArtistVectors:
    """artist_vectors of a model's items (artist_id, features, n_ratings), collected to the driver
    (artists x rank numbers: 39 MB at full R1 with rank 50, as recommend.model_catalog collects)."""
    rows = (items.filter(F.col(FEATURES).isNotNull() & (F.col(N_RATINGS) >= min_ratings))
            .select(c.ARTIST_ID, FEATURES, N_RATINGS).collect())
    return artist_vectors(np.array([r[c.ARTIST_ID] for r in rows], dtype=np.int64),
                          np.array([r[FEATURES] for r in rows], dtype=np.float64),
                          np.array([r[N_RATINGS] for r in rows], dtype=np.int64), min_ratings)


def similar_artists(spark: SparkSession, fitted: RecommenderModel, local: local_model.LocalModel | None, n: int,
                    min_ratings: int, block: int | None = None) -> DataFrame | None:
    """Each eligible artist's top-n similar artists: c.SIMILAR_ARTIST_COLUMNS sorted by artist_id,
    rank. On the driver when the model was fitted there and the lists fit it as Python rows, else
    by Spark. None for the bias-only model (rank 0), which has no factors to compare."""
    if fitted.params.rank == 0:
        log.info("no similar artists this run: the bias-only model (rank 0) has no artist factors to compare")
        return None
    if local is not None:
        ids, _, factors, counts = local_model.catalog_arrays(local)
        vectors = artist_vectors(ids, factors, counts, min_ratings)
        if vectors.size * n <= local_model.DRIVER_LIST_ROWS:
            return on_driver(spark, vectors, n, block).orderBy(c.ARTIST_ID, c.RANK)
    else:
        vectors = model_vectors(fitted.items, min_ratings)
    lists = on_spark(spark, fitted.items, vectors, n, block)
    return lists.orderBy(c.ARTIST_ID, c.RANK)
