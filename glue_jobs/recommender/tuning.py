"""Chooses ALS rank and regParam on held-out data (one split or k folds), fitting in parallel."""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import evaluate, recommend
from glue_jobs.recommender.config import Feedback, ModelOptions, TuningOptions
from glue_jobs.recommender.model import Prepared, RecommenderModel, fit, prepare


@dataclass(frozen=True)
class Candidate:
    rank: int
    reg_param: float
    metric: str
    value: float  # mean over folds

    def as_dict(self) -> dict[str, float | int | str]:
        """As metrics.json records it: rounded to 6 digits like every other figure there, since
        the digits beyond differ between runs with Spark's order of summation."""
        return {"rank": self.rank, "reg_param": self.reg_param, self.metric: round(self.value, 6)}


def als_blocks(spark: SparkSession) -> int:
    """ALS's user and item blocks: as many as the run's shuffle partitions (`--shuffle-partitions`)."""
    return max(2, int(spark.conf.get("spark.sql.shuffle.partitions", "2") or 2))


def validation_score(spark: SparkSession, fitted: RecommenderModel, train: DataFrame,
                     valid: DataFrame, blocked: DataFrame, feedback: Feedback, tuning: TuningOptions) -> float:
    if tuning.metric == "rmse":
        return evaluate.prediction_errors(fitted, valid)["rmse"]
    relevant = evaluate.relevant_items(valid, feedback, tuning.relevance_threshold)
    exclude = train.select(c.USER_ID, c.ARTIST_ID).unionByName(blocked)
    recs = recommend.recommend(spark, fitted, relevant.select(c.USER_ID).distinct(), exclude,
                               tuning.k)
    return evaluate.ranking_metrics(recs, relevant, tuning.k)["ndcg_at_k"]


def folds(train: DataFrame, valid: DataFrame, count: int, seed: int) -> list[tuple[DataFrame, DataFrame]]:
    """`count` folds over train+validation (`--folds`), or the one hold-out split when 0."""
    if count == 0:
        return [(train, valid)]
    data = train.unionByName(valid).withColumn(
        "_fold", F.floor(F.rand(seed) * count).cast("int")).cache()
    return [(data.filter(F.col("_fold") != i).drop("_fold"), data.filter(F.col("_fold") == i).drop("_fold"))
            for i in range(count)]


@dataclass(frozen=True)
class TuningResult:
    best: Candidate
    grid: list[Candidate]
    popularity_weight: float
    weight_curve: list[dict[str, float]]  # popularity weight -> validation NDCG@k


def tune(spark: SparkSession, train: DataFrame, valid: DataFrame, blocked: DataFrame,
         model: ModelOptions, tuning: TuningOptions) -> TuningResult:
    grid = [(r, g) for r in tuning.ranks for g in tuning.reg_params]
    totals = {params: 0.0 for params in grid}
    splits = folds(train, valid, tuning.folds, model.seed)
    blocks = als_blocks(spark)
    first_models: dict[tuple[int, float], RecommenderModel] = {}
    for fold_index, (fold_train, fold_valid) in enumerate(splits):
        prepared = prepare(fold_train, model.feedback, model.bias_reg)
        fold_valid = fold_valid.cache()

        def evaluate_one(params: tuple[int, float], prepared: Prepared = prepared,
                         fold_train: DataFrame = fold_train,
                         fold_valid: DataFrame = fold_valid) -> tuple[float, RecommenderModel]:
            fitted = fit(prepared, feedback=model.feedback, rank=params[0], reg_param=params[1],
                         max_iter=model.max_iter, alpha=model.alpha, seed=model.seed, blocks=blocks,
                         rating_scale=model.feedback.rating_scale)
            return validation_score(spark, fitted, fold_train, fold_valid, blocked, model.feedback, tuning), fitted

        with ThreadPoolExecutor(max_workers=tuning.parallelism) as pool:
            for params, (value, fitted) in zip(grid, pool.map(evaluate_one, grid)):
                totals[params] += value
                if fold_index == 0:
                    first_models[params] = fitted
                else:
                    _release(fitted)
        prepared.data.unpersist()
    results = [Candidate(r, g, tuning.metric, totals[(r, g)] / len(splits)) for r, g in grid]
    best = choose(results)
    weight, curve = tune_popularity_weight(
        spark, first_models[(best.rank, best.reg_param)], *splits[0], blocked, model.feedback, tuning)
    for fitted in first_models.values():
        _release(fitted)
    return TuningResult(best, results, weight, curve)


def _release(fitted: RecommenderModel) -> None:
    fitted.users.unpersist()
    fitted.items.unpersist()


def tune_popularity_weight(spark: SparkSession, fitted: RecommenderModel, train: DataFrame,
                           valid: DataFrame, blocked: DataFrame, feedback: Feedback,
                           tuning: TuningOptions) -> tuple[float, list[dict[str, float]]]:
    """Picks the ranking's popularity weight by validation NDCG@k. Only rankings are scored
    again (no refit), so trying several weights costs seconds."""
    span = feedback.rating_scale[1] - feedback.rating_scale[0]
    weights = sorted({w * span for w in tuning.popularity_weights})
    if len(weights) == 1:
        return weights[0], []
    relevant = evaluate.relevant_items(valid, feedback, tuning.relevance_threshold).cache()
    users = recommend.model_user_vectors(fitted, relevant.select(c.USER_ID).distinct()).cache()
    exclude = train.select(c.USER_ID, c.ARTIST_ID).unionByName(blocked)
    unit = recommend.model_catalog(replace_weight(fitted, 1.0))
    curve = []
    for weight in weights:
        catalog = dataclasses.replace(unit, prior=None if unit.prior is None else unit.prior * weight)
        recs = recommend.top_n_by_user(spark, users, catalog, exclude, tuning.k,
                                       (fitted.params.rating_min, fitted.params.rating_max))
        curve.append({"popularity_weight": weight,
                      "ndcg_at_k": evaluate.ranking_metrics(recs, relevant, tuning.k)["ndcg_at_k"]})
    relevant.unpersist()
    users.unpersist()
    best = min(curve, key=lambda p: (-p["ndcg_at_k"] if not math.isnan(p["ndcg_at_k"]) else math.inf,
                                     p["popularity_weight"]))
    return best["popularity_weight"], curve


def replace_weight(fitted: RecommenderModel, weight: float) -> RecommenderModel:
    return RecommenderModel(dataclasses.replace(fitted.params, popularity_weight=weight), fitted.users, fitted.items)


def choose(results: list[Candidate]) -> Candidate:
    """Best metric; ties (and NaNs last) go to the smaller rank, then the stronger regularisation."""
    def key(cand: Candidate) -> tuple[float, int, float]:
        value = cand.value if not math.isnan(cand.value) else math.inf
        if cand.metric != "rmse" and not math.isnan(cand.value):
            value = -value
        return (value, cand.rank, -cand.reg_param)

    return min(results, key=key)
