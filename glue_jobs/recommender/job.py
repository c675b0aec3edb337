"""The recommender job from input to outputs: every step is here, I/O and Spark set-up are not.

read + validate -> quarantine gate -> split -> tune -> refit -> evaluate vs baselines
-> quality gate -> top-N + popularity fallback -> write outputs, `_SUCCESS` last.
Nothing is written under the output directory unless every gate has passed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import evaluate, model, publish, recommend, report, storage, tuning
from glue_jobs.recommender.config import JobConfig
from glue_jobs.recommender.ingest import INT_PATTERN, InputError, ingest, read_artist_names


class JobFailed(RuntimeError):
    """The run stopped on purpose (bad input, failed gate); nothing was published."""


@dataclass
class StageTimer:
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - start, 3)


@dataclass
class JobResult:
    run_id: str
    output: str
    metrics: dict[str, Any]


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def check_quarantine(counts: dict[str, int], total: int, config: JobConfig) -> None:
    quarantined = sum(counts.values())
    if total == 0:
        raise JobFailed(f"input {', '.join(config.inputs)} holds no rows: nothing to train on")
    share = quarantined / total
    if share > config.max_quarantine_share:
        by_reason = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v)
        raise JobFailed(
            f"{quarantined} of {total} input rows ({share:.1%}) were quarantined, above the "
            f"allowed {config.max_quarantine_share:.1%} (--max-quarantine-share); by reason: "
            f"{by_reason}. Nothing was published.")


def quality_gate(metrics: dict[str, Any], config: JobConfig) -> dict[str, Any]:
    """The model must beat the bias baseline (explicit, RMSE) or popularity (implicit, NDCG)."""
    base = metrics["baselines"]
    if config.feedback == "explicit":
        limit = base["bias_rmse"] * (1 - config.min_rmse_gain)
        passed = metrics["rmse"] is not None and metrics["rmse"] < limit
        check = {"metric": "rmse", "value": metrics["rmse"], "must_be_below": round(limit, 6),
                 "baseline": "bias_rmse"}
    else:
        limit = (base["popularity_ndcg_at_k"] or 0.0) * (1 + config.min_ndcg_gain)
        passed = metrics["ndcg_at_k"] is not None and metrics["ndcg_at_k"] > limit
        check = {"metric": "ndcg_at_k", "value": metrics["ndcg_at_k"], "must_be_above": round(limit, 6),
                 "baseline": "popularity_ndcg_at_k"}
    return {"passed": bool(passed), **check}


def read_pairs(spark: SparkSession, path: str) -> DataFrame:
    """Pairs to score: user_id<TAB>artist_id. Every line must be a pair of integer ids, since
    the output promises a score for every pair given."""
    try:
        lines = spark.read.text(path)
    except Exception as exc:
        raise InputError(f"cannot read --score-pairs {path}: {exc}") from exc
    parts = F.split(F.regexp_replace("value", r"^\s+|\s+$", ""), "\t", -1)
    parsed = lines.filter(F.length(F.regexp_replace("value", r"\s", "")) > 0).select(
        "value", F.size(parts).alias("n"), parts.getItem(0).alias("u"), parts.getItem(1).alias("a"))
    bad = parsed.filter((F.col("n") != 2) | ~F.col("u").rlike(INT_PATTERN) | ~F.col("a").rlike(INT_PATTERN))
    n_bad = bad.count()
    if n_bad:
        example = bad.limit(1).collect()[0]["value"]
        raise InputError(f"--score-pairs {path}: {n_bad} line(s) are not user_id<TAB>artist_id "
                         f"integer pairs, e.g. {example!r}")
    return parsed.select(F.col("u").cast("int").alias(c.USER_ID), F.col("a").cast("int").alias(c.ARTIST_ID))


def run(spark: SparkSession, config: JobConfig, run_id: str | None = None) -> JobResult:
    run_id = run_id or c.new_run_id()
    timer = StageTimer()
    sinks = config.publish_settings()
    with timer("preflight"):
        try:
            publish.preflight(sinks)
        except publish.PublishError as exc:
            raise JobFailed(f"{exc}. Nothing was trained or published.") from exc
    metrics: dict[str, Any] = {"run_id": run_id, "feedback": config.feedback, "k": config.k,
                               "top_n": config.top_n, "spark": spark_settings(spark)}

    # --- read and validate -----------------------------------------------------------------
    with timer("read_validate"):
        ingested = ingest(spark, config.inputs, config.input_format)
        # The ingest step caches its classified rows; from them keep only the quarantine (small)
        # and the two halves of the ratings, then let the classification go: one copy of the
        # ratings in memory, not three.
        quarantine = ingested.quarantine.cache()
        counts = {reason: 0 for reason in c.QUARANTINE_REASONS}
        for row in quarantine.groupBy(c.QUARANTINE_REASON).count().collect():
            counts[row[c.QUARANTINE_REASON]] = int(row["count"])
        blocked = (ingested.ratings.filter(F.col(c.RATING) == c.NEVER_PLAY_AGAIN)
                   .select(c.USER_ID, c.ARTIST_ID).cache())
        learn = ingested.ratings.filter(F.col(c.RATING) != c.NEVER_PLAY_AGAIN).cache()
        n_learn = learn.count()
        n_kept = n_learn + blocked.count()
        ingested.release()
        if ingested.dms_changes is not None:
            total = sum(counts.values()) + sum(ingested.dms_changes.values())
        else:
            total = sum(counts.values()) + n_kept
        check_quarantine(counts, total, config)
        if n_learn == 0:
            raise JobFailed(f"input {', '.join(config.inputs)} has no ratings to learn from "
                            f"({n_kept} valid rows, all of them {c.NEVER_PLAY_AGAIN}). Nothing was published.")
        artists = read_artist_names(spark, config.artists).cache() if config.artists else None
        pairs = read_pairs(spark, config.score_pairs) if config.score_pairs else None
    metrics["input_format"] = ingested.input_format
    metrics["quarantine"] = counts
    if ingested.dms_changes is not None:
        metrics["dms_changes"] = ingested.dms_changes

    # --- split -----------------------------------------------------------------------------
    with timer("split"):
        train_share = 1 - config.validation_share - config.test_share
        train, valid, test = (df.cache() for df in learn.randomSplit(
            [train_share, config.validation_share, config.test_share], seed=config.seed))
        n_train, n_valid, n_test = train.count(), valid.count(), test.count()
        # From here on the three splits are the cached copy; the whole is their union.
        learn.unpersist()
        learn = train.unionByName(valid).unionByName(test)

    # --- tune, then refit the best on train + validation ------------------------------------
    with timer("tune"):
        tuned = tuning.tune(spark, train, valid, blocked, config)
        best = tuned.best
    with timer("fit"):
        fit_data = train.unionByName(valid)
        prepared = model.prepare(fit_data, config.feedback, config.bias_reg)
        fitted = model.fit(prepared, feedback=config.feedback, rank=best.rank, reg_param=best.reg_param,
                           max_iter=config.max_iter, alpha=config.alpha, seed=config.seed,
                           blocks=tuning.als_blocks(spark), rating_scale=config.rating_scale)
        fitted = tuning.replace_weight(fitted, tuned.popularity_weight)
        fitted.users.count()
    metrics["best_params"] = {"rank": best.rank, "reg_param": best.reg_param,
                              "popularity_weight": tuned.popularity_weight}
    metrics["grid"] = [cand.as_dict() for cand in tuned.grid]
    metrics["popularity_weight_curve"] = tuned.weight_curve
    metrics["selection_metric"] = config.metric

    # --- evaluate on the test split ---------------------------------------------------------
    with timer("evaluate"):
        catalog = recommend.model_catalog(fitted)  # collected and broadcast once, used twice
        metrics.update(evaluate_on_test(spark, fitted, catalog, prepared, fit_data, test, blocked, config))
    gate = quality_gate(metrics, config)
    metrics["quality_gate"] = gate
    if not gate["passed"]:
        raise JobFailed(
            f"quality gate failed: {gate['metric']} = {gate['value']} is not "
            + (f"below {gate['must_be_below']}" if "must_be_below" in gate else f"above {gate['must_be_above']}")
            + f" ({gate['baseline']} with the configured gain). Nothing was published.")

    # --- recommendations and the popularity fallback ---------------------------------------
    with timer("recommend"):
        exclude = learn.select(c.USER_ID, c.ARTIST_ID).unionByName(blocked)
        all_users = exclude.select(c.USER_ID).distinct()
        # Scored once: the range sort below samples its input before it shuffles, which would
        # otherwise run the whole top-N step twice.
        scored = recommend.recommend(spark, fitted, all_users, exclude, config.top_n, catalog).cache()
        recs = scored
        popular = popular_list(fitted, learn, config)
        if artists is not None:
            recs = recs.join(F.broadcast(artists), c.ARTIST_ID, "left")
            popular = popular.join(F.broadcast(artists), c.ARTIST_ID, "left")
        # Sorted once and cached in that order: both file formats, the histograms and the
        # publishing read this copy (a range-partitioned sort, so every task writes its own part).
        recs = (recs.select(*c.RECOMMENDATION_COLUMNS, *([c.ARTIST_NAME] if artists is not None else []))
                .orderBy(c.USER_ID, c.RANK).cache())
        n_recs = recs.count()
        scored.unpersist()
        popular = popular.orderBy(c.RANK).cache()
        scores = model.score_pairs(fitted, pairs) if pairs is not None else None
        n_catalog = fitted.items.filter(F.col(model.FEATURES).isNotNull()).count()
        metrics["catalog_coverage"] = round(evaluate.catalog_coverage(recs, n_catalog), 6)
    n_users = all_users.count()
    metrics["counts"] = {
        "ratings": n_learn, "users": n_users, "items": learn.select(c.ARTIST_ID).distinct().count(),
        "never_play_again": n_kept - n_learn, "train": n_train, "validation": n_valid, "test": n_test,
        "quarantined": sum(counts.values()), "input_rows": total, "recommendations": n_recs,
    }

    # --- write: drop the old marker first, so nobody trusts a half-replaced directory ---------
    with timer("write"):
        out = config.output_for(run_id)
        storage.remove(storage.join(out, c.SUCCESS_MARKER))
        recs.write.mode("overwrite").parquet(storage.join(out, c.RECOMMENDATIONS_DIR))
        write_single_csv(recs, out, c.RECOMMENDATIONS_CSV_DIR, c.RECOMMENDATIONS_CSV_FILE)
        # popular_n rows: one small file is the right shape, not a bottleneck.
        popular.coalesce(1).write.mode("overwrite").parquet(storage.join(out, c.POPULAR_DIR))
        quarantine.write.mode("overwrite").json(storage.join(out, c.QUARANTINE_DIR))
        if scores is not None:
            write_single_csv(scores, out, c.SCORES_DIR, c.SCORES_CSV_FILE)
        model.save(fitted, storage.join(out, c.MODEL_DIR))
    write_metrics(out, metrics, timer)
    storage.write_text(storage.join(out, c.REPORT_FILE),
                       report.render(metrics, rating_histogram(learn), score_histogram(recs, config)),
                       "text/html")
    storage.write_text(storage.join(out, c.SUCCESS_MARKER), run_id)
    if sinks.enabled:
        with timer("publish"):
            try:
                metrics["published"] = publish.publish_run(
                    recs, [r.asDict() for r in popular.collect()],
                    [{c.ARTIST_ID: r[c.ARTIST_ID], "name": r[c.ARTIST_NAME]} for r in artists.collect()]
                    if artists is not None else [],
                    run_id, config.top_n, metrics, sinks)
            except publish.PublishError as exc:
                raise JobFailed(f"{exc}. The run's files are complete under {out}, but the previously "
                                "published run is still the one being served.") from exc
        write_metrics(out, metrics, timer)  # again, with what publishing did and took
    for df in (quarantine, blocked, train, valid, test, recs, popular):
        df.unpersist()
    return JobResult(run_id, out, metrics)


def spark_settings(spark: SparkSession) -> dict[str, Any]:
    """The settings that decide how a run scales, as this run used them (for metrics.json)."""
    sc = spark.sparkContext
    return {"master": sc.master, "default_parallelism": sc.defaultParallelism,
            "shuffle_partitions": int(spark.conf.get("spark.sql.shuffle.partitions", "0") or 0),
            "als_blocks": tuning.als_blocks(spark),
            "driver_memory": sc.getConf().get("spark.driver.memory", "default")}


def write_single_csv(df: DataFrame, out: str, directory: str, file_name: str) -> None:
    """One CSV file with a header under out/directory (the contract for people and QuickSight),
    written in parallel: every task writes its part, then the parts are joined in partition
    order (a server-side copy on S3) instead of funnelling all rows through one task."""
    parts = storage.join(out, "_parts", directory)
    df.write.mode("overwrite").option("header", True).csv(parts)
    target = storage.join(out, directory)
    storage.remove_tree(target)
    header = (",".join(df.columns) + "\n").encode("utf-8")
    storage.concat_with_header(storage.list_files(parts, ".csv"), storage.join(target, file_name), header)
    storage.remove_tree(storage.join(out, "_parts"))


def write_metrics(out: str, metrics: dict[str, Any], timer: StageTimer) -> None:
    metrics["timings_s"] = dict(timer.timings)
    storage.write_text(storage.join(out, c.METRICS_FILE), json.dumps(metrics, indent=2, sort_keys=True),
                       "application/json")


def evaluate_on_test(spark: SparkSession, fitted: model.RecommenderModel, catalog: recommend.Catalog,
                     prepared: model.Prepared, fit_data: DataFrame, test: DataFrame, blocked: DataFrame,
                     config: JobConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    if config.feedback == "explicit" and prepared.biases is not None:
        errors = evaluate.prediction_errors(fitted, test)
        out["rmse"], out["mae"] = _finite(errors["rmse"]), _finite(errors["mae"])
        mean_errors = evaluate.rating_errors(test, F.lit(prepared.biases.global_mean))
        baselines["global_mean_rmse"] = _finite(mean_errors["rmse"])
        baselines["global_mean_mae"] = _finite(mean_errors["mae"])
        bias_only = model.RecommenderModel(
            fitted.params, fitted.users.withColumn(model.FEATURES, F.lit(None).cast("array<float>")),
            fitted.items)
        bias_errors = evaluate.prediction_errors(bias_only, test)
        baselines["bias_rmse"] = _finite(bias_errors["rmse"])
        baselines["bias_mae"] = _finite(bias_errors["mae"])
    else:
        out["rmse"] = out["mae"] = None
        baselines["global_mean_rmse"] = baselines["bias_rmse"] = None
    relevant = evaluate.relevant_items(test, config.feedback, config.relevance_threshold).cache()
    test_users = relevant.select(c.USER_ID).distinct()
    exclude = fit_data.select(c.USER_ID, c.ARTIST_ID).unionByName(blocked)
    recs = recommend.recommend(spark, fitted, test_users, exclude, config.k, catalog)
    for name, value in evaluate.ranking_metrics(recs, relevant, config.k).items():
        out[name] = _finite(value)
    popularity = evaluate.popularity(fit_data, config.feedback, config.relevance_threshold)
    pop_recs = recommend.recommend_popular(spark, popularity, test_users, exclude, config.k)
    for name, value in evaluate.ranking_metrics(pop_recs, relevant, config.k).items():
        baselines[f"popularity_{name}"] = _finite(value)
    relevant.unpersist()
    out["baselines"] = baselines
    out["evaluated_users"] = test_users.count()
    return out


def popular_list(fitted: model.RecommenderModel, learn: DataFrame, config: JobConfig) -> DataFrame:
    """The fallback for users the model does not know: most-liked artists, with the score an
    unknown user would get from the model (global mean + artist bias, clipped)."""
    pop = evaluate.popularity(learn, config.feedback, config.relevance_threshold)
    top = pop.orderBy(F.col("popularity").desc(), F.col(c.ARTIST_ID)).limit(config.popular_n)
    scored = model.score_pairs(fitted, top.select(F.lit(-1).alias(c.USER_ID), c.ARTIST_ID))
    ranked = top.join(scored.drop(c.USER_ID), c.ARTIST_ID)
    order = F.row_number().over(Window.orderBy(F.col("popularity").desc(), F.col(c.ARTIST_ID)))
    return ranked.select(order.alias(c.RANK), c.ARTIST_ID, c.SCORE, "n_ratings")


def rating_histogram(learn: DataFrame) -> list[tuple[str, int]]:
    bins = F.floor(F.col(c.RATING) / 10) * 10
    rows = learn.groupBy(F.least(bins, F.lit(90)).alias("b")).count().orderBy("b").collect()
    return [(f"{int(r.b)}-{int(r.b) + 9 if r.b < 90 else 100}", int(r["count"])) for r in rows]


def score_histogram(recs: DataFrame, config: JobConfig) -> list[tuple[str, int]]:
    lo, hi = config.rating_scale
    width = (hi - lo) / 10
    bins = F.least(F.floor((F.col(c.SCORE) - lo) / width), F.lit(9))
    rows = recs.groupBy(bins.alias("b")).count().orderBy("b").collect()
    return [(f"{lo + r.b * width:g}-{lo + (r.b + 1) * width:g}", int(r["count"])) for r in rows]
