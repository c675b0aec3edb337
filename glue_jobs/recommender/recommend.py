"""Top-N per user without ever materialising users x artists as rows.

The artist side (ids, factor matrix, offsets) is small (98K artists for R1) and is broadcast;
users stream through in blocks, each block scored with one matrix product in NumPy, with the
artists the user already rated or marked 255 masked out before the top-N is taken. Ties are
broken by artist id, so the output is deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import Any

import numpy as np
from pyspark.accumulators import Accumulator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from glue_jobs import contracts as c
from glue_jobs.recommender.model import BIAS, BLEND_FEATURES, FEATURES, N_RATINGS, ModelParams, RecommenderModel

BLOCK_CELLS = 1_000_000  # users x artists scored at once (8 MB of float64: a block stays in cache)


def block_rows(n_items: int) -> int:
    """Users scored at once against `n_items` artists: BLOCK_CELLS cells, at most 4096 users."""
    return max(1, min(4096, BLOCK_CELLS // max(n_items, 1)))


RECOMMENDATION_SCHEMA = T.StructType([
    T.StructField(c.USER_ID, T.IntegerType(), False),
    T.StructField(c.RANK, T.IntegerType(), False),
    T.StructField(c.ARTIST_ID, T.IntegerType(), False),
    T.StructField(c.SCORE, T.DoubleType(), False),
    T.StructField(c.PREDICTED_RATING, T.DoubleType(), True),
])
Row = tuple[int, int, int, float, float | None]  # RECOMMENDATION_SCHEMA


@dataclass(frozen=True)
class Catalog:
    """The artists that can be recommended, in artist-id order (which breaks ties)."""

    artist_ids: np.ndarray  # int64, sorted
    matrix: np.ndarray  # artists x d
    offsets: np.ndarray  # per-artist constant added to the score
    prior: np.ndarray | None = None  # per-artist bonus added to the ranking score, not to the rating
    # artists x r: the companion model's factors times its weight in the ranking, not in the rating;
    # the users' vectors then hold d + r values, their companion factors after the model's d
    blend: np.ndarray | None = None

    @cached_property
    def cost_matrix(self) -> np.ndarray:
        """(d [+ r] + 1) x artists, contiguous: a user's [vec, 1] times it is minus the ranking score
        without the user's own offset (which orders nothing), so one matrix product gives the
        cost that lowest_k selects from, with no pass over the block to add biases, prior and blend."""
        ranking_offsets = self.offsets if self.prior is None else self.offsets + self.prior
        parts = [self.matrix, *([] if self.blend is None else [self.blend]), ranking_offsets[:, None]]
        return np.ascontiguousarray(-np.hstack(parts).T)


def top_n_by_user(spark: SparkSession, users: DataFrame, catalog: Catalog, exclude: DataFrame,
                  n: int, clip: tuple[float, float] | None, clock: Accumulator[float] | None = None) -> DataFrame:
    """users: user_id, vec (array<double> of length d), offset (double).
    exclude: user_id, artist_id pairs that must not be recommended to that user.
    Returns user_id, rank (1..n), artist_id, score (the ranking score: prediction + prior,
    non-increasing in rank), predicted_rating (the prediction clipped to `clip`; null without
    a rating scale, clip None).

    `clock` (an accumulator) collects the seconds the tasks spend in score_block: the work that
    grows with users x artists, apart from what grows with the users alone (their seen lists,
    Python rows, the output). tools/estimate_r1.py prices the two apart. A partition computed
    twice counts twice."""
    rows = with_seen(users, exclude).select(c.USER_ID, "vec", "offset", "seen")
    bc = spark.sparkContext.broadcast(catalog)

    def scored(batch: list[Any], cat: Catalog) -> list[Row]:
        start = time.perf_counter()
        out = list(score_block(batch, cat, n, clip))
        if clock is not None:
            clock.add(time.perf_counter() - start)
        return out

    def score_partition(part: Iterable[Any]) -> Iterator[Row]:
        cat: Catalog = bc.value
        n_items = cat.artist_ids.size
        block = block_rows(n_items)
        batch: list[Any] = []
        for row in part:
            batch.append(row)
            if len(batch) >= block:
                yield from scored(batch, cat)
                batch = []
        if batch:
            yield from scored(batch, cat)

    out = rows.rdd.mapPartitions(score_partition)
    return spark.createDataFrame(out, RECOMMENDATION_SCHEMA)


def with_seen(users: DataFrame, exclude: DataFrame) -> DataFrame:
    """`users` (one row per user_id) with `seen`: the list of artists `exclude` pairs with each
    user, null for a user without any; the lists a top-N step masks."""
    seen = exclude.groupBy(c.USER_ID).agg(F.collect_list(c.ARTIST_ID).alias("seen"))
    return users.join(seen, c.USER_ID, "left")


PREFILTER_STRIDE = 16  # lowest_k's sample: every 16th column


def lowest_k(cost: np.ndarray, k: int) -> np.ndarray:
    """Columns of each row's k lowest costs, lowest first, ties to the lower column; -1 where a
    row has fewer than k finite values (+inf masks a cell). Works on `cost` as given, without a copy.

    Wide rows go through a prefilter: the k-th lowest of every PREFILTER_STRIDE-th column bounds
    each row's k-th lowest from above, so the cells at or under that bound hold the row's exact
    k lowest, ties included (about k x stride of them). Selecting among those instead of the whole
    row halved the validation curve at 1M ratings (6 weights, 11k users x 10k artists; 14.3 s against
    7.6 s, medians of 3 interleaved runs on a busy machine): argpartition over every cell was 80% of it."""
    n, m = cost.shape
    if k and m >= 4 * k * PREFILTER_STRIDE and n:
        bound = np.partition(cost[:, ::PREFILTER_STRIDE], k - 1, axis=1)[:, k - 1]
        exact = np.isfinite(bound)  # rows with fewer than k unmasked sampled cells: the whole row
        # flatnonzero: 2-D nonzero costs 16x as much per cell (1.96 against 0.12 ns at 81 x 98k)
        rows, cols = np.divmod(np.flatnonzero(cost <= np.where(exact, bound, np.nan)[:, None]), m)
        counts = np.bincount(rows, minlength=n)
        width = int(counts.max())
        if 0 < width <= m // 4:
            # the candidates of each row, in column order, padded with masked cells
            slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
            narrow = np.full((n, width), np.inf, dtype=cost.dtype)
            narrow[rows, slot] = cost[rows, cols]
            where = np.full((n, width), -1)
            where[rows, slot] = cols
            chosen = _lowest_k_full(narrow, k)
            out = np.where(chosen >= 0, np.take_along_axis(where, np.maximum(chosen, 0), 1), -1)
            if not exact.all():
                out[~exact] = _lowest_k_full(cost[~exact], k)
            return out
    return _lowest_k_full(cost, k)


def _lowest_k_full(cost: np.ndarray, k: int) -> np.ndarray:
    m = cost.shape[1]
    take = min(k, m)
    if take == 0:
        return np.full((cost.shape[0], k), -1)
    part = np.argpartition(cost, take if take < m else take - 1, axis=1)
    chosen = part[:, :take]
    kth = np.take_along_axis(cost, chosen, 1).max(axis=1)
    if take < m:
        # argpartition picks arbitrarily among values equal to the k-th: redo the rows where the
        # next value ties with it (rare: exact float ties)
        tied = np.take_along_axis(cost, part[:, take:take + 1], 1)[:, 0] == kth
        for row in np.flatnonzero(tied & np.isfinite(kth)):
            cand = np.flatnonzero(cost[row] <= kth[row])
            chosen[row] = cand[np.lexsort((cand, cost[row, cand]))][:take]
    vals = np.take_along_axis(cost, chosen, 1)
    order = np.lexsort((chosen, vals), axis=1)
    chosen, vals = np.take_along_axis(chosen, order, 1), np.take_along_axis(vals, order, 1)
    chosen[~np.isfinite(vals)] = -1
    return np.pad(chosen, ((0, 0), (0, k - take)), constant_values=-1)


def block_cost(cat: Catalog, vecs: np.ndarray) -> np.ndarray:
    """Users' vectors (rows) against the catalog: minus each ranking score without the user's
    offset, in one matrix product (cat.cost_matrix), as lowest_k selects from."""
    return np.hstack([vecs, np.ones((vecs.shape[0], 1))]) @ cat.cost_matrix


def score_block(batch: list[Any], cat: Catalog, n: int, clip: tuple[float, float] | None) -> Iterator[Row]:
    """Top-n rows of a block of users (mappings with user_id, vec, offset and seen: the artist ids
    never to recommend); the Spark partitions and local_model.top_n both score through here.

    The block's cost (minus the ranking score) is one matrix product against cat.cost_matrix; the
    user's offset and the predicted rating are added for the n chosen artists only, so the block
    is written once and read by the selection. 3,000 users against 98k artists (R1's catalogue),
    rank 10: 0.65 s against 3.19 s when biases, prior and sign were added to a 64 MB score matrix,
    with the same rows (medians of 3, interleaved; 1M-cell blocks and lowest_k's flatnonzero included)."""
    n_items = cat.artist_ids.size
    if n_items == 0:
        return
    vecs = np.array([row["vec"] for row in batch], dtype=np.float64)
    offsets = np.array([row["offset"] for row in batch], dtype=np.float64)
    cost = block_cost(cat, vecs)
    seen = [row["seen"] or () for row in batch]
    lengths = np.fromiter(map(len, seen), dtype=np.int64, count=len(batch))
    if lengths.any():
        flat = np.fromiter(chain.from_iterable(seen), dtype=np.int64, count=int(lengths.sum()))
        pos = np.minimum(np.searchsorted(cat.artist_ids, flat), n_items - 1)
        inside = cat.artist_ids[pos] == flat  # artists outside the catalog: nothing to mask
        cost[np.repeat(np.arange(len(batch)), lengths)[inside], pos[inside]] = np.inf
    top = lowest_k(cost, n)  # the whole block at once; -1 past the artists left to a user
    rows, ranks = np.nonzero(top >= 0)  # user by user, best first
    cols = top[rows, ranks]
    # Rounding is monotone, and so is adding one offset: the scores never rise down a list.
    scores = [round(s, 4) for s in (offsets[rows] - cost[rows, cols]).tolist()]
    ratings: list[float | None] = [None] * cols.size
    if clip is not None:  # the model's own d values of each vector: the rating has no blend
        d = cat.matrix.shape[1]
        predicted = np.einsum("ij,ij->i", cat.matrix[cols], vecs[rows, :d]) + cat.offsets[cols] + offsets[rows]
        ratings = [round(r, 4) for r in np.clip(predicted, clip[0], clip[1]).tolist()]
    user_ids = [int(row[c.USER_ID]) for row in batch]
    for i, rank, artist, score, rating in zip(rows.tolist(), (ranks + 1).tolist(), cat.artist_ids[cols].tolist(),
                                              scores, ratings):
        yield user_ids[i], rank, artist, score, rating


def model_catalog(model: RecommenderModel) -> Catalog:
    """Artists with factors, as rows [scale * y_i, 0] with offsets mu + b_i; users pair with
    [x_u, 1] and offset b_u, so a score is mu + b_u + b_i + scale * x_u . y_i (the trailing
    column adds nothing: a catalog and its user vectors keep one shape in both modes).

    The ranking score adds popularity_weight * log(1 + n_ratings): a predicted rating alone ranks
    obscure artists with a lucky estimate first, while what a user will actually play and like
    also depends on how likely they are to meet the artist at all. A blended model (explicit
    feedback, ModelParams.blended) also adds blend_weight * scale * z_u . g_i, the implicit
    companion's score: how likely the user is to rate the artist at all (model.fit_companion)."""
    p = model.params
    columns = [c.ARTIST_ID, BIAS, FEATURES, N_RATINGS, *([BLEND_FEATURES] if p.blended else [])]
    rows = model.items.filter(F.col(FEATURES).isNotNull()).select(*columns).orderBy(c.ARTIST_ID).collect()
    blend = (np.array([r[BLEND_FEATURES] or [0.0] * p.blend_rank for r in rows], dtype=np.float64)
             .reshape(len(rows), p.blend_rank) if p.blended else None)
    return catalog_of(p, np.array([r[c.ARTIST_ID] for r in rows], dtype=np.int64),
                      np.array([r[BIAS] for r in rows], dtype=np.float64),
                      np.array([r[FEATURES] for r in rows], dtype=np.float64).reshape(len(rows), -1),
                      np.array([r[N_RATINGS] or 0 for r in rows], dtype=np.float64), blend)


def catalog_of(p: ModelParams, ids: np.ndarray, bias: np.ndarray, factors: np.ndarray,
               n_ratings: np.ndarray, blend: np.ndarray | None = None) -> Catalog:
    """model_catalog from arrays (artists with factors, in artist-id order); `blend`: the
    companion's factors of the same artists (used when p.blended)."""
    weighted = None
    if p.blended:
        assert blend is not None, "a blended model needs its companion's factors"
        weighted = p.blend_weight * p.residual_scale * blend
    if not ids.size:
        return Catalog(ids, np.zeros((0, p.rank + 1)), np.zeros(0), blend=weighted)
    if p.feedback.has_ratings:
        matrix = np.hstack([p.residual_scale * factors, np.zeros((ids.size, 1))])
        offsets = p.global_mean + bias
    else:
        matrix = np.hstack([factors, np.zeros((ids.size, 1))])
        offsets = np.zeros(ids.size)
    return Catalog(ids, matrix, offsets, p.popularity_weight * np.log1p(n_ratings.astype(np.float64)), weighted)


def model_user_vectors(model: RecommenderModel, user_ids: DataFrame) -> DataFrame:
    """user_id, vec, offset for the given users; users without factors get zeros, so they
    receive the artists' bias ranking (still excluding what they rated)."""
    p = model.params
    zeros = F.array_repeat(F.lit(0.0), p.rank)
    joined = user_ids.select(c.USER_ID).distinct().join(model.users, c.USER_ID, "left")
    parts = [F.coalesce(F.col(FEATURES).cast("array<double>"), zeros), F.array(F.lit(1.0))]
    if p.blended:  # the companion's factors after the model's (Catalog.blend)
        parts.append(F.coalesce(F.col(BLEND_FEATURES).cast("array<double>"), F.array_repeat(F.lit(0.0), p.blend_rank)))
    vec = F.concat(*parts)
    offset = F.coalesce(F.col(BIAS), F.lit(0.0)) if p.feedback.has_ratings else F.lit(0.0)
    return joined.select(c.USER_ID, vec.alias("vec"), offset.cast("double").alias("offset"))


def recommend(spark: SparkSession, model: RecommenderModel, user_ids: DataFrame,
              exclude: DataFrame, n: int, catalog: Catalog | None = None,
              clock: Accumulator[float] | None = None) -> DataFrame:
    catalog = catalog or model_catalog(model)
    users = model_user_vectors(model, user_ids)
    p = model.params
    return top_n_by_user(spark, users, catalog, exclude, n,
                         (p.rating_min, p.rating_max) if p.feedback.has_ratings else None, clock)
