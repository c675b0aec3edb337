"""Metrics on a held-out split: rating errors, ranking quality at k, and the baselines."""

from __future__ import annotations

from pyspark.ml.evaluation import RankingEvaluator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import model
from glue_jobs.recommender.config import Feedback

RANKING_METRICS = {
    "precision_at_k": "precisionAtK",
    "recall_at_k": "recallAtK",
    "ndcg_at_k": "ndcgAtK",
    "map_at_k": "meanAveragePrecisionAtK",
}


def rating_errors(df: DataFrame, prediction: Column, label: str = c.RATING) -> dict[str, float]:
    """RMSE and MAE of `prediction` against `label` (one pass)."""
    err = prediction - F.col(label)
    row = df.agg(F.sqrt(F.avg(err * err)).alias("rmse"), F.avg(F.abs(err)).alias("mae"),
                 F.count("*").alias("n")).collect()[0]
    if not row["n"]:
        return {"rmse": float("nan"), "mae": float("nan")}
    return {"rmse": float(row["rmse"]), "mae": float(row["mae"])}


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


def catalog_coverage(recommendations: DataFrame, catalog_size: int) -> float:
    if catalog_size == 0:
        return 0.0
    return recommendations.select(c.ARTIST_ID).distinct().count() / catalog_size
