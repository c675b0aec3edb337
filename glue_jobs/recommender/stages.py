"""The job's stages, each a function of what it needs that returns a frozen result.

read_inputs -> split -> tune (or reuse) -> fit -> evaluate -> recommend; `job.run` strings them
together. A result that caches DataFrames owns them: it is a context manager whose exit releases
them, so `run` can hold each one exactly as long as a later stage reads it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import evaluate, local_model, model, recommend, reuse, similar, tuning
from glue_jobs.recommender.config import Feedback, GateOptions, InputOptions, ModelOptions, TuningOptions
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.ingest import Ingested, ingest, read_artist_names, read_pairs
from glue_jobs.recommender.metrics import (
    RATING_BUCKET_WIDTH,
    RATING_BUCKETS,
    Baselines,
    Gate,
    InputProfile,
    Ranking,
    TestMetrics,
    TuningOrigin,
)
from glue_jobs.recommender.model import Prepared, RecommenderModel

log = logging.getLogger("recommender")


class Held:
    """A stage result that owns cached DataFrames; leaving its `with` block releases them."""

    def held(self) -> tuple[DataFrame | None, ...]:
        return ()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for df in self.held():
            if df is not None:
                df.unpersist()


# --- read and validate -------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs(Held):
    """Validated input: ratings to learn from, the 255 pairs (never recommended), the quarantine."""

    learn: DataFrame
    blocked: DataFrame  # user_id, artist_id of every 255 rating
    quarantine: DataFrame
    quarantine_counts: dict[str, int]
    ratings: int  # learnable ratings
    never_play_again: int
    input_rows: int
    input_format: str
    dms_changes: dict[str, int] | None
    artists: DataFrame | None  # artist_id, artist_name (--artists)
    pairs: DataFrame | None  # user_id, artist_id to score (--score-pairs)
    profile: InputProfile  # what the input guard compares with the published run

    def held(self) -> tuple[DataFrame | None, ...]:
        return (self.learn, self.blocked, self.quarantine, self.artists)


def read_inputs(spark: SparkSession, options: InputOptions, gates: GateOptions) -> Inputs:
    ingested = ingest(spark, options.inputs, options.input_format)
    # The ingest step caches its classified rows; from them keep only the quarantine (small)
    # and the two halves of the ratings, then let the classification go: one copy of the
    # ratings in memory, not three.
    quarantine = ingested.quarantine.cache()
    blocked = (ingested.ratings.filter(F.col(c.RATING) == c.NEVER_PLAY_AGAIN)
               .select(c.USER_ID, c.ARTIST_ID).cache())
    learn = ingested.ratings.filter(F.col(c.RATING) != c.NEVER_PLAY_AGAIN).cache()
    try:
        return _validated(spark, options, gates, ingested, quarantine, blocked, learn)
    except Exception:
        for df in (quarantine, blocked, learn):  # the gates stopped the run: nothing holds these
            df.unpersist()
        raise


def _validated(spark: SparkSession, options: InputOptions, gates: GateOptions, ingested: Ingested,
               quarantine: DataFrame, blocked: DataFrame, learn: DataFrame) -> Inputs:
    counts, n_blocked, (n_learn, n_users, n_artists, histogram) = input_figures(quarantine, blocked, learn)
    n_kept = n_learn + n_blocked
    ingested.release()  # input_figures filled the three caches: the classification is no longer read
    changes = ingested.dms_changes
    total = sum(counts.values()) + (sum(changes.values()) if changes is not None else n_kept)
    check_quarantine(counts, total, options.inputs, gates.max_quarantine_share)
    if n_learn == 0:
        raise JobFailed(f"input {', '.join(options.inputs)} has no ratings to learn from "
                        f"({n_kept} valid rows, all of them {c.NEVER_PLAY_AGAIN}). Nothing was published.")
    artists = read_artist_names(spark, options.artists).cache() if options.artists else None
    pairs = read_pairs(spark, options.score_pairs) if options.score_pairs else None
    log.info("read %s input rows (%s): %s ratings to learn from, %s never-play-again, %s quarantined",
             f"{total:,}", ingested.input_format, f"{n_learn:,}", f"{n_kept - n_learn:,}",
             f"{sum(counts.values()):,}")
    profile = InputProfile(n_learn, n_users, n_artists, histogram, round((n_kept - n_learn) / n_kept, 6),
                           round(sum(counts.values()) / total, 6))
    return Inputs(learn, blocked, quarantine, counts, n_learn, n_kept - n_learn, total,
                  ingested.input_format, changes, artists, pairs, profile)


def rating_bucket_column() -> Column:
    """metrics.rating_bucket as a Spark column: the rating's index in RATING_BUCKETS."""
    return F.least(F.floor(F.col(c.RATING) / RATING_BUCKET_WIDTH), F.lit(len(RATING_BUCKETS) - 1))


