"""The model: global mean + regularised user/artist biases + ALS on the scaled residuals.

Spark's ALS has no mean or bias terms, so on a 0..100 scale it spends its factors learning
that some users rate high and some artists are loved; it then loses to predicting the average.
Here the biases are fitted first (a few alternating least-squares sweeps with shrinkage), ALS
learns only what the biases cannot explain, and predictions are put back on the rating scale.
Implicit feedback uses ALS's implicit preferences and no biases.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from pyspark.ml.recommendation import ALS
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import storage
from glue_jobs.recommender.config import Feedback

BIAS = "bias"
FEATURES = "features"
PREDICTION = "prediction"
RESIDUAL = "residual"
PREFERENCE = "preference"  # implicit feedback: what ALS learns from, 1 + rating / RATING_MAX (see prepare)
N_RATINGS = "n_ratings"
BIAS_SWEEPS = 3
BLEND_FEATURES = "blend_features"  # the implicit companion model's factors (see fit_companion)
RATED = "rated"
# The companion's confidence scale: every rated pair is preference 1 with confidence 1 + BLEND_ALPHA.
# On generated 1..5 star data (100k) alpha 1 and 2 ranked alike on validation; 5 and 20 worse.
BLEND_ALPHA = 1.0


@dataclass(frozen=True)
class ModelParams:
    feedback: Feedback
    rank: int
    reg_param: float
    max_iter: int
    global_mean: float
    residual_scale: float
    rating_min: float
    rating_max: float
    seed: int
    popularity_weight: float = 0.0  # ranking bonus per log(1 + n_ratings); see recommend.py
    blend_weight: float = 0.0  # ranking bonus: this x residual_scale x the companion's score; 0: none
    blend_rank: int = 0  # the companion's rank (0 without one)

    @property
    def blended(self) -> bool:
        """Whether the ranking adds the implicit companion model's score (fit_companion)."""
        return self.blend_weight > 0 and self.blend_rank > 0


@dataclass
class RecommenderModel:
    """Everything needed to score: parameters, per-user and per-artist bias and factors."""

    params: ModelParams
    users: DataFrame  # user_id, bias, features (array<float>, may be null)[, blend_features if params.blended]
    items: DataFrame  # artist_id, bias, features[, blend_features]


@dataclass
class Biases:
    global_mean: float
    users: DataFrame  # user_id, bias
    items: DataFrame  # artist_id, bias


def fit_biases(ratings: DataFrame, reg: float) -> Biases:
    """Alternating sweeps of b_i = sum(r - mu - b_u) / (reg + n_i), then b_u likewise. The first
    sweep starts from b_u = 0 and so joins nothing (it joined every rating to a zero per user)."""
    mu = float(ratings.agg(F.avg(c.RATING)).collect()[0][0])
    users: DataFrame | None = None
    items = None
    for _ in range(BIAS_SWEEPS):
        rated = ratings.withColumn(BIAS, F.lit(0.0)) if users is None else ratings.join(users, c.USER_ID)
        items = (rated
                 .groupBy(c.ARTIST_ID)
                 .agg((F.sum(F.col(c.RATING) - mu - F.col(BIAS)) / (F.count("*") + reg)).alias(BIAS)))
        items = items.localCheckpoint()  # keeps the lineage short across sweeps
        users = (ratings.join(F.broadcast(items), c.ARTIST_ID)
                 .groupBy(c.USER_ID)
                 .agg((F.sum(F.col(c.RATING) - mu - F.col(BIAS)) / (F.count("*") + reg)).alias(BIAS)))
        users = users.localCheckpoint()
    assert items is not None and users is not None
    return Biases(mu, users, items)


def with_residuals(ratings: DataFrame, biases: Biases) -> DataFrame:
    return (ratings.join(biases.users.withColumnRenamed(BIAS, "_bu"), c.USER_ID, "left")
            .join(F.broadcast(biases.items.withColumnRenamed(BIAS, "_bi")), c.ARTIST_ID, "left")
            .withColumn(RESIDUAL, F.col(c.RATING) - biases.global_mean
                        - F.coalesce(F.col("_bu"), F.lit(0.0)) - F.coalesce(F.col("_bi"), F.lit(0.0)))
            .drop("_bu", "_bi"))


def residual_scale(residuals: DataFrame) -> float:
    """Residuals are divided by their spread so that regParam means the same on any scale."""
    std = residuals.agg(F.stddev_pop(RESIDUAL)).collect()[0][0]
    return float(std) if std and std > 1e-9 else 1.0


def _als(feedback: Feedback, rank: int, reg_param: float, max_iter: int, alpha: float, seed: int,
         blocks: int, rating_col: str | None = None) -> ALS:
    return ALS(
        rank=rank, regParam=reg_param, maxIter=max_iter, seed=seed, alpha=alpha,
        implicitPrefs=not feedback.has_ratings, nonnegative=False,
        userCol=c.USER_ID, itemCol=c.ARTIST_ID,
        ratingCol=rating_col or (RESIDUAL if feedback.has_ratings else PREFERENCE),
        coldStartStrategy="nan", checkpointInterval=5,
        numUserBlocks=blocks, numItemBlocks=blocks,
    )


