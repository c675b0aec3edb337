"""The recommender job from input to outputs, as the pipeline it is.

read + validate (quarantine gate, input guard) -> split -> tune (or reuse the published run's tuning) -> refit
-> evaluate (quality gate)
-> recommend -> similar artists -> write the run, `_SUCCESS` last -> publish to the sinks.
Each stage lives in `stages` (files in `outputs`, sinks in `publish`); nothing is written under
the output directory unless every gate has passed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from glue_jobs import contracts as c
from glue_jobs.recommender import guard, outputs, publish, reuse, stages, tuning
from glue_jobs.recommender.config import ConfigError, Feedback, JobConfig
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.metrics import BestParams, Counts, Gate, RunMetrics, TestMetrics

__all__ = ["JobFailed", "JobResult", "StageTimer", "run"]
log = logging.getLogger("recommender")


@dataclass
class StageTimer:
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        log.info("stage %s: started", stage)
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            self.timings[stage] = round(self.timings.get(stage, 0.0) + spent, 3)
            log.info("stage %s: done in %.1f s", stage, spent)


@dataclass
class JobResult:
    run_id: str
    output: str
    metrics: RunMetrics


def run(spark: SparkSession, config: JobConfig, run_id: str | None = None) -> JobResult:
    run_id, timer = run_id or c.new_run_id(), StageTimer()
    sinks = publish.PublishSettings.from_options(config.sinks)
    with timer("preflight"):
        preflight(sinks)
        known = config.model.feedback is not Feedback.AUTO  # else the input decides (stages.detect_feedback)
        config = config.with_feedback(config.model.feedback) if known else config
        # Known feedback: `--tuning reuse` with nothing to reuse fails before any data is read.
        early = published_runs(config) if known else None
    with ExitStack() as held:
        with timer("read_validate"):
            inputs = held.enter_context(stages.read_inputs(spark, config.input, config.gates))
            config, feedback_reason = decide_feedback(config, inputs)
            published, previous = early or published_runs(config)
            compared = guard.check_input(inputs.profile, published, config.gates)  # before the split
        model_opts, tune_opts, feedback = config.model, config.tuning, config.model.feedback
        with timer("split"):
            splits = held.enter_context(stages.split(inputs, tune_opts, model_opts.seed))
        with timer("tune"):
            tuned = stages.tune(spark, splits, inputs, previous, model_opts, tune_opts)
        with timer("fit"):
            fitted = held.enter_context(stages.fit(spark, splits, tuned.result, model_opts))
        with timer("evaluate"):
            tested = stages.evaluate_on_test(spark, fitted, splits, inputs.blocked, feedback, tune_opts,
                                             model_opts.seed, tuned.result.baseline_bias_reg)
        gate = stages.quality_gate(tested, feedback, config.gates, stages.Choice(
            tuned.result.best.rank, tune_opts.metric, tuned.origin.reused_from))
        with timer("recommend"):
            recs = held.enter_context(stages.recommend_all(spark, fitted, splits.whole, inputs, model_opts,
                                                           tune_opts.relevance_threshold))
        with timer("similar"):
            similar = held.enter_context(stages.similar_artists(spark, fitted, inputs, model_opts))
        metrics = summarise(spark, run_id, config, inputs, splits, tuned, tested, gate, recs, similar)
        metrics = metrics.with_(input_guard=compared, feedback_reason=feedback_reason)
        out = config.output_for(run_id)
        with timer("write"):
            outputs.write_data(out, recs, inputs.quarantine, fitted.model, similar)
        metrics = metrics.with_(timings_s=dict(timer.timings),
                                grid=tuning.relative_to_fit(metrics.grid, timer.timings["fit"], metrics.spark["model"]))
        outputs.finish(out, metrics, recs.recs, feedback.rating_scale)
        if sinks.enabled:
            metrics = publish_run(sinks, metrics, recs, inputs, config.model.top_n, out, timer, similar)
    return JobResult(run_id, out, metrics)


def published_runs(config: JobConfig) -> tuple[reuse.Previous, reuse.Previous]:
    """The run published under --runs-root (whatever --tuning: the input guard compares with it),
    and the one whose tuning this run may reuse."""
    published = reuse.read_published(config.sinks.runs_root)
    return published, reuse.published_run(config.sinks.runs_root, config.tuning, config.model.feedback, published)


def decide_feedback(config: JobConfig, inputs: stages.Inputs) -> tuple[JobConfig, str | None]:
    """--feedback auto: the config for the feedback the input holds, and why; else unchanged."""
    if config.model.feedback is not Feedback.AUTO:
        return config, None
    feedback, reason = stages.detect_feedback(inputs.learn)
    try:
        return config.with_feedback(feedback), reason
    except ConfigError as exc:
        raise JobFailed(f"{reason}; but {exc}. Nothing was trained or published.") from exc


def preflight(sinks: publish.PublishSettings) -> None:
    try:
        publish.preflight(sinks)
    except publish.PublishError as exc:
        raise JobFailed(f"{exc}. Nothing was trained or published.") from exc


def publish_run(sinks: publish.PublishSettings, metrics: RunMetrics, recs: stages.Recommendations,
                inputs: stages.Inputs, top_n: int, out: str, timer: StageTimer,
                similar: stages.SimilarArtists) -> RunMetrics:
    """Publishes the complete run to every sink, then records what they took in metrics.json."""
    names = inputs.artists
    artists = ([{c.ARTIST_ID: r[c.ARTIST_ID], "name": r[c.ARTIST_NAME]} for r in names.collect()]
               if names is not None else [])
    with timer("publish"):
        try:
            published = publish.publish_run(publish.RunToPublish(
                metrics.run_id, top_n, recs.recs, [r.asDict() for r in recs.popular.collect()], artists,
                metrics, similar=similar.lists if similar.count else None), sinks)
        except publish.PublishError as exc:
            raise JobFailed(f"{exc}. The run's files are complete under {out}, but it was not "
                            "published.") from exc
    metrics = metrics.with_(published=published, timings_s=dict(timer.timings))
    outputs.write_metrics(out, metrics)  # again, with what publishing did and took
    return metrics


def summarise(spark: SparkSession, run_id: str, config: JobConfig, inputs: stages.Inputs,
              splits: stages.Splits, tuned: stages.Tuned, tested: TestMetrics, gate: Gate,
              recs: stages.Recommendations, similar: stages.SimilarArtists) -> RunMetrics:
    train, valid, test = splits.sizes
    counts = Counts(input_rows=inputs.input_rows, ratings=inputs.ratings, users=recs.users, items=recs.items,
                    never_play_again=inputs.never_play_again, train=train, validation=valid, test=test,
                    quarantined=sum(inputs.quarantine_counts.values()), recommendations=recs.count,
                    similar_artists=similar.count, similar_lists=similar.artists)
    result = tuned.result
    best = BestParams(result.best.rank, result.best.reg_param, round(result.popularity_weight, 6),
                      result.bias_reg if config.model.feedback.has_ratings else None, result.blend_weight)
    return RunMetrics(
        run_id=run_id, feedback=config.model.feedback.value, k=config.tuning.k, top_n=config.model.top_n,
        spark={**spark_settings(spark), "model": "numpy" if splits.local is not None else "spark"},
        input_format=inputs.input_format, quarantine=inputs.quarantine_counts,
        best_params=best, grid=[cand.as_dict() for cand in result.grid], tuning=tuned.origin,
        popularity_weight_curve=[{k: round(v, 6) for k, v in point.items()} for point in result.weight_curve],
        bias_reg_curve=result.bias_reg_curve,
        blend_curve=[{k: round(v, 6) for k, v in point.items()} for point in result.blend_curve],
        selection_metric=config.tuning.metric, test=tested,
        quality_gate=gate, catalog_coverage=recs.catalog_coverage, counts=counts,
        dms_changes=inputs.dms_changes, input_profile=inputs.profile,
        task_s={} if recs.scoring_core_s is None else {"recommend_scoring": recs.scoring_core_s})


def spark_settings(spark: SparkSession) -> dict[str, Any]:
    """The settings that decide how a run scales, as this run used them (for metrics.json)."""
    sc = spark.sparkContext
    return {"master": sc.master, "default_parallelism": sc.defaultParallelism,
            "shuffle_partitions": int(spark.conf.get("spark.sql.shuffle.partitions", "0") or 0),
            "als_blocks": tuning.als_blocks(spark),
            "driver_memory": sc.getConf().get("spark.driver.memory", "default")}