LearnableFigures = tuple[int, int, int, tuple[int, ...]]  # ratings, users, artists, histogram


def input_figures(quarantine: DataFrame, blocked: DataFrame,
                  learn: DataFrame) -> tuple[dict[str, int], int, LearnableFigures]:
    """The quarantine's rows by reason, the 255 pairs, and the ratings, users, artists and rating
    histogram (RATING_BUCKETS) of the learnable ratings, in one aggregation over the union of the
    three (each part tagged): one query, which fills the three caches as it reads them. A grouped
    count of the quarantine, a count of the 255 pairs and an aggregation of the ratings took 12
    Spark jobs on 100k ratings; this takes 8, three of them side by side. The input profile's
    shares of 255 and of the quarantine come from these counts."""
    part, null = "_part", F.lit(None)
    rows = (quarantine.select(F.lit(0).alias(part), c.QUARANTINE_REASON, null.cast("int").alias(c.USER_ID),
                              null.cast("int").alias(c.ARTIST_ID), null.cast("int").alias(c.RATING))
            .unionByName(blocked.select(F.lit(1).alias(part), null.cast("string").alias(c.QUARANTINE_REASON),
                                        c.USER_ID, c.ARTIST_ID, null.cast("int").alias(c.RATING)))
            .unionByName(learn.select(F.lit(2).alias(part), null.cast("string").alias(c.QUARANTINE_REASON),
                                      c.USER_ID, c.ARTIST_ID, c.RATING)))
    learnable, bucket = F.col(part) == 2, rating_bucket_column()
    reasons = sorted(set(c.QUARANTINE_REASONS))
    row = rows.agg(*(F.count(F.when(F.col(c.QUARANTINE_REASON) == reason, 1)) for reason in reasons),
                   F.count(F.when(F.col(part) == 0, 1)), F.count(F.when(F.col(part) == 1, 1)),
                   F.count(F.when(learnable, 1)), F.countDistinct(F.when(learnable, F.col(c.USER_ID))),
                   F.countDistinct(F.when(learnable, F.col(c.ARTIST_ID))),
                   *(F.count(F.when(learnable & (bucket == i), 1)) for i in range(len(RATING_BUCKETS)))).first()
    assert row is not None  # an aggregation without grouping always yields one row
    figures = [int(n) for n in row]
    counts = {reason: 0 for reason in c.QUARANTINE_REASONS} | dict(zip(reasons, figures))
    n_quarantined, n_blocked, n_learn, n_users, n_artists = figures[len(reasons):len(reasons) + 5]
    if n_quarantined != sum(counts.values()):  # a reason the job does not know: count it all the same
        counts |= {str(r[0]): int(r[1]) for r in quarantine.groupBy(c.QUARANTINE_REASON).count().collect()}
    return counts, n_blocked, (n_learn, n_users, n_artists, tuple(figures[len(reasons) + 5:]))


SCALED_USERS_SHARE = 0.9  # --feedback auto: implicit when at least this share of users' ratings span 0..100


def detect_feedback(learn: DataFrame) -> tuple[Feedback, str]:
    """--feedback auto: what the input's numbers are, and why.

    Play counts reach the 0..100 layout by being scaled per user, so each user's fewest plays
    become 0 and most plays 100. Ratings do not: a user rates on the scale as they like. So the
    input is implicit when at least SCALED_USERS_SHARE of the users with 3+ ratings of more than one
    value have exactly 0 as their lowest and 100 as their highest; else explicit. (On generated
    data: listening logs 100%, R1 ratings 20%, 1..5 stars x20 0%.)"""
    per_user = (learn.groupBy(c.USER_ID)
                .agg(F.min(c.RATING).alias("lo"), F.max(c.RATING).alias("hi"), F.count(F.lit(1)).alias("n"))
                .filter((F.col("n") >= 3) & (F.col("hi") > F.col("lo"))))
    row = per_user.agg(F.count(F.lit(1)), F.count(F.when((F.col("lo") == c.RATING_MIN)
                                                         & (F.col("hi") == c.RATING_MAX), 1))).first()
    assert row is not None  # an aggregation without grouping always yields one row
    users, spanning = int(row[0]), int(row[1])
    share = spanning / users if users else 0.0
    feedback = Feedback.IMPLICIT if users and share >= SCALED_USERS_SHARE else Feedback.EXPLICIT
    what = ("play counts scaled per user: implicit" if feedback is Feedback.IMPLICIT
            else "ratings: explicit")
    reason = (f"--feedback auto: {spanning:,} of {users:,} users with 3+ ratings of more than one value "
              f"({share:.0%}; {SCALED_USERS_SHARE:.0%} or more means scaled plays) rate exactly "
              f"{c.RATING_MIN}..{c.RATING_MAX}, so {what}")
    log.info(reason)
    return feedback, reason