def fit_companion(model: RecommenderModel, ratings: DataFrame, *, weight: float, rank: int, reg_param: float,
                  max_iter: int, seed: int, blocks: int) -> RecommenderModel:
    """`model` blended at `weight` (its params' blend_weight and blend_rank), with the implicit
    companion's factors as BLEND_FEATURES: implicit ALS on which artists each user rated, whatever
    the rating (every rated pair preference 1, confidence 1 + BLEND_ALPHA).
    That a user rated an artist at all says much about taste (the insight behind SVD++); the ranking
    adds its score (recommend.catalog_of), the predicted rating does not. local_als.fit_companion is
    the same fit in NumPy."""
    rated = ratings.select(c.USER_ID, c.ARTIST_ID, F.lit(1.0).alias(RATED))
    als_model = _als(Feedback.IMPLICIT, rank, reg_param, max_iter, BLEND_ALPHA, seed, blocks, RATED).fit(rated)
    users = als_model.userFactors.select(F.col("id").alias(c.USER_ID), F.col("features").alias(BLEND_FEATURES))
    items = als_model.itemFactors.select(F.col("id").alias(c.ARTIST_ID), F.col("features").alias(BLEND_FEATURES))
    blended = RecommenderModel(replace(model.params, blend_weight=weight, blend_rank=rank),
                               model.users.join(users, c.USER_ID, "left").cache(),
                               model.items.join(items, c.ARTIST_ID, "left").cache())
    blended.users.count(), blended.items.count()  # filled before the model's own copies are let go
    model.users.unpersist()
    model.items.unpersist()
    return blended


@dataclass
class Prepared:
    """Training data made ready once and shared by every candidate fitted on it."""

    data: DataFrame  # user_id, artist_id, rating[, residual]
    biases: Biases | None
    scale: float


def prepare(train: DataFrame, feedback: Feedback, bias_reg: float) -> Prepared:
    if not feedback.has_ratings:
        # Every valid row is a play, its number only how many: Spark's implicit ALS reads a value of
        # 0 as "not played" (preference 0), and each user's fewest plays scale to 0. So it learns
        # 1 + rating / RATING_MAX: preference 1 for every play, confidence 1 + alpha x (1..2).
        # On generated listening logs (100k) this took validation NDCG@10 from 0.088 to 0.208 for
        # the model alone, and from 0.179 to 0.238 with the popularity prior (rank 20, alpha 10).
        data = train.withColumn(PREFERENCE, 1.0 + F.col(c.RATING).cast("double") / c.RATING_MAX).cache()
        return Prepared(data, None, 1.0)
    biases = fit_biases(train, bias_reg)
    data = with_residuals(train, biases)
    scale = residual_scale(data)
    data = data.withColumn(RESIDUAL, F.col(RESIDUAL) / scale).cache()
    return Prepared(data, biases, scale)


def fit(prepared: Prepared, *, feedback: Feedback, rank: int, reg_param: float, max_iter: int,
        alpha: float, seed: int, blocks: int) -> RecommenderModel:
    if rank == 0:  # the bias-only model: every user and artist, no factors (empty vectors)
        empty = F.array_repeat(F.lit(0.0), 0).cast("array<float>").alias(FEATURES)
        user_f = prepared.data.select(c.USER_ID).distinct().select(c.USER_ID, empty)
        item_f = prepared.data.select(c.ARTIST_ID).distinct().select(c.ARTIST_ID, empty)
    else:
        als_model = _als(feedback, rank, reg_param, max_iter, alpha, seed, blocks).fit(prepared.data)
        user_f = als_model.userFactors.withColumnRenamed("id", c.USER_ID)
        item_f = als_model.itemFactors.withColumnRenamed("id", c.ARTIST_ID)
    if prepared.biases is not None:
        users = prepared.biases.users.join(user_f, c.USER_ID, "full")
        items = prepared.biases.items.join(item_f, c.ARTIST_ID, "full")
        mu = prepared.biases.global_mean
    else:
        # Implicit: no biases; an artist's "bias" is its share of users, used only to answer
        # users the model has never seen.
        n_users = prepared.data.select(c.USER_ID).distinct().count()
        share = (prepared.data.groupBy(c.ARTIST_ID)
                 .agg((F.countDistinct(c.USER_ID) / F.lit(max(n_users, 1))).alias(BIAS)))
        users = user_f.withColumn(BIAS, F.lit(0.0))
        items = share.join(item_f, c.ARTIST_ID, "full")
        mu = 0.0
    counts = prepared.data.groupBy(c.ARTIST_ID).agg(F.count("*").alias(N_RATINGS))
    users = users.select(c.USER_ID, F.coalesce(BIAS, F.lit(0.0)).alias(BIAS), FEATURES)
    items = (items.join(counts, c.ARTIST_ID, "left")
             .select(c.ARTIST_ID, F.coalesce(BIAS, F.lit(0.0)).alias(BIAS), FEATURES,
                     F.coalesce(N_RATINGS, F.lit(0)).cast("long").alias(N_RATINGS)))
    params = ModelParams(feedback, rank, reg_param, max_iter, mu, prepared.scale,
                         *feedback.rating_scale, seed)
    return RecommenderModel(params, users.cache(), items.cache())


