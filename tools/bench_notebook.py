"""The usual notebook, side by side with the job on the same data and the same test split:
plain ALS (nonnegative=True, coldStartStrategy="drop"), 5-fold CrossValidator over rank
[10,50,100,150] x regParam [.01,.05,.1,.15], recommendForAllUsers(k).

    python tools/bench_notebook.py --input FILE [--folds 5] [--ranks 10,50,100,150]
        [--reg-params .01,.05,.1,.15] [--no-cv] [--feedback explicit|implicit]

The test split is the job's own (`stages.split_by_pair` with the job's default shares and the
same seed), so every figure here is measured on the same held-out pairs as the job's
metrics.json; the notebook learns from the job's train + validation. `--no-cv` fits one ALS with
the single rank and regParam given instead of the cross-validated grid (the bench's quality
table, where the grid would cost more than every other row together). `--feedback` picks which
test pairs count as relevant, as the job's run of the same file did.

Prints one JSON line: seconds, rmse and mae (on the test rows it could score), coverage of the
test rows, and precision/NDCG at k against the same relevant items the job is judged on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--ranks", default="10,50,100,150")
    parser.add_argument("--reg-params", default="0.01,0.05,0.1,0.15")
    parser.add_argument("--no-cv", action="store_true",
                        help="fit one ALS with the one rank and regParam given, no CrossValidator")
    parser.add_argument("--feedback", choices=("explicit", "implicit"), default="explicit",
                        help="which test pairs are relevant: the feedback the job ran with on this file")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    opts = parser.parse_args(argv)
    opts.rank_list = [int(r) for r in opts.ranks.split(",") if r]
    opts.reg_list = [float(r) for r in opts.reg_params.split(",") if r]
    if opts.no_cv and (len(opts.rank_list), len(opts.reg_list)) != (1, 1):
        parser.error(f"--no-cv fits one model: give one rank and one regParam, got --ranks {opts.ranks} "
                     f"--reg-params {opts.reg_params}")
    return opts


def fit_als(opts: argparse.Namespace, fit_data: Any) -> Any:
    """The notebook's model: the CrossValidator's best, or one ALS fit with --no-cv."""
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.recommendation import ALS
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from glue_jobs import contracts as c

    als = ALS(userCol=c.USER_ID, itemCol=c.ARTIST_ID, ratingCol=c.RATING, nonnegative=True,
              coldStartStrategy="drop", seed=opts.seed)
    if opts.no_cv:
        return als.setRank(opts.rank_list[0]).setRegParam(opts.reg_list[0]).fit(fit_data)
    grid = (ParamGridBuilder().addGrid(als.rank, opts.rank_list).addGrid(als.regParam, opts.reg_list).build())
    rmse = RegressionEvaluator(metricName="rmse", labelCol=c.RATING, predictionCol="prediction")
    cv = CrossValidator(estimator=als, estimatorParamMaps=grid, evaluator=rmse, numFolds=opts.folds,
                        seed=opts.seed, parallelism=2)
    return cv.fit(fit_data).bestModel


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.sql import functions as F

    from glue_jobs import contracts as c
    from glue_jobs.recommender import evaluate
    from glue_jobs.recommender.config import Feedback, JobConfig
    from glue_jobs.recommender.ingest import ingest
    from glue_jobs.recommender.main import local_session, prepare_session
    from glue_jobs.recommender.stages import split_by_pair

    config = JobConfig.from_fields(inputs=(opts.input,), output="unused", seed=opts.seed)
    spark = local_session(config, short_run=False)  # the notebook as people run it: the JVM's defaults
    prepare_session(spark, config)
    # The same ratings and the same split as the job (its split function, its shares, the seed).
    ratings = ingest(spark, config.input.inputs).ratings.filter(F.col(c.RATING) != c.NEVER_PLAY_AGAIN)
    train, valid, test = split_by_pair(ratings, config.tuning, opts.seed)
    fit_data = train.unionByName(valid).withColumn(c.RATING, F.col(c.RATING).cast("double")).cache()
    test = test.withColumn(c.RATING, F.col(c.RATING).cast("double")).cache()
    fit_data.count()
    test_rows = test.count()

    start = time.perf_counter()
    model = fit_als(opts, fit_data)
    predictions = model.transform(test).cache()
    errors = {name: RegressionEvaluator(metricName=name, labelCol=c.RATING, predictionCol="prediction")
              .evaluate(predictions) for name in ("rmse", "mae")}
    recs = (model.recommendForAllUsers(opts.k)
            .select(c.USER_ID, F.posexplode("recommendations").alias("pos", "rec"))
            .select(c.USER_ID, (F.col("pos") + 1).alias(c.RANK), F.col("rec")[c.ARTIST_ID].alias(c.ARTIST_ID),
                    F.col("rec.rating").alias(c.SCORE))).cache()
    relevant = evaluate.relevant_items(test, Feedback(opts.feedback), config.tuning.relevance_threshold)
    ranking = evaluate.ranking_metrics(recs, relevant, opts.k)
    seconds = time.perf_counter() - start
    best = model._java_obj.parent()  # the winning estimator's params
    print(json.dumps({"seconds": round(seconds, 1), "rmse": round(errors["rmse"], 4),
                      "mae": round(errors["mae"], 4), "cross_validated": not opts.no_cv,
                      "test_rows_scored": predictions.count(), "test_rows": test_rows,
                      "precision_at_k": round(ranking["precision_at_k"], 4),
                      "ndcg_at_k": round(ranking["ndcg_at_k"], 4),
                      "rank": best.getRank(), "reg_param": best.getRegParam(),
                      "scores_above_100": recs.filter(F.col(c.SCORE) > 100).count(),
                      "scores_zero": recs.filter(F.col(c.SCORE) <= 0).count()}))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