def check_quarantine(counts: dict[str, int], total: int, inputs: tuple[str, ...], max_share: float) -> None:
    quarantined = sum(counts.values())
    if total == 0:
        raise JobFailed(f"input {', '.join(inputs)} holds no rows: nothing to train on")
    share = quarantined / total
    if share > max_share:
        by_reason = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v)
        raise JobFailed(
            f"{quarantined} of {total} input rows ({share:.1%}) were quarantined, above the "
            f"allowed {max_share:.1%} (--max-quarantine-share); by reason: "
            f"{by_reason}. Nothing was published.")


# --- split -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Splits(Held):
    train: DataFrame
    valid: DataFrame
    test: DataFrame
    sizes: tuple[int, int, int]
    local: local_model.LocalData | None = None  # every rating on the driver (local_model.eligible)

    def held(self) -> tuple[DataFrame | None, ...]:
        return (self.train, self.valid, self.test)

    @property
    def fit_data(self) -> DataFrame:
        """What the final model learns from: train + validation."""
        return self.train.unionByName(self.valid)

    @property
    def whole(self) -> DataFrame:
        """All learnable ratings, read from the splits' cached copies."""
        return self.fit_data.unionByName(self.test)


def split(inputs: Inputs, options: TuningOptions, seed: int) -> Splits:
    train, valid, test = (df.cache() for df in split_by_pair(inputs.learn, options, seed))
    local = None
    try:
        if local_model.eligible(inputs.ratings, options.sample_ratings):
            # The collect fills the three caches; the sizes and the checks come from its arrays (on
            # 100k ratings the stage runs 7 Spark jobs, where counts, checks and collect took 19).
            local = local_model.collect(train, valid, test, inputs.blocked)
            sizes = local_split_sizes(local)
            log.info("split: %s train, %s validation, %s test", *(f"{n:,}" for n in sizes))
            check_enough_local(local, sizes)
            log.info("collected %s ratings of %s users to fit and evaluate on the driver",
                     f"{local.ratings.values.size:,}", f"{local.user_ids.size:,}")
        else:
            sizes = (train.count(), valid.count(), test.count())
            log.info("split: %s train, %s validation, %s test", *(f"{n:,}" for n in sizes))
            check_enough_data(train, test, sizes)
    except JobFailed:
        for df in (train, valid, test):
            df.unpersist()
        raise
    # From here on the three splits are the cached copy of the learnable ratings.
    inputs.learn.unpersist()
    return Splits(train, valid, test, sizes, local)


def local_split_sizes(local: local_model.LocalData) -> tuple[int, int, int]:
    """Train, validation and test sizes of the collected ratings (what three counts would say)."""
    train, valid, test = (int(n) for n in np.bincount(local.split_of, minlength=3)[:3])
    return train, valid, test


SPLIT_BUCKETS = 1_000_000