def _dot(a: Column, b: Column) -> Column:
    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0), lambda acc, v: acc + v)


def raw_score(model: RecommenderModel, pairs: DataFrame) -> DataFrame:
    """pairs + `prediction`, unclipped and never null: unknown users or artists fall back to
    the biases, then to the global mean."""
    p = model.params
    if p.feedback.has_ratings:
        pred = explicit_score(p, F.col("_bu"), F.col("_bi"), F.col("_fu"), F.col("_fi"))
    else:
        known = F.col("_fu").isNotNull() & F.col("_fi").isNotNull()
        dot = F.coalesce(_dot(F.col("_fu"), F.col("_fi")), F.lit(0.0))
        pred = F.when(known, dot).otherwise(F.coalesce(F.col("_bi"), F.lit(0.0)))
    return with_terms(model, pairs).withColumn(PREDICTION, pred.cast("double")).drop("_bu", "_fu", "_bi", "_fi")


def with_terms(model: RecommenderModel, pairs: DataFrame) -> DataFrame:
    """pairs + the terms of their scores: `_bu`, `_fu` (the user's bias and factors) and `_bi`,
    `_fi` (the artist's), null where the model has none; one join each (artists broadcast)."""
    users = model.users.select(c.USER_ID, F.col(BIAS).alias("_bu"), F.col(FEATURES).alias("_fu"))
    items = model.items.select(c.ARTIST_ID, F.col(BIAS).alias("_bi"), F.col(FEATURES).alias("_fi"))
    return pairs.join(users, c.USER_ID, "left").join(F.broadcast(items), c.ARTIST_ID, "left")


def explicit_score(p: ModelParams, user_bias: Column, item_bias: Column, user_factors: Column,
                   item_factors: Column) -> Column:
    """mu + b_u + b_i + scale * x_u . y_i, each term 0 where the model has none."""
    dot = F.coalesce(_dot(user_factors, item_factors), F.lit(0.0))
    return bias_score(p, user_bias, item_bias) + F.lit(p.residual_scale) * dot


def bias_score(p: ModelParams, user_bias: Column, item_bias: Column) -> Column:
    """The bias-only prediction: the global mean plus the biases, each 0 where unknown."""
    return F.lit(p.global_mean) + F.coalesce(user_bias, F.lit(0.0)) + F.coalesce(item_bias, F.lit(0.0))


def clip(col: Column, params: ModelParams) -> Column:
    return F.least(F.greatest(col, F.lit(params.rating_min)), F.lit(params.rating_max))


def score_pairs(model: RecommenderModel, pairs: DataFrame) -> DataFrame:
    """user_id, artist_id, score, predicted_rating for every pair given. `score` means what it
    means in the lists (recommend.py): the unclipped prediction plus the artist's popularity
    prior and, when blended, the companion's weighted score; `predicted_rating` is the prediction
    clipped to the rating scale, null for implicit feedback. Both rounded to 4 digits, as in the lists."""
    p = model.params
    counts = model.items.select(c.ARTIST_ID, F.col(N_RATINGS).alias("_n"))
    scored = raw_score(model, pairs).join(F.broadcast(counts), c.ARTIST_ID, "left")
    prior = F.lit(p.popularity_weight) * F.log1p(F.coalesce(F.col("_n"), F.lit(0)).cast("double"))
    if p.blended:  # the companion's score, as the lists rank by it (recommend.catalog_of)
        blend_users = model.users.select(c.USER_ID, F.col(BLEND_FEATURES).alias("_zu"))
        blend_items = model.items.select(c.ARTIST_ID, F.col(BLEND_FEATURES).alias("_zi"))
        scored = scored.join(blend_users, c.USER_ID, "left").join(F.broadcast(blend_items), c.ARTIST_ID, "left")
        prior = prior + F.lit(p.blend_weight * p.residual_scale) * F.coalesce(_dot(F.col("_zu"), F.col("_zi")),
                                                                              F.lit(0.0))
    rating = F.round(clip(F.col(PREDICTION), p), 4) if p.feedback.has_ratings else F.lit(None)
    return scored.select(c.USER_ID, c.ARTIST_ID, F.round(F.col(PREDICTION) + prior, 4).alias(c.SCORE),
                         rating.cast("double").alias(c.PREDICTED_RATING))


def save(model: RecommenderModel, path: str) -> None:
    model.users.write.mode("overwrite").parquet(storage.join(path, "users"))
    model.items.write.mode("overwrite").parquet(storage.join(path, "items"))
    storage.write_text(storage.join(path, "params.json"), json.dumps(asdict(model.params), indent=2),
                       "application/json")


def load(spark: SparkSession, path: str) -> RecommenderModel:
    saved = json.loads(storage.read_text(storage.join(path, "params.json")))
    params = ModelParams(**{**saved, "feedback": Feedback(saved["feedback"])})
    return RecommenderModel(params, spark.read.parquet(storage.join(path, "users")),
                            spark.read.parquet(storage.join(path, "items")))
