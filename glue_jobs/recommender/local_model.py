"""The final model fitted and evaluated in NumPy on the driver, when every rating fits there.

For input with at most `--tune-sample-ratings` learnable ratings (explicit or implicit), the ratings are
collected once (train, validation and test, with the 255 pairs) and the tuning, the refit on
train + validation and the test metrics all run on these arrays: a Spark ALS fit spends most of its
time scheduling per-iteration stages, and scoring the test split in Spark costs a dozen jobs. Spark
keeps what scales with the users: the top-N for everyone, the outputs and the publishing, which read
the factors as DataFrames built here. Larger inputs take the Spark path (`stages.fit`).

The model and the metrics are the Spark path's: the same biases, residual scale and ALS-WR objective
(`local_als`; for implicit feedback Spark's implicit objective on the same preferences), factors
rounded to float32 as Spark stores them, rankings and metrics as `recommend`/`evaluate` compute
them (tests hold the two paths together).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from glue_jobs import contracts as c
from glue_jobs.recommender import local_als, local_eval, recommend
from glue_jobs.recommender.config import Feedback
from glue_jobs.recommender.model import BIAS, BLEND_FEATURES, FEATURES, N_RATINGS, ModelParams, RecommenderModel

log = logging.getLogger("recommender")

TRAIN, VALID, TEST = 0, 1, 2
SPLIT = "_split"
PAIR, PAIR_SHIFT = "_pair", 31  # collect_rows' packed (user, artist): user << 31 | artist


DRIVER_RATINGS = 3_000_000  # the driver path's bound when --tune-sample-ratings is 0 (tune on all)


def eligible(ratings: int, bound: int) -> bool:
    """Learnable ratings (explicit or implicit feedback) that fit the driver bound: `--tune-sample-ratings`,
    or DRIVER_RATINGS when that is 0 (the tuning then sees every rating, but a full R1 refit and top-N
    for every user on one core would not do). Implicit feedback too: on 100k generated plays the run
    took 54 s on the driver against 306 s with Spark's tuning, fit and test metrics (medians of 4
    interleaved runs; tune 13 s against 215 s, fit 0.7 s against 10 s, evaluate 0.9 s against 13 s)."""
    return ratings <= (bound or DRIVER_RATINGS)


def collect_arrays(df: DataFrame, columns: list[str], dtype: type[np.generic] = np.float64) -> np.ndarray:
    """Numeric columns as one matrix (float64, or int64 for integer columns, which travel exactly).
    Each partition's column values travel as one list (a few objects to unpickle, not one Row per
    rating, and no Python workers): 3.5x faster than packing rows on the executors for 1M ratings.
    The lists of one group fill row by row in one aggregation, so they stay aligned."""
    cast = "long" if dtype is np.int64 else "double"
    parts = (df.groupBy(F.spark_partition_id().alias("_part"))
             .agg(*[F.collect_list(F.col(name).cast(cast)).alias(name) for name in columns]).collect())
    if not parts:
        return np.zeros((0, len(columns)), dtype=dtype)
    return np.column_stack([np.concatenate([np.asarray(row[name], dtype=dtype) for row in parts])
                            for name in columns])


@dataclass(frozen=True)
class LocalData:
    """Every learnable rating and 255 pair by dense index; users and artists from all of them, in id
    order, so a test-only user or artist has an index (and no bias or factors)."""

    ratings: local_als.Ratings  # values on the input's rating scale
    split_of: np.ndarray  # TRAIN, VALID or TEST per rating
    blocked_users: np.ndarray
    blocked_items: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    def part(self, *splits: int) -> local_als.Ratings:
        return self.ratings.subset(np.isin(self.split_of, splits))


def collect(train: DataFrame, valid: DataFrame, test: DataFrame, blocked: DataFrame) -> LocalData:
    """Every rating and 255 pair, indexed over every user and artist among them."""
    rows, pairs = collect_rows((train, valid, test), blocked)  # positions TRAIN, VALID, TEST
    return indexed(rows, pairs, np.unique(np.concatenate([rows[:, 0], pairs[:, 0]])).astype(np.int64))


def collect_rows(splits: Sequence[DataFrame], blocked: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """user, artist, rating and split (the position in `splits`) of every rating, in (user, artist)
    order, the same whatever the partitioning; and user, artist of every 255 pair."""
    # Two numbers travel per rating, not four: the pair as one long (ids are 1..2^31-1) and the rating
    # with its split in the low two bits. collect_list boxes every value, so this takes 3.9 s where
    # the four columns took 4.9 s on 1M ratings; sorting the packed pairs is the (user, artist) order.
    assert len(splits) <= 4, "a rating's split travels in two bits"
    pair = F.shiftleft(F.col(c.USER_ID).cast("long"), PAIR_SHIFT).bitwiseOR(F.col(c.ARTIST_ID).cast("long"))
    parts = [df.select(pair.alias(PAIR), (F.col(c.RATING).cast("long") * 4 + split).alias(SPLIT))
             for split, df in enumerate(splits)]
    packed = collect_arrays(functools.reduce(DataFrame.unionByName, parts), [PAIR, SPLIT], np.int64)
    packed = packed[np.argsort(packed[:, 0], kind="stable")]
    keys, values = packed[:, 0], packed[:, 1]
    rows = np.column_stack([keys >> PAIR_SHIFT, keys & ((1 << PAIR_SHIFT) - 1), values >> 2, values & 3])
    return rows.astype(np.float64), collect_arrays(blocked, [c.USER_ID, c.ARTIST_ID])


def indexed(rows: np.ndarray, pairs: np.ndarray, user_ids: np.ndarray) -> LocalData:
    """collect_rows' arrays by dense index over `user_ids` (sorted; the 255 pairs of other users
    are left out) and every artist rated or marked 255."""
    item_ids = np.unique(np.concatenate([rows[:, 1], pairs[:, 1]])).astype(np.int64)
    pairs = pairs[np.isin(pairs[:, 0], user_ids)]
    ratings = local_als.Ratings(np.searchsorted(user_ids, rows[:, 0]), np.searchsorted(item_ids, rows[:, 1]),
                                rows[:, 2], user_ids.size, item_ids.size)
    return LocalData(ratings, rows[:, 3].astype(np.int8), np.searchsorted(user_ids, pairs[:, 0]),
                     np.searchsorted(item_ids, pairs[:, 1]), user_ids, item_ids)


@dataclass(frozen=True)
class LocalModel:
    """The refit on train + validation, as arrays over LocalData's indices."""

    data: LocalData
    params: ModelParams
    prepared: local_als.Prepared  # biases 0 where a user or artist has no fit rating
    factors: local_als.Factors  # float32 values (as Spark stores them), zeros where no fit rating
    user_counts: np.ndarray  # fit ratings per user
    item_counts: np.ndarray  # fit ratings per artist (the popularity prior's n_ratings)
    companion: local_als.Factors | None = None  # float32 values; when params.blended

    def catalog(self) -> recommend.Catalog:
        """recommend.catalog_of over the artists with fit ratings."""
        items = np.flatnonzero(self.item_counts)
        return recommend.catalog_of(self.params, *catalog_arrays(self),
                                    None if self.companion is None else self.companion.items[items])

    def user_vectors(self) -> np.ndarray:
        """Every user's [x_u, 1(, z_u)], as recommend.model_user_vectors builds them."""
        ones = np.ones((self.data.user_ids.size, 1))
        return np.hstack([self.factors.users, ones, *([] if self.companion is None else [self.companion.users])])


