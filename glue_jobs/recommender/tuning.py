"""Chooses ALS rank and regParam on held-out data (one split or k folds), fitting in parallel."""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import evaluate, model, recommend
from glue_jobs.recommender.config import JobConfig


@dataclass(frozen=True)
class Candidate:
    rank: int
    reg_param: float
    metric: str
    value: float  # mean over folds

    def as_dict(self) -> dict[str, float | int | str]:
        return {"rank": self.rank, "reg_param": self.reg_param, self.metric: self.value}


def als_blocks(spark: SparkSession) -> int:
    """ALS's user and item blocks: as many as the run's shuffle partitions (`--shuffle-partitions`)."""
    return max(2, int(spark.conf.get("spark.sql.shuffle.partitions", "2") or 2))


def validation_score(spark: SparkSession, fitted: model.RecommenderModel, train: DataFrame,
                     valid: DataFrame, blocked: DataFrame, config: JobConfig) -> float:
    if config.metric == "rmse":
        return evaluate.prediction_errors(fitted, valid)["rmse"]
    relevant = evaluate.relevant_items(valid, config.feedback, config.relevance_threshold)
    exclude = train.select(c.USER_ID, c.ARTIST_ID).unionByName(blocked)
    recs = recommend.recommend(spark, fitted, relevant.select(c.USER_ID).distinct(), exclude,
                               config.k)
    return evaluate.ranking_metrics(recs, relevant, config.k)["ndcg_at_k"]


def folds(train: DataFrame, valid: DataFrame, config: JobConfig) -> list[tuple[DataFrame, DataFrame]]:
    if config.folds == 0:
        return [(train, valid)]
    data = train.unionByName(valid).withColumn(
        "_fold", F.floor(F.rand(config.seed) * config.folds).cast("int")).cache()
    return [(data.filter(F.col("_fold") != i).drop("_fold"), data.filter(F.col("_fold") == i).drop("_fold"))
            for i in range(config.folds)]


@dataclass(frozen=True)
class TuningResult:
    best: Candidate
    grid: list[Candidate]
    popularity_weight: float
    weight_curve: list[dict[str, float]]  # popularity weight -> validation NDCG@k


def tune(spark: SparkSession, train: DataFrame, valid: DataFrame, blocked: DataFrame,
         config: JobConfig) -> TuningResult:
    grid = [(r, g) for r in config.ranks for g in config.reg_params]
    totals = {params: 0.0 for params in grid}
    splits = folds(train, valid, config)
    blocks = als_blocks(spark)
    first_models: dict[tuple[int, float], model.RecommenderModel] = {}
    for fold_index, (fold_train, fold_valid) in enumerate(splits):
        prepared = model.prepare(fold_train, config.feedback, config.bias_reg)
        fold_valid = fold_valid.cache()

        def evaluate_one(params: tuple[int, float], prepared: model.Prepared = prepared,
                         fold_train: DataFrame = fold_train,
                         fold_valid: DataFrame = fold_valid) -> tuple[float, model.RecommenderModel]:
            fitted = model.fit(prepared, feedback=config.feedback, rank=params[0],
                               reg_param=params[1], max_iter=config.max_iter, alpha=config.alpha,
                               seed=config.seed, blocks=blocks, rating_scale=config.rating_scale)
            return validation_score(spark, fitted, fold_train, fold_valid, blocked, config), fitted

        with ThreadPoolExecutor(max_workers=config.parallelism) as pool:
            for params, (value, fitted) in zip(grid, pool.map(evaluate_one, grid)):
                totals[params] += value
                if fold_index == 0:
                    first_models[params] = fitted
                else:
                    _release(fitted)
        prepared.data.unpersist()
    results = [Candidate(r, g, config.metric, totals[(r, g)] / len(splits)) for r, g in grid]
    best = choose(results)
    weight, curve = tune_popularity_weight(
        spark, first_models[(best.rank, best.reg_param)], *splits[0], blocked, config)
    for fitted in first_models.values():
        _release(fitted)
    return TuningResult(best, results, weight, curve)


def _release(fitted: model.RecommenderModel) -> None:
    fitted.users.unpersist()
    fitted.items.unpersist()


def tune_popularity_weight(spark: SparkSession, fitted: model.RecommenderModel, train: DataFrame,
                           valid: DataFrame, blocked: DataFrame,
                           config: JobConfig) -> tuple[float, list[dict[str, float]]]:
    """Picks the ranking's popularity weight by validation NDCG@k. Only rankings are scored
    again (no refit), so trying several weights costs seconds."""
    span = config.rating_scale[1] - config.rating_scale[0]
    weights = sorted({w * span for w in config.popularity_weights})
    if len(weights) == 1:
        return weights[0], []
    relevant = evaluate.relevant_items(valid, config.feedback, config.relevance_threshold).cache()
    users = recommend.model_user_vectors(fitted, relevant.select(c.USER_ID).distinct()).cache()
    exclude = train.select(c.USER_ID, c.ARTIST_ID).unionByName(blocked)
    unit = recommend.model_catalog(replace_weight(fitted, 1.0))
    curve = []
    for weight in weights:
        catalog = dataclasses.replace(unit, prior=None if unit.prior is None else unit.prior * weight)
        recs = recommend.top_n_by_user(spark, users, catalog, exclude, config.k,
                                       (fitted.params.rating_min, fitted.params.rating_max))
        curve.append({"popularity_weight": weight,
                      "ndcg_at_k": evaluate.ranking_metrics(recs, relevant, config.k)["ndcg_at_k"]})
    relevant.unpersist()
    users.unpersist()
    best = min(curve, key=lambda p: (-p["ndcg_at_k"] if not math.isnan(p["ndcg_at_k"]) else math.inf,
                                     p["popularity_weight"]))
    return best["popularity_weight"], curve


def replace_weight(fitted: model.RecommenderModel, weight: float) -> model.RecommenderModel:
    return model.RecommenderModel(dataclasses.replace(fitted.params, popularity_weight=weight),
                                  fitted.users, fitted.items)


def choose(results: list[Candidate]) -> Candidate:
    """Best metric; ties (and NaNs last) go to the smaller rank, then the stronger regularisation."""
    def key(cand: Candidate) -> tuple[float, int, float]:
        value = cand.value if not math.isnan(cand.value) else math.inf
        if cand.metric != "rmse" and not math.isnan(cand.value):
            value = -value
        return (value, cand.rank, -cand.reg_param)

    return min(results, key=key)