def split_by_pair(ratings: DataFrame, options: TuningOptions, seed: int) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Train, validation and test by a seeded hash of each (user, artist) pair. A pair's split
    depends on nothing else, so a split computed again after its cache is gone (a stage dropped
    it, an executor was lost) holds exactly the same rows. randomSplit's would not: it samples
    each partition in turn, and the input computed again need not be partitioned the same way, so
    rows moved between splits, and the ratings every user has "seen" were no longer all there."""
    bucket = F.pmod(F.xxhash64(F.col(c.USER_ID), F.col(c.ARTIST_ID), F.lit(seed)), F.lit(SPLIT_BUCKETS))
    train_end = round((1 - options.validation_share - options.test_share) * SPLIT_BUCKETS)
    valid_end = round((1 - options.test_share) * SPLIT_BUCKETS)
    return (ratings.filter(bucket < train_end), ratings.filter((bucket >= train_end) & (bucket < valid_end)),
            ratings.filter(bucket >= valid_end))


def check_enough_data(train: DataFrame, test: DataFrame, sizes: tuple[int, int, int]) -> None:
    """What tuning, the model and the test metrics need, checked before any of them runs: ratings
    in every split, ratings of 2 users and of 2 artists in train, and a test user who also has
    ratings in train (else no test metric is defined). JobFailed naming what is missing."""
    def ids() -> tuple[int, int, int, int]:
        row = train.agg(F.min(c.USER_ID), F.max(c.USER_ID), F.min(c.ARTIST_ID), F.max(c.ARTIST_ID)).first()
        assert row is not None
        return row[0], row[1], row[2], row[3]

    _require_enough_data(sizes, ids, lambda: _test_user_in_train(train, test, sizes[2]))


def check_enough_local(data: local_model.LocalData, sizes: tuple[int, int, int]) -> None:
    """check_enough_data on the collected arrays: no Spark job."""
    train, test = data.part(local_model.TRAIN), data.part(local_model.TEST)

    def ids() -> tuple[int, int, int, int]:
        return int(train.users.min()), int(train.users.max()), int(train.items.min()), int(train.items.max())

    _require_enough_data(sizes, ids, lambda: bool(np.isin(test.users, train.users).any()))


def _require_enough_data(sizes: tuple[int, int, int], ids: Callable[[], tuple[int, int, int, int]],
                         test_user_in_train: Callable[[], bool]) -> None:
    """check_enough_data's verdict from the split sizes, train's lowest and highest user and artist
    (`ids`) and whether a test user has ratings in train; both asked only when needed."""
    n_train, n_valid, n_test = sizes
    empty = [name for name, n in zip(("train", "validation", "test"), sizes) if n == 0]
    missing = [f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty"] if empty else []
    if n_train:
        lo_user, hi_user, lo_artist, hi_artist = ids()
        missing += [f"train holds the ratings of only one {what}"
                    for what, lo, hi in (("user", lo_user, hi_user), ("artist", lo_artist, hi_artist)) if lo == hi]
        if n_test and not test_user_in_train():
            missing.append("no test user has ratings in train")
    if missing:
        raise JobFailed(
            f"too little data to train and evaluate: {'; '.join(missing)} ({sum(sizes):,} ratings: "
            f"{n_train:,} train, {n_valid:,} validation, {n_test:,} test); need at least one rating in "
            "each split, ratings of 2 users and 2 artists in train, and a test user who also has ratings "
            "in train. Nothing was published.")


def _test_user_in_train(train: DataFrame, test: DataFrame, n_test: int) -> bool:
    """Whether some test user also has ratings in train: first among a thousand test rows' users
    (broadcast; the scan of train stops at the first match), then, only if none did, among all."""
    sample = 1_000
    if train.join(F.broadcast(test.select(c.USER_ID).limit(sample)), c.USER_ID, "left_semi").limit(1).count():
        return True
    return n_test > sample and bool(
        train.join(test.select(c.USER_ID).distinct(), c.USER_ID, "left_semi").limit(1).count())


# --- tune, or reuse the published run's parameters ------------------------------------------------
@dataclass(frozen=True)
class Tuned:
    result: tuning.TuningResult
    origin: TuningOrigin  # tuned here, or reused from the run that tuned


def tune(spark: SparkSession, splits: Splits, inputs: Inputs, previous: reuse.Previous, options: ModelOptions,
         tune_opts: TuningOptions) -> Tuned:
    """Tunes on the validation split, or takes the parameters of the published run (`--tuning`).
    A reused run measured no grid and no weight curve: both stay empty in its metrics, and the
    run that tuned (`origin.reused_from`) holds them."""
    decision = reuse.decide(previous, inputs.ratings, tune_opts, feedback=options.feedback, bias_regs=options.bias_reg)
    if decision.params is None:
        return Tuned(tuning.tune(spark, splits.train, splits.valid, inputs.blocked, options, tune_opts,
                                 splits.local), decision.origin)
    best = decision.params
    chosen = tuning.Candidate(best.rank, best.reg_param, tune_opts.metric, math.nan)  # not measured here
    bias_reg = reuse.bias_reg_of(best)
    baseline = previous.metrics.baselines.bias_reg if previous.metrics is not None else None
    return Tuned(tuning.TuningResult(chosen, [], best.popularity_weight, [], bias_reg,
                                     bias_reg if baseline is None else baseline,
                                     blend_weight=reuse.blend_weight_of(best)), decision.origin)


# --- refit the tuned parameters on train + validation -------------------------------------------
@dataclass(frozen=True)
class Fitted(Held):
    model: RecommenderModel
    prepared: Prepared | None  # the Spark path's training data
    catalog: recommend.Catalog  # collected and broadcast once: evaluation and top-N share it
    local: local_model.LocalModel | None = None  # the same model as arrays, when fitted on the driver
    baseline_bias_reg: float | None = None  # the bias baseline's shrinkage, when not the model's

    def held(self) -> tuple[DataFrame | None, ...]:
        return (self.model.users, self.model.items, self.prepared.data if self.prepared else None)


def fit(spark: SparkSession, splits: Splits, tuned: tuning.TuningResult, options: ModelOptions) -> Fitted:
    best = tuned.best
    baseline = tuned.baseline_bias_reg if tuned.baseline_bias_reg != tuned.bias_reg else None
    blend = local_model.Blend(tuned.blend_weight, options.blend_rank, options.blend_reg)
    if splits.local is not None:
        local = local_model.fit(splits.local, rank=best.rank, reg_param=best.reg_param, max_iter=options.max_iter,
                                bias_reg=tuned.bias_reg, seed=options.seed,
                                popularity_weight=tuned.popularity_weight, feedback=options.feedback,
                                alpha=options.alpha, blend=blend)
        return Fitted(local_model.as_spark(spark, local), None, local.catalog(), local, baseline)
    prepared = model.prepare(splits.fit_data, options.feedback, tuned.bias_reg)
    blocks = tuning.als_blocks(spark)
    fitted = model.fit(prepared, feedback=options.feedback, rank=best.rank, reg_param=best.reg_param,
                       max_iter=options.max_iter, alpha=options.alpha, seed=options.seed, blocks=blocks)
    fitted = tuning.replace_weight(fitted, tuned.popularity_weight)
    log.info("fitting rank=%d reg=%g on train + validation (%d iterations)", best.rank, best.reg_param,
             options.max_iter)
    if blend.weight > 0:
        fitted = model.fit_companion(fitted, splits.fit_data, weight=blend.weight, rank=blend.rank,
                                     reg_param=blend.reg_param, max_iter=options.max_iter, seed=options.seed,
                                     blocks=blocks)
        log.info("fitting the companion model (rank %d, reg %g) for the blend weight %g", blend.rank,
                 blend.reg_param, blend.weight)
    fitted.users.count()
    return Fitted(fitted, prepared, recommend.model_catalog(fitted), baseline_bias_reg=baseline)


# --- evaluate on the test split, then the quality gate ------------------------------------------
def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _ranking(metrics: dict[str, float]) -> Ranking:
    return Ranking(**{name: _finite(value) for name, value in metrics.items()})


def evaluate_on_test(spark: SparkSession, fitted: Fitted, splits: Splits, blocked: DataFrame,
                     feedback: Feedback, options: TuningOptions, seed: int, bias_reg: float | None = None
                     ) -> TestMetrics:
    """The model, the bias baseline (biases shrunk by `bias_reg`, the value recorded with it) and
    popularity on the test split."""
    if fitted.local is not None:
        errors, ranking, popular, users = _local_test_metrics(fitted.local, options, seed, fitted.baseline_bias_reg)
    else:
        errors, ranking, popular, users = _spark_test_metrics(spark, fitted, splits, blocked, feedback, options,
                                                              seed)
    baselines = Baselines(errors.get("global_mean_rmse"), errors.get("global_mean_mae"),
                          errors.get("bias_rmse"), errors.get("bias_mae"), _ranking(popular),
                          bias_reg if feedback.has_ratings else None)
    tested = TestMetrics(errors.get("rmse"), errors.get("mae"), _ranking(ranking), baselines, users)
    log.info("test: rmse=%s (bias %s), ndcg@%d=%s (popularity %s) over %s users", tested.rmse,
             baselines.bias_rmse, options.k, tested.ranking.ndcg_at_k, baselines.popularity.ndcg_at_k,
             f"{tested.evaluated_users:,}")
    return tested


_TestFigures = tuple[dict[str, float | None], dict[str, float], dict[str, float], int]


def _spark_test_metrics(spark: SparkSession, fitted: Fitted, splits: Splits, blocked: DataFrame,
                        feedback: Feedback, options: TuningOptions, seed: int) -> _TestFigures:
    """Rating errors, the model's and popularity's ranking metrics, and the evaluated users."""
    k, threshold = options.k, options.relevance_threshold
    errors = _rating_errors(fitted, splits) if feedback.has_ratings else {}
    relevant = evaluate.relevant_items(splits.test, feedback, threshold)
    relevant = some_users(relevant, options.eval_users, seed).cache()
    test_users = relevant.select(c.USER_ID).distinct()
    # Only the evaluated users' exclusions: with --eval-users, grouping everyone's would cost a
    # shuffle of all the ratings twice (model and popularity).
    # Cached: the model's lists and popularity's read it, and each would scan the ratings again.
    exclude = (splits.fit_data.select(c.USER_ID, c.ARTIST_ID).unionByName(blocked)
               .join(test_users, c.USER_ID, "left_semi")).cache()
    recs = recommend.recommend(spark, fitted.model, test_users, exclude, k, fitted.catalog)
    ranking = evaluate.ranking_metrics(recs, relevant, k)
    popularity = evaluate.popularity(splits.fit_data, feedback, threshold)
    pop_recs = evaluate.popular_top_k(spark, popularity, test_users, exclude, k)
    popular = evaluate.ranking_metrics(pop_recs, relevant, k)
    relevant.unpersist()
    exclude.unpersist()
    return errors, ranking, popular, test_users.count()


def _local_test_metrics(fitted: local_model.LocalModel, options: TuningOptions, seed: int,
                        baseline_bias_reg: float | None = None) -> _TestFigures:
    """_spark_test_metrics on the driver's arrays (evaluated users drawn by NumPy, not by hash)."""
    errors: dict[str, float | None] = {}
    measured = local_model.rating_errors(fitted, baseline_bias_reg) if fitted.params.feedback.has_ratings else {}
    for name, figures in measured.items():
        errors[f"{name}rmse"], errors[f"{name}mae"] = _finite(figures.rmse), _finite(figures.mae)
    return (errors, *local_model.ranking(fitted, options.k, options.relevance_threshold, options.eval_users,
                                         seed))


