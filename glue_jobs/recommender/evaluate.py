"""Metrics on a held-out split: rating errors, ranking quality at k, and the baselines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pyspark.ml.evaluation import RankingEvaluator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import model, recommend
from glue_jobs.recommender.config import Feedback

RANKING_METRICS = {
    "precision_at_k": "precisionAtK",
    "recall_at_k": "recallAtK",
    "ndcg_at_k": "ndcgAtK",
    "map_at_k": "meanAveragePrecisionAtK",
}


def rating_errors(df: DataFrame, prediction: Column, label: str = c.RATING) -> dict[str, float]:
    """RMSE and MAE of `prediction` against `label` (one pass)."""
    return errors_of(df, {"": prediction}, label)[""]


def errors_of(df: DataFrame, predictions: dict[str, Column], label: str = c.RATING) -> dict[str, dict[str, float]]:
    """RMSE and MAE of each of several predictions of the same rows, all in one pass over them."""
    aggs = [F.count("*").alias("n")]
    for i, prediction in enumerate(predictions.values()):
        err = prediction - F.col(label)
        aggs += [F.sqrt(F.avg(err * err)).alias(f"rmse{i}"), F.avg(F.abs(err)).alias(f"mae{i}")]
    row = df.agg(*aggs).collect()[0]
    if not row["n"]:
        return {name: {"rmse": float("nan"), "mae": float("nan")} for name in predictions}
    return {name: {"rmse": float(row[f"rmse{i}"]), "mae": float(row[f"mae{i}"])} for i, name in enumerate(predictions)}


def prediction_errors(fitted: model.RecommenderModel, rated: DataFrame) -> dict[str, float]:
    """RMSE and MAE of a model's predictions, clipped to the rating scale as they are served."""
    scored = model.raw_score(fitted, rated.select(c.USER_ID, c.ARTIST_ID, c.RATING))
    return rating_errors(scored, model.clip(F.col(model.PREDICTION), fitted.params))


def relevant_items(test: DataFrame, feedback: Feedback, threshold: float) -> DataFrame:
    """user_id, artist_id pairs of the test split that count as hits."""
    if feedback.has_ratings:
        liked = (F.col(c.RATING) >= threshold) & (F.col(c.RATING) <= c.RATING_MAX)
    else:  # every play is a hit, the user's fewest plays (0 once scaled) too; 255 is no play
        liked = F.col(c.RATING) <= c.RATING_MAX
    return test.filter(liked).select(c.USER_ID, c.ARTIST_ID)


def ranking_metrics(recommendations: DataFrame, relevant: DataFrame, k: int) -> dict[str, float]:
    """precision/recall/NDCG/MAP at k over users with at least one relevant test item,
    computed by Spark's RankingEvaluator; users without recommendations score zero."""
    ranked = (recommendations.filter(F.col(c.RANK) <= k)
              .groupBy(c.USER_ID)
              .agg(F.sort_array(F.collect_list(F.struct(c.RANK, c.ARTIST_ID))).alias("_r"))
              .select(c.USER_ID, F.transform("_r", lambda s: s[c.ARTIST_ID].cast("double"))
                      .alias("prediction")))
    labels = (relevant.groupBy(c.USER_ID)
              .agg(F.collect_set(F.col(c.ARTIST_ID).cast("double")).alias("label")))
    data = (labels.join(ranked, c.USER_ID, "left")
            .select(F.coalesce("prediction", F.array().cast("array<double>")).alias("prediction"),
                    "label").cache())
    if data.limit(1).count() == 0:
        return {name: float("nan") for name in RANKING_METRICS}
    out = {}
    for name, spark_name in RANKING_METRICS.items():
        evaluator = RankingEvaluator(metricName=spark_name, k=k, predictionCol="prediction",  # type: ignore[arg-type]
                                     labelCol="label")
        out[name] = float(evaluator.evaluate(data))
    data.unpersist()
    return out


def popularity(train: DataFrame, feedback: Feedback, threshold: float) -> DataFrame:
    """artist_id, popularity (number of users who liked it), n_ratings."""
    if feedback.has_ratings:
        liked = F.when(F.col(c.RATING) >= threshold, 1).otherwise(0)
    else:  # every play counts, as in relevant_items
        liked = F.when(F.col(c.RATING) <= c.RATING_MAX, 1).otherwise(0)
    return (train.groupBy(c.ARTIST_ID)
            .agg((F.sum(liked) + F.count("*") * 1e-6).alias("popularity"),
                 F.count("*").alias("n_ratings")))


def popular_top_k(spark: SparkSession, popularity: DataFrame, user_ids: DataFrame, exclude: DataFrame,
                  k: int) -> DataFrame:
    """The popularity baseline's lists (the most popular artists each user has not rated, ties by
    artist id; score: the popularity, no predicted rating) without scoring every artist for every
    user: the ranking is the same for all, so each user walks it until k artists they have not
    rated, about k + the rated ones among the first steps instead of a selection among all."""
    ranked = popularity.orderBy(F.desc("popularity"), c.ARTIST_ID).select(c.ARTIST_ID, "popularity").collect()
    order = spark.sparkContext.broadcast(([int(r[0]) for r in ranked], [round(float(r[1]), 4) for r in ranked]))
    users = recommend.with_seen(user_ids.select(c.USER_ID).distinct(), exclude)

    def walk(part: Iterable[Any]) -> Iterator[recommend.Row]:
        ids, scores = order.value
        for row in part:
            rated, rank = set(row["seen"] or ()), 0
            for artist, score in zip(ids, scores):
                if rank == k:
                    break
                if artist not in rated:
                    rank += 1
                    yield int(row[c.USER_ID]), rank, artist, score, None

    return spark.createDataFrame(users.rdd.mapPartitions(walk), recommend.RECOMMENDATION_SCHEMA)


def catalog_coverage(recommendations: DataFrame, catalog_size: int) -> float:
    if catalog_size == 0:
        return 0.0
    return recommendations.select(c.ARTIST_ID).distinct().count() / catalog_size