@dataclass(frozen=True)
class Blend:
    """The implicit companion's settings (ModelParams.blended when weight > 0)."""

    weight: float = 0.0
    rank: int = 0
    reg_param: float = 0.0


def fit(data: LocalData, *, rank: int, reg_param: float, max_iter: int, bias_reg: float, seed: int,
        popularity_weight: float, feedback: Feedback, alpha: float, blend: Blend = Blend()) -> LocalModel:
    """Implicit feedback: local_als.fit_implicit on the preferences, with model.fit's parameters for
    it (no mean, no biases, residual scale 1), so it ranks by x_u . y_i plus the prior. With a
    `blend` weight, the companion model too (local_als.fit_companion).

    One BLAS thread, as in the tuning: the small batched products gain nothing from more, and on 2
    busy cores OpenBLAS's spinning threads made the 100k refit (rank 10, 10 iterations) 5-10x slower:
    implicit 3.2-6.1 s against 0.35-0.61 s, explicit 1.2-1.3 s against 0.2-0.3 s (3 interleaved runs)."""
    start = time.perf_counter()
    ratings = data.part(TRAIN, VALID)
    with local_als.single_threaded_blas():
        prepared = local_als.prepare_for(ratings, feedback, bias_reg)
        factors = local_als.fit_for(local_als.Layout.of(prepared.residuals), feedback, rank=rank,
                                    reg_param=reg_param, alpha=alpha, iterations=max_iter, seed=seed)
        companion = (local_als.fit_companion(ratings, rank=blend.rank, reg_param=blend.reg_param,
                                             iterations=max_iter, seed=seed) if blend.weight > 0 else None)
    factors = _as_float32(factors)
    params = ModelParams(feedback, rank, reg_param, max_iter, prepared.global_mean, prepared.scale,
                         *feedback.rating_scale, seed, popularity_weight, blend.weight,
                         blend.rank if blend.weight > 0 else 0)
    log.info("fitted rank=%d reg=%g in NumPy on %s ratings in %.1f s", rank, reg_param, f"{ratings.values.size:,}",
             time.perf_counter() - start)
    return LocalModel(data, params, prepared, factors, np.bincount(ratings.users, minlength=ratings.n_users),
                      np.bincount(ratings.items, minlength=ratings.n_items),
                      None if companion is None else _as_float32(companion))