def some_users(rows: DataFrame, bound: int, seed: int) -> DataFrame:
    """The rows of about `bound` users, drawn by a seeded hash of the user id (the same
    users whatever the partitioning); all rows when there are fewer users or bound is 0. Ranking
    metrics over 100,000 users are as precise as over millions, and top-N for each costs
    users x artists."""
    users = rows.select(c.USER_ID).distinct().count() if bound else 0
    if not bound or users <= bound:
        return rows
    buckets = 1_000_000
    keep = F.pmod(F.xxhash64(F.col(c.USER_ID), F.lit(seed)), F.lit(buckets)) < F.lit(max(1, bound * buckets // users))
    return rows.filter(keep)


def _rating_errors(fitted: Fitted, splits: Splits) -> dict[str, float | None]:
    """RMSE and MAE of the model, the bias-only model (its biases refitted when the baseline's
    shrinkage is not the model's) and the global mean on rated test pairs, in one pass over the
    test split joined once to the model (three passes and joins before)."""
    m = fitted.model
    p = m.params
    scored = model.with_terms(m, splits.test.select(c.USER_ID, c.ARTIST_ID, c.RATING))
    user_bias, item_bias = F.col("_bu"), F.col("_bi")
    if fitted.baseline_bias_reg is not None:
        biases = model.fit_biases(splits.fit_data, fitted.baseline_bias_reg)
        scored = (scored.join(biases.users.withColumnRenamed(model.BIAS, "_bu0"), c.USER_ID, "left")
                  .join(F.broadcast(biases.items.withColumnRenamed(model.BIAS, "_bi0")), c.ARTIST_ID, "left"))
        user_bias, item_bias = F.col("_bu0"), F.col("_bi0")
    served = {"": model.explicit_score(p, F.col("_bu"), F.col("_bi"), F.col("_fu"), F.col("_fi")),
              "bias_": model.bias_score(p, user_bias, item_bias)}  # clipped to the scale, as served
    predictions = {name: model.clip(pred.cast("double"), p) for name, pred in served.items()}
    out: dict[str, float | None] = {}
    for name, errors in evaluate.errors_of(scored, {**predictions, "global_mean_": F.lit(p.global_mean)}).items():
        out[f"{name}rmse"], out[f"{name}mae"] = _finite(errors["rmse"]), _finite(errors["mae"])
    return out


@dataclass(frozen=True)
class Choice:
    """How the run's parameters were chosen, for the gate's diagnosis."""

    rank: int
    metric: str  # the selection metric
    reused_from: str | None = None  # the run whose tuning this run reused


def quality_gate(tested: TestMetrics, feedback: Feedback, gates: GateOptions,
                 choice: Choice = Choice(1, "rmse")) -> Gate:
    """The model must match the bias baseline (explicit, RMSE: the bias-only model is a candidate,
    so only broken data or code loses to it by more than test noise) or beat popularity (implicit,
    NDCG); JobFailed, saying which is to blame, when it does not."""
    if feedback.has_ratings:
        value, base = tested.rmse, tested.baselines.bias_rmse
        unmeasured = _unmeasured(("rmse", value), ("bias_rmse", base))
        limit = (base or 0.0) * (1 - gates.min_rmse_gain)
        gate = Gate(value is not None and value <= limit, "rmse", value, "bias_rmse", round(limit, 6), True)
    else:
        value, base = tested.ranking.ndcg_at_k, tested.baselines.popularity.ndcg_at_k
        unmeasured = _unmeasured(("ndcg_at_k", value), ("popularity_ndcg_at_k", base))
        limit = (base or 0.0) * (1 + gates.min_ndcg_gain)
        gate = Gate(value is not None and value > limit, "ndcg_at_k", value, "popularity_ndcg_at_k",
                    round(limit, 6), False)
    if unmeasured:
        raise JobFailed(f"quality gate cannot judge the model: the test split ({tested.evaluated_users:,} "
                        f"users evaluated) gave no {' and no '.join(unmeasured)}, so the model cannot be "
                        "compared with its baseline. Nothing was published.")
    if not gate.passed:
        raise JobFailed(f"quality gate failed: {gate.metric} = {gate.value} is not "
                        f"{'at most' if gate.below else 'above'} {gate.limit} ({gate.baseline} with the "
                        f"configured gain). {_blame(tested, feedback, gates, choice)} Nothing was published.")
    return gate


def _blame(tested: TestMetrics, feedback: Feedback, gates: GateOptions, choice: Choice) -> str:
    """What a failed gate means: the data, the settings, test noise, or the code."""
    base = tested.baselines
    if not feedback.has_ratings:
        return ("Implicit ALS ranked worse than the most popular artists: the input may not be play counts or "
                "listening data (try --feedback explicit), or the grid needs other ranks, regParams or --alpha.")
    if base.bias_rmse is not None and base.global_mean_rmse is not None and base.bias_rmse >= base.global_mean_rmse:
        return (f"The data: user and artist biases ({base.bias_rmse}) predict no better than the global mean "
                f"({base.global_mean_rmse}), so the ratings carry no sign of who rated what; check the input.")
    if choice.rank == 0:
        return ("The settings: the bias-only model won on validation, so the test RMSE is the bias baseline's and "
                f"cannot show the gain --min-rmse-gain {gates.min_rmse_gain:g} asks for.")
    if choice.reused_from:
        return (f"The settings: rank {choice.rank} was reused from run {choice.reused_from}, not chosen on this "
                "data; run with --tuning full to choose again (the bias-only model among the candidates).")
    if choice.metric != "rmse":
        return (f"The settings: rank {choice.rank} was chosen by validation {choice.metric}, not RMSE; select by "
                "RMSE (--metric rmse) or relax --min-rmse-gain.")
    return (f"Test noise or the code: ALS rank {choice.rank} beat the bias-only model on validation RMSE but lost "
            f"to it on the test split ({tested.evaluated_users:,} users evaluated) by more than the allowed "
            "margin; on a small test split allow more (--min-rmse-gain -0.03), else this is a bug: please report "
            "it with the run's metrics.json.")


def _unmeasured(*figures: tuple[str, float | None]) -> list[str]:
    """The names of the figures the test split did not yield (None or NaN)."""
    return [name for name, value in figures if value is None or math.isnan(value)]


# --- recommendations, the popularity fallback, scored pairs ---------------------------------------
@dataclass(frozen=True)
class Recommendations(Held):
    recs: DataFrame  # sorted by user, rank; RECOMMENDATION_COLUMNS (+ ARTIST_NAME)
    popular: DataFrame  # the fallback list, by rank
    scores: DataFrame | None  # --score-pairs, scored
    count: int
    users: int
    items: int
    catalog_coverage: float
    scoring_core_s: float | None = None  # the Spark top-N's seconds in its block scorer (recommend.top_n_by_user)

    def held(self) -> tuple[DataFrame | None, ...]:
        return (self.recs, self.popular)


def recommend_all(spark: SparkSession, fitted: Fitted, learn: DataFrame, inputs: Inputs,
                  options: ModelOptions, threshold: float) -> Recommendations:
    exclude = learn.select(c.USER_ID, c.ARTIST_ID).unionByName(inputs.blocked)
    all_users = exclude.select(c.USER_ID).distinct()
    # Scored once: the range sort below samples its input before it shuffles, which would
    # otherwise run the whole top-N step twice.
    clock = None
    if fitted.local is not None and local_model.lists_fit_driver(fitted.local, options.top_n):
        scored = local_model.top_n(spark, fitted.local, fitted.catalog, options.top_n).cache()
    else:
        clock = spark.sparkContext.accumulator(0.0)
        scored = recommend.recommend(spark, fitted.model, all_users, exclude, options.top_n, fitted.catalog,
                                     clock).cache()
    recs, popular = scored, popular_list(fitted.model, learn, options, threshold)
    names = inputs.artists
    if names is not None:
        recs = recs.join(F.broadcast(names), c.ARTIST_ID, "left")
        popular = popular.join(F.broadcast(names), c.ARTIST_ID, "left")
    # Sorted once and cached in that order: both file formats, the histograms and the
    # publishing read this copy (a range-partitioned sort, so every task writes its own part).
    recs = (recs.select(*c.RECOMMENDATION_COLUMNS, *([c.ARTIST_NAME] if names is not None else []))
            .orderBy(c.USER_ID, c.RANK).cache())
    n_recs = recs.count()
    scored.unpersist()
    popular = popular.orderBy(c.RANK).cache()
    scores = model.score_pairs(fitted.model, inputs.pairs) if inputs.pairs is not None else None
    coverage = round(evaluate.catalog_coverage(recs, fitted.catalog.artist_ids.size), 6)
    # The artists rated (learnable ratings): counted when the input was read. The users include
    # those with only 255s: from the arrays, or one more pass.
    n_items = inputs.profile.artists
    n_users = fitted.local.data.user_ids.size if fitted.local is not None else all_users.count()
    result = Recommendations(recs, popular, scores, n_recs, n_users, n_items, coverage,
                             None if clock is None else round(float(clock.value), 3))
    log.info("recommended %s artists to %s users (catalog coverage %.1f%%)", f"{n_recs:,}",
             f"{result.users:,}", 100 * coverage)
    return result


def popular_list(fitted: model.RecommenderModel, learn: DataFrame, options: ModelOptions,
                 threshold: float) -> DataFrame:
    """The fallback for users the model does not know: most-liked artists. Its score is the
    popularity it is ranked by (users who liked the artist, plus a millionth per rating), so it
    never rises down the list; its predicted rating is what the model predicts for a user it does
    not know (global mean + artist bias, clipped; null for implicit feedback)."""
    pop = evaluate.popularity(learn, options.feedback, threshold)
    top = pop.orderBy(F.col("popularity").desc(), F.col(c.ARTIST_ID)).limit(options.popular_n)
    scored = model.score_pairs(fitted, top.select(F.lit(-1).alias(c.USER_ID), c.ARTIST_ID))
    ranked = top.join(scored.select(c.ARTIST_ID, c.PREDICTED_RATING), c.ARTIST_ID)
    order = F.row_number().over(Window.orderBy(F.col("popularity").desc(), F.col(c.ARTIST_ID)))
    return ranked.select(order.alias(c.RANK), c.ARTIST_ID, F.round("popularity", 6).alias(c.SCORE),
                         c.PREDICTED_RATING, "n_ratings")


# --- similar artists ("fans also like") -----------------------------------------------------------
@dataclass(frozen=True)
class SimilarArtists(Held):
    """Each eligible artist's most similar artists, from the final model's artist factors."""

    lists: DataFrame | None  # sorted by artist_id, rank: SIMILAR_ARTIST_COLUMNS (+ both names); None: rank 0
    count: int  # rows
    artists: int  # artists that got a list

    def held(self) -> tuple[DataFrame | None, ...]:
        return (self.lists,)


def similar_artists(spark: SparkSession, fitted: Fitted, inputs: Inputs, options: ModelOptions) -> SimilarArtists:
    lists = similar.similar_artists(spark, fitted.model, fitted.local, options.similar_n, options.min_artist_ratings)
    if lists is None:
        return SimilarArtists(None, 0, 0)
    names = inputs.artists
    extra: list[str] = []
    if names is not None:
        theirs = names.select(F.col(c.ARTIST_ID).alias(c.SIMILAR_ARTIST_ID),
                              F.col(c.ARTIST_NAME).alias(c.SIMILAR_ARTIST_NAME))
        lists = (lists.join(F.broadcast(names), c.ARTIST_ID, "left")
                 .join(F.broadcast(theirs), c.SIMILAR_ARTIST_ID, "left"))
        extra = [c.ARTIST_NAME, c.SIMILAR_ARTIST_NAME]
    # Sorted once and cached in that order: both file formats and the sinks read this copy.
    lists = lists.select(*c.SIMILAR_ARTIST_COLUMNS, *extra).orderBy(c.ARTIST_ID, c.RANK).cache()
    row = lists.agg(F.count(F.lit(1)), F.count(F.when(F.col(c.RANK) == 1, 1))).first()  # one pass, fills the cache
    assert row is not None  # an aggregation without grouping always yields one row
    count, artists = int(row[0]), int(row[1])
    log.info("listed %s similar artists for %s artists (at most %d each, artists with at least %d ratings)",
             f"{count:,}", f"{artists:,}", options.similar_n, options.min_artist_ratings)
    return SimilarArtists(lists, count, artists)
