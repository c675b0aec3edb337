"""The usual notebook, side by side with the job on the same data and the same test split:
plain ALS (nonnegative=True, coldStartStrategy="drop"), 5-fold CrossValidator over rank
[10,50,100,150] x regParam [.01,.05,.1,.15], recommendForAllUsers(k).

    python tools/bench_notebook.py --input FILE [--folds 5] [--ranks 10,50,100,150]

Prints one JSON line: seconds, rmse (on the test rows it could score), coverage of the test
rows, and precision/NDCG at k against the same relevant items the job is judged on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--ranks", default="10,50,100,150")
    parser.add_argument("--reg-params", default="0.01,0.05,0.1,0.15")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    opts = parser.parse_args()

    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.recommendation import ALS
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
    from pyspark.sql import functions as F

    from glue_jobs import contracts as c
    from glue_jobs.recommender import evaluate
    from glue_jobs.recommender.config import Feedback, JobConfig
    from glue_jobs.recommender.ingest import ingest
    from glue_jobs.recommender.main import local_session, prepare_session

    config = JobConfig.from_fields(inputs=(opts.input,), output="unused", seed=opts.seed)
    spark = local_session(config)
    prepare_session(spark, config)
    # The same ratings and the same split as the job (same seed, same shares).
    ratings = ingest(spark, config.input.inputs).ratings.filter(F.col(c.RATING) != c.NEVER_PLAY_AGAIN).cache()
    train, valid, test = ratings.randomSplit([0.8, 0.1, 0.1], seed=opts.seed)
    fit_data = train.unionByName(valid).withColumn(c.RATING, F.col(c.RATING).cast("double")).cache()
    test = test.cache()
    fit_data.count()
    test.count()

    start = time.perf_counter()
    als = ALS(userCol=c.USER_ID, itemCol=c.ARTIST_ID, ratingCol=c.RATING, nonnegative=True,
              coldStartStrategy="drop", seed=opts.seed)
    grid = (ParamGridBuilder().addGrid(als.rank, [int(r) for r in opts.ranks.split(",")])
            .addGrid(als.regParam, [float(r) for r in opts.reg_params.split(",")]).build())
    rmse = RegressionEvaluator(metricName="rmse", labelCol=c.RATING, predictionCol="prediction")
    cv = CrossValidator(estimator=als, estimatorParamMaps=grid, evaluator=rmse, numFolds=opts.folds,
                        seed=opts.seed, parallelism=2)
    model = cv.fit(fit_data).bestModel
    predictions = model.transform(test.withColumn(c.RATING, F.col(c.RATING).cast("double")))
    test_rmse = rmse.evaluate(predictions)
    scored = predictions.count()
    recs = (model.recommendForAllUsers(opts.k)
            .select(c.USER_ID, F.posexplode("recommendations").alias("pos", "rec"))
            .select(c.USER_ID, (F.col("pos") + 1).alias(c.RANK), F.col("rec")[c.ARTIST_ID].alias(c.ARTIST_ID),
                    F.col("rec.rating").alias(c.SCORE)))
    relevant = evaluate.relevant_items(test, Feedback.EXPLICIT, config.tuning.relevance_threshold)
    ranking = evaluate.ranking_metrics(recs, relevant, opts.k)
    seconds = time.perf_counter() - start
    best = model._java_obj.parent()  # the winning estimator's params
    print(json.dumps({"seconds": round(seconds, 1), "rmse": round(test_rmse, 4),
                      "test_rows_scored": scored, "test_rows": test.count(),
                      "precision_at_k": round(ranking["precision_at_k"], 4),
                      "ndcg_at_k": round(ranking["ndcg_at_k"], 4),
                      "rank": best.getRank(), "reg_param": best.getRegParam(),
                      "scores_above_100": recs.filter(F.col(c.SCORE) > 100).count(),
                      "scores_zero": recs.filter(F.col(c.SCORE) <= 0).count()}))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