def _as_float32(factors: local_als.Factors) -> local_als.Factors:
    """The values Spark would store (float32), as float64 arrays."""
    return local_als.Factors(*(f.astype(np.float32).astype(np.float64) for f in (factors.users, factors.items)))


_USERS = T.StructType([T.StructField(c.USER_ID, T.IntegerType(), False),
                       T.StructField(BIAS, T.DoubleType(), False),
                       T.StructField(FEATURES, T.ArrayType(T.FloatType(), False), True)])
_BLEND = T.StructField(BLEND_FEATURES, T.ArrayType(T.FloatType(), False), True)
_ITEMS = T.StructType([T.StructField(c.ARTIST_ID, T.IntegerType(), False),
                       T.StructField(BIAS, T.DoubleType(), False),
                       T.StructField(FEATURES, T.ArrayType(T.FloatType(), False), True),
                       T.StructField(N_RATINGS, T.LongType(), False)])


def as_spark(spark: SparkSession, model: LocalModel) -> RecommenderModel:
    """The RecommenderModel the Spark path would hold: users and artists with fit ratings. Implicit
    feedback: users' bias 0 and each artist's the share of the fit's users who played it, as
    model.fit writes them (only a user the model never saw is answered with it)."""
    data, p, f = model.data, model.prepared, model.factors
    users = np.flatnonzero(model.user_counts)
    items = np.flatnonzero(model.item_counts)
    item_bias = (p.item_bias if model.params.feedback.has_ratings
                 else model.item_counts / max(users.size, 1))  # the pairs are distinct (ingest)
    user_cols: list[list[object]] = [data.user_ids[users].tolist(), p.user_bias[users].tolist(),
                                     f.users[users].tolist()]
    item_cols: list[list[object]] = [data.item_ids[items].tolist(), item_bias[items].tolist(), f.items[items].tolist(),
                                     model.item_counts[items].tolist()]
    user_schema, item_schema = _USERS, _ITEMS
    if model.companion is not None:
        user_cols.append(model.companion.users[users].tolist())
        item_cols.append(model.companion.items[items].tolist())
        user_schema, item_schema = (T.StructType([*schema.fields, _BLEND]) for schema in (_USERS, _ITEMS))
    return RecommenderModel(model.params, spark.createDataFrame(list(zip(*user_cols)), user_schema).cache(),
                            spark.createDataFrame(list(zip(*item_cols)), item_schema).cache())


def catalog_arrays(model: LocalModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ids, bias, factors and n_ratings of the artists with factors, in artist-id order."""
    items = np.flatnonzero(model.item_counts)
    return (model.data.item_ids[items], model.prepared.item_bias[items], model.factors.items[items],
            model.item_counts[items])


DRIVER_LIST_ROWS = 2_000_000  # recommendations built as Python tuples on the driver, at most


def lists_fit_driver(model: LocalModel, n: int) -> bool:
    """Whether every user's top-n fits the driver as Python rows: sparse data (a million users
    within the ratings bound) would make millions of tuples there; Spark ranks those instead."""
    return model.data.user_ids.size * n <= DRIVER_LIST_ROWS


def top_n(spark: SparkSession, model: LocalModel, catalog: recommend.Catalog, n: int) -> DataFrame:
    """recommend.recommend for every user of the input (rated or 255), scored on the driver by the
    same block scorer: nothing any user rated, in any split, or marked 255."""
    data = model.data
    users = np.concatenate([data.ratings.users, data.blocked_users])
    items = np.concatenate([data.ratings.items, data.blocked_items])
    order = np.lexsort((items, users))
    seen = np.split(data.item_ids[items[order]], np.cumsum(np.bincount(users, minlength=data.user_ids.size))[:-1])
    vectors = model.user_vectors()
    clip = (model.params.rating_min, model.params.rating_max) if model.params.feedback.has_ratings else None
    rows: list[recommend.Row] = []
    block = recommend.block_rows(catalog.artist_ids.size)
    for start in range(0, data.user_ids.size, block):
        batch = [{c.USER_ID: int(data.user_ids[u]), "vec": vectors[u], "offset": model.prepared.user_bias[u],
                  "seen": seen[u].tolist()} for u in range(start, min(start + block, data.user_ids.size))]
        rows.extend(recommend.score_block(batch, catalog, n, clip))
    return spark.createDataFrame(rows, recommend.RECOMMENDATION_SCHEMA)


# --- the test split's metrics ------------------------------------------------------------------
@dataclass(frozen=True)
class Errors:
    rmse: float
    mae: float


def rating_errors(model: LocalModel, baseline_bias_reg: float | None = None) -> dict[str, Errors]:
    """The model's, the bias-only model's and the global mean's errors on every test rating,
    predicted and clipped as `evaluate.prediction_errors` does. The bias-only model's biases are
    refitted with `baseline_bias_reg` when given (the baseline's own shrinkage)."""
    test = model.data.part(TEST)
    zero = local_als.Factors(np.zeros_like(model.factors.users), np.zeros_like(model.factors.items))
    scale = model.params.rating_min, model.params.rating_max
    biases = (model.prepared if baseline_bias_reg is None
              else local_als.prepare(model.data.part(TRAIN, VALID), baseline_bias_reg))
    predictions = {"": local_als.predict(model.prepared, model.factors, test.users, test.items, scale),
                   "bias_": local_als.predict(biases, zero, test.users, test.items, scale),
                   "global_mean_": np.full(test.values.size, model.prepared.global_mean)}
    out = {}
    for name, predicted in predictions.items():
        err = predicted - test.values
        out[name] = (Errors(float(np.sqrt(np.mean(err ** 2))), float(np.mean(np.abs(err)))) if err.size
                     else Errors(float("nan"), float("nan")))
    return out


def of_some_users(users: np.ndarray, rows: np.ndarray, bound: int, seed: int) -> np.ndarray:
    """`rows` (a mask over ratings whose users are `users`) narrowed to `bound` of their distinct
    users, drawn with a seeded generator; all of them when fewer or `bound` is 0."""
    distinct = np.unique(users[rows])
    if not bound or distinct.size <= bound:
        return rows
    return rows & np.isin(users, np.random.default_rng(seed).choice(distinct, size=bound, replace=False))


def ranking(model: LocalModel, k: int, threshold: float, eval_users: int,
            seed: int) -> tuple[dict[str, float], dict[str, float], int]:
    """Ranking metrics at k of the model's lists and of the popularity baseline's, over the test
    users with a relevant test rating (about `eval_users` of them), and how many users that was.
    Relevant and popular as evaluate.relevant_items and evaluate.popularity count them: liked
    ratings (explicit), every play (implicit)."""
    data, feedback = model.data, model.params.feedback
    test, fitted = data.part(TEST), data.part(TRAIN, VALID)
    keep = of_some_users(test.users, local_eval.relevant(test.values, feedback, threshold), eval_users, seed)
    task = local_eval.ranking_task(test.users[keep], test.items[keep],
                                   np.concatenate([fitted.users, data.blocked_users]),
                                   np.concatenate([fitted.items, data.blocked_items]), test.n_items)
    catalog = np.flatnonzero(model.item_counts)
    # The lists' own ranking (model.catalog(), recommend.block_cost): biases, prior and blend as the
    # top-N adds them; the user's offset orders nothing, so it is left out.
    cat, vectors = model.catalog(), model.user_vectors()

    def model_scores(users: np.ndarray) -> np.ndarray:
        return -recommend.block_cost(cat, vectors[users])

    liked_fit = local_eval.relevant(fitted.values, feedback, threshold).astype(np.float64)
    popularity = (np.bincount(fitted.items, liked_fit, minlength=fitted.n_items)
                  + 1e-6 * model.item_counts)[catalog]

    def popular_scores(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(popularity, (users.size, catalog.size))

    return (local_eval.ranking_metrics(task, catalog, model_scores, k),
            local_eval.ranking_metrics(task, catalog, popular_scores, k), int(task.users.size))
