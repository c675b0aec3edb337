"""Chooses ALS rank and regParam on held-out data (one split or k folds).

Explicit feedback is tuned in NumPy on the driver (local_als, local_eval): the train and
validation ratings of at most `--tune-sample-ratings` ratings' worth of users are collected once,
and every fold's biases, normal-equation layout, validation pairs and exclusion sets are built
once and shared by all candidates. Implicit feedback is tuned there too when every rating is on the
driver already (local_model.eligible: the run fits and evaluates there as well), with
local_als.fit_implicit; larger implicit input is tuned with Spark's ALS (tune_on_spark).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import evaluate, local_als, local_eval, local_model, recommend
from glue_jobs.recommender.config import BIAS_ONLY, Feedback, ModelOptions, TuningOptions
from glue_jobs.recommender.model import Prepared, RecommenderModel, fit, prepare

log = logging.getLogger("recommender")


@dataclass(frozen=True)
class Candidate:
    rank: int
    reg_param: float
    metric: str
    value: float  # mean over folds
    seconds: float = math.nan  # fitting and scoring it on every fold

    def as_dict(self) -> dict[str, float | int | str]:
        """As metrics.json records it: rounded to 6 digits like every other figure there, since
        the digits beyond differ between runs with Spark's order of summation."""
        out: dict[str, float | int | str] = {"rank": self.rank, "reg_param": self.reg_param,
                                             self.metric: round(self.value, 6)}
        if not math.isnan(self.seconds):
            out["seconds"] = round(self.seconds, 3)
        return out


def relative_to_fit(grid: list[dict[str, Any]], fit_seconds: float, model_on: str = "spark") -> list[dict[str, Any]]:
    """Grid entries (Candidate.as_dict) with `vs_spark_fit` (or `vs_numpy_fit` when the run fitted its
    model on the driver): the candidate's seconds over the run's `fit` stage, one plain fit (biases +
    ALS) of the chosen parameters on train + validation."""
    if fit_seconds <= 0:
        return grid
    key = f"vs_{model_on}_fit"
    return [{**g, key: round(g["seconds"] / fit_seconds, 3)} if "seconds" in g else g for g in grid]


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
    bias_reg: float = 10.0  # the biases' shrinkage the best model was fitted with
    baseline_bias_reg: float = 10.0  # the shrinkage that suits biases alone: the bias baseline's
    bias_reg_curve: list[dict[str, float]] = dataclasses.field(default_factory=list)
    blend_weight: float = 0.0  # the implicit companion's weight in the ranking; 0: no companion
    blend_curve: list[dict[str, float]] = dataclasses.field(default_factory=list)  # see local_blend


def tune(spark: SparkSession, train: DataFrame, valid: DataFrame, blocked: DataFrame,
         model: ModelOptions, tuning: TuningOptions, local: local_model.LocalData | None = None) -> TuningResult:
    """`local`: every rating, already collected (local_model.eligible); else the tuning collects
    its sample itself (explicit feedback) or tunes with Spark fits (implicit: tune_on_spark).

    Implicit feedback on the driver is tune_on_spark's choice made in NumPy: ranks x regParams
    (pruned and walked by _fit_grid where tune_on_spark fits them all; no bias-only model: implicit
    ALS has no biases, so no --bias-reg stage either), scored by validation NDCG@k as the Spark
    path ranks (every validation play relevant, the fold's training pairs and the 255s excluded),
    then the popularity-weight curve. On generated listening data (100k plays; 10 iterations and
    the grid 0.05,0.1,0.2, the defaults then) Spark's grid scored rank 10 0.209-0.210, rank 20
    0.192-0.196 and rank 50 0.148-0.165, and NumPy's stopped after rank 20 (the rank pruning) with
    the same choice (rank 10, reg 0.05, weight 0.2) and curve (to 0.002)."""
    if local is None and not model.feedback.has_ratings:
        return tune_on_spark(spark, train, valid, blocked, model, tuning)
    start = time.perf_counter()
    data = (tuning_data_of(local) if local is not None
            else collect_tuning_data(spark, train, valid, blocked, tuning.sample_ratings, model.seed))
    collected = time.perf_counter()
    folds = local_folds(data, model, tuning, model.bias_reg[0])
    log.info("tuning on %d ratings of %d users: collected in %.1f s, %d fold(s) prepared in %.1f s",
             data.ratings.values.size, data.ratings.n_users, collected - start, len(folds),
             time.perf_counter() - collected)
    with local_als.single_threaded_blas():  # the threads below are the parallelism
        grid, first_fold = _fit_grid(folds, model, tuning)
        shrink = (tune_bias_reg(data, folds, grid, first_fold, model, tuning) if model.feedback.has_ratings
                  else unshrunk(grid, folds, first_fold, model.bias_reg[0]))
        start = time.perf_counter()
        weight, curve = local_popularity_weight(shrink.folds[0], shrink.factors, model.feedback, tuning)
        log.info("popularity weight %g chosen from %d in %.1f s", weight, len(curve), time.perf_counter() - start)
        blend, weight, blend_curve = local_blend(shrink.folds[0], shrink.factors, weight, curve, model, tuning)
    return TuningResult(shrink.best, grid, weight, curve, shrink.bias_reg, shrink.baseline_bias_reg, shrink.curve,
                        blend, blend_curve)


@dataclass(frozen=True)
class BiasShrinkage:
    """The --bias-reg stage's outcome: the best candidate at its best shrinkage, and the biases' own."""

    best: Candidate
    bias_reg: float
    baseline_bias_reg: float
    folds: list[LocalFold]  # at bias_reg
    factors: local_als.Factors  # best's on the first fold
    curve: list[dict[str, float]]


def tune_bias_reg(data: TuningData, folds: list[LocalFold], grid: list[Candidate],
                  first_fold: dict[tuple[int, float], local_als.Factors], model: ModelOptions,
                  tuning: TuningOptions) -> BiasShrinkage:
    """How hard to shrink the biases, after the grid ran at the first --bias-reg: the grid's best
    rank and regParam, and the bias-only model, refitted at every other value (shrinking the
    biases harder leaves the factors more to explain, which often helps them: on generated R1
    data 30-100 beat 10 by up to 5% in validation RMSE). The best of all of them on validation
    wins, so the model is never worse there than biases alone at any shrinkage. The bias baseline
    takes the value with the best bias-only validation RMSE, so the baseline is not weakened by
    the model's choice. One value: nothing to tune."""
    values = list(dict.fromkeys(model.bias_reg))
    best = choose(grid)
    params = (best.rank, best.reg_param)
    first = values[0]
    # (value, candidate, its first-fold factors) for the grid's best and for biases alone
    tried = [(first, best, first_fold[params])]
    if params != BIAS_ONLY:
        bias_first = next(g for g in grid if (g.rank, g.reg_param) == BIAS_ONLY)
        tried.append((first, bias_first, first_fold[BIAS_ONLY]))
    folds_at = {first: folds}

    def refit_at(value: float) -> tuple[list[LocalFold], list[tuple[float, Candidate, local_als.Factors]]]:
        start = time.perf_counter()
        other = local_folds(data, model, tuning, value)
        cand, factors = _evaluate_candidate(other, params, model, tuning)
        out = [(value, cand, factors)]
        if params != BIAS_ONLY:
            out.append((value, *_evaluate_candidate(other, BIAS_ONLY, model, tuning)))
        log.info("bias reg %g: rank=%d reg=%g %s=%.4g in %.1f s", value, cand.rank, cand.reg_param, cand.metric,
                 cand.value, time.perf_counter() - start)
        return other, out

    # `--parallelism` values at once, like the grid's candidates (4M ratings: 17 s one after the other)
    with ThreadPoolExecutor(max_workers=tuning.parallelism) as pool:
        for value, (other, out) in zip(values[1:], pool.map(refit_at, values[1:])):
            folds_at[value] = other
            tried.extend(out)
    chosen_value, cand, factors = min(tried, key=lambda t: (_sort_key(t[1]), t[1].rank, values.index(t[0])))
    biases_alone = {value: _bias_only_rmse(fs, model, tuning) for value, fs in folds_at.items()}
    baseline = min(values, key=lambda v: (biases_alone[v] if not math.isnan(biases_alone[v]) else math.inf,
                                          values.index(v)))
    model_at = {v: c for v, c, _ in tried if (c.rank, c.reg_param) == params}
    curve = [{"bias_reg": v, best.metric: round(model_at[v].value, 6), "bias_only_rmse": round(biases_alone[v], 6)}
             for v in values] if len(values) > 1 else []
    return BiasShrinkage(cand, chosen_value, baseline, folds_at[chosen_value], factors, curve)


def unshrunk(grid: list[Candidate], folds: list[LocalFold],
             first_fold: dict[tuple[int, float], local_als.Factors], bias_reg: float) -> BiasShrinkage:
    """The grid's best as it is: implicit ALS has no biases to shrink (`bias_reg` is recorded nowhere)."""
    best = choose(grid)
    return BiasShrinkage(best, bias_reg, bias_reg, folds, first_fold[(best.rank, best.reg_param)], [])


def _bias_only_rmse(folds: list[LocalFold], model: ModelOptions, tuning: TuningOptions) -> float:
    """Validation RMSE of the biases alone, averaged over the folds: the bias baseline's figure,
    whatever --metric the candidates are chosen by."""
    return _evaluate_candidate(folds, BIAS_ONLY, model, dataclasses.replace(tuning, metric="rmse"))[0].value


def _fit_grid(folds: list[LocalFold], model: ModelOptions, tuning: TuningOptions
              ) -> tuple[list[Candidate], dict[tuple[int, float], local_als.Factors]]:
    """The candidates, `--parallelism` at a time, logged as each finishes; with their first-fold
    factors. Unless `--all-ranks` (the whole grid), two prunings:

    - Ranks go in increasing order, the bias-only model (explicit) with the smallest: each rank
      after the second only while the rank before it beat its own predecessor. A larger rank costs
      far more (on 1M generated R1 ratings a rank-50 candidate took 5.8 s, rank 10 0.87 s) and
      rarely wins once a smaller one stopped helping: there the best validation RMSE was 12.37 at
      rank 10, 13.07 at 20 and 13.75 at 50.
    - Within a rank, regParams are walked: the middle of the sorted grid (for later ranks, the
      regParam the rank before chose) and its two neighbours, then the neighbours of the best so
      far until it has both: the grid's best wherever validation is unimodal in regParam, with
      about half the fits of a wide grid (4 of 6 for every rank of 1M generated R1 ratings)."""
    grid = explicit_grid(tuning) if model.feedback.has_ratings else implicit_grid(tuning)
    ranks = sorted({rank for rank, _ in grid if rank})
    regs = sorted(set(tuning.reg_params))
    results: dict[tuple[int, float], Candidate] = {}
    first_fold: dict[tuple[int, float], local_als.Factors] = {}

    def best_at(rank: int) -> Candidate:
        return choose([cand for (r, _), cand in results.items() if r == rank])

    with ThreadPoolExecutor(max_workers=tuning.parallelism) as pool:
        def fit(todo: list[tuple[int, float]]) -> None:
            futures = {pool.submit(_evaluate_candidate, folds, params, model, tuning): params for params in todo}
            for future in as_completed(futures):
                params = futures[future]
                cand, first_fold[params] = future.result()
                results[params] = cand
                log.info("candidate %d/%d rank=%d reg=%g %s=%.4g in %.1f s", len(results), len(grid), cand.rank,
                         cand.reg_param, cand.metric, cand.value, cand.seconds)

        start = (len(regs) - 1) // 2
        for step, rank in enumerate(ranks):
            if step >= 2 and not tuning.all_ranks:
                before, last = ranks[step - 2], ranks[step - 1]
                if _sort_key(best_at(last)) >= _sort_key(best_at(before)):
                    log.info("ranks %s not tried: rank %d's best %s (%.4g) did not beat rank %d's (%.4g)"
                             " (--all-ranks tries every rank)", ",".join(map(str, ranks[step:])), last,
                             tuning.metric, best_at(last).value, before, best_at(before).value)
                    break
            todo = [BIAS_ONLY] if step == 0 and BIAS_ONLY in grid else []
            window = set(range(len(regs))) if tuning.all_ranks else {start - 1, start, start + 1}
            while todo := todo + [(rank, regs[i]) for i in sorted(window)
                                  if 0 <= i < len(regs) and (rank, regs[i]) not in results]:
                fit(todo)
                todo, best = [], regs.index(best_at(rank).reg_param)
                window = {best - 1, best + 1}
            start = regs.index(best_at(rank).reg_param)
    skipped = [params for params in grid if params not in results and params[0] in {r for r, _ in results}]
    if skipped:
        log.info("regParams not tried (walked past, --all-ranks fits them): %s",
                 ", ".join(f"rank={r} reg={g:g}" for r, g in skipped))
    return [results[params] for params in grid if params in results], first_fold


def explicit_grid(tuning: TuningOptions) -> list[tuple[int, float]]:
    """The bias-only model (rank 0: biases, no factors) first, then every rank x regParam: ALS is
    chosen only where it beats the biases on validation, so the run's model is never worse than
    its own baseline there."""
    return [BIAS_ONLY, *((r, g) for r in tuning.ranks for g in tuning.reg_params)]


def implicit_grid(tuning: TuningOptions) -> list[tuple[int, float]]:
    """Every rank x regParam: implicit ALS has no biases, so no bias-only model to compare with."""
    return [(r, g) for r in tuning.ranks for g in tuning.reg_params]


def tune_on_spark(spark: SparkSession, train: DataFrame, valid: DataFrame, blocked: DataFrame,
                  model: ModelOptions, tuning: TuningOptions) -> TuningResult:
    """Implicit feedback whose ratings are not on the driver (above local_model.eligible's bound):
    every candidate is a Spark ALS fit."""
    grid = implicit_grid(tuning)
    totals = {params: 0.0 for params in grid}
    splits = folds(train, valid, tuning.folds, model.seed)
    blocks = als_blocks(spark)
    first_models: dict[tuple[int, float], RecommenderModel] = {}
    for fold_index, (fold_train, fold_valid) in enumerate(splits):
        prepared = prepare(fold_train, model.feedback, model.bias_reg[0])  # implicit: no biases
        fold_valid = fold_valid.cache()

        def evaluate_one(params: tuple[int, float], prepared: Prepared = prepared,
                         fold_train: DataFrame = fold_train,
                         fold_valid: DataFrame = fold_valid) -> tuple[float, RecommenderModel]:
            fitted = fit(prepared, feedback=model.feedback, rank=params[0], reg_param=params[1],
                         max_iter=model.max_iter, alpha=model.alpha, seed=model.seed, blocks=blocks)
            return validation_score(spark, fitted, fold_train, fold_valid, blocked, model.feedback, tuning), fitted

        with ThreadPoolExecutor(max_workers=tuning.parallelism) as pool:
            for params, (value, fitted) in zip(grid, pool.map(evaluate_one, grid)):
                totals[params] += value
                if fold_index == 0:
                    first_models[params] = fitted
                else:
                    _release(fitted)
        prepared.data.unpersist()  # the fold's prepared copy (with its preference column), not the split
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
    weights = tuning.popularity_weights_on(feedback)
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
    return best_weight(curve), curve


def best_weight(curve: list[dict[str, float]]) -> float:
    """The weight with the best NDCG (NaNs last); ties go to the smaller weight."""
    best = min(curve, key=lambda p: (-p["ndcg_at_k"] if not math.isnan(p["ndcg_at_k"]) else math.inf,
                                     p["popularity_weight"]))
    return best["popularity_weight"]


def replace_weight(fitted: RecommenderModel, weight: float) -> RecommenderModel:
    return RecommenderModel(dataclasses.replace(fitted.params, popularity_weight=weight), fitted.users, fitted.items)


def choose(results: list[Candidate]) -> Candidate:
    """Best metric; ties (and NaNs last) go to the smaller rank, then the stronger regularisation."""
    return min(results, key=lambda cand: (_sort_key(cand), cand.rank, -cand.reg_param))


def _sort_key(cand: Candidate) -> float:
    """Smaller is better, NaN last, whatever the metric."""
    if math.isnan(cand.value):
        return math.inf
    return cand.value if cand.metric == "rmse" else -cand.value


# --- explicit feedback: tuning in NumPy on the driver -------------------------------------------
def sample_users(spark: SparkSession, ratings: DataFrame, bound: int, seed: int) -> DataFrame | None:
    """user_id of a random (seeded) set of users whose ratings together fit `bound`; None when
    every rating fits (or bound is 0). Whole users, so each keeps its full history."""
    if bound == 0 or ratings.count() <= bound:
        return None
    counts = local_model.collect_arrays(ratings.groupBy(c.USER_ID).count(), [c.USER_ID, "count"])
    counts = counts[np.argsort(counts[:, 0])][np.random.default_rng(seed).permutation(len(counts))]
    chosen = counts[np.cumsum(counts[:, 1]) <= bound, 0]
    if chosen.size == 0:  # the first user drawn alone holds more than the bound: tune on that one
        chosen = counts[:1, 0]
    return spark.createDataFrame([(int(u),) for u in chosen], f"{c.USER_ID} int")


@dataclass(frozen=True)
class TuningData:
    """Train + validation ratings (and 255 pairs) of the tuned users, by dense index."""

    ratings: local_als.Ratings  # values on the input's rating scale
    in_valid: np.ndarray  # bool per rating: from the validation split
    blocked_users: np.ndarray
    blocked_items: np.ndarray
    user_ids: np.ndarray  # the ids behind the indices
    item_ids: np.ndarray


def collect_tuning_data(spark: SparkSession, train: DataFrame, valid: DataFrame, blocked: DataFrame,
                        bound: int, seed: int) -> TuningData:
    """Train + validation of at most `bound` ratings' worth of users (whole users), indexed over
    the users with ratings there."""
    cols = [c.USER_ID, c.ARTIST_ID, c.RATING]
    users = sample_users(spark, train.select(*cols).unionByName(valid.select(*cols)), bound, seed)
    splits = [train, valid]  # positions TRAIN, VALID
    if users is not None:
        splits = [df.join(F.broadcast(users), c.USER_ID, "left_semi") for df in splits]
        blocked = blocked.join(F.broadcast(users), c.USER_ID, "left_semi")
    rows, pairs = local_model.collect_rows(splits, blocked)
    return tuning_data_of(local_model.indexed(rows, pairs, np.unique(rows[:, 0]).astype(np.int64)))


def tuning_data_of(local: local_model.LocalData) -> TuningData:
    """The train and validation ratings of data collected whole (test-only users and artists keep
    their indices: they have no ratings here, so no bias and no factors)."""
    mask = local.split_of != local_model.TEST
    return TuningData(local.ratings.subset(mask), local.split_of[mask] == local_model.VALID,
                      local.blocked_users, local.blocked_items, local.user_ids, local.item_ids)


@dataclass(frozen=True)
class LocalFold:
    """One fold's shared work, done once for every candidate."""

    prepared: local_als.Prepared
    layout: local_als.Layout
    item_counts: np.ndarray  # training ratings per item (the popularity prior's n_ratings)
    valid: local_als.Ratings  # on the rating scale
    task: local_eval.RankingTask


def local_folds(data: TuningData, model: ModelOptions, tuning: TuningOptions, bias_reg: float) -> list[LocalFold]:
    """The hold-out split, or `--folds` folds over train + validation (seeded), biases shrunk by `bias_reg`."""
    if tuning.folds == 0:
        masks = [data.in_valid]
    else:
        fold_of = np.random.default_rng(model.seed).integers(0, tuning.folds, data.ratings.values.size)
        masks = [fold_of == i for i in range(tuning.folds)]
    return [_local_fold(data, valid, model, tuning, bias_reg) for valid in masks]


def _local_fold(data: TuningData, in_valid: np.ndarray, model: ModelOptions, tuning: TuningOptions,
                bias_reg: float) -> LocalFold:
    """Implicit feedback: the preferences instead of the residuals, every validation play relevant.

    The ranking task (the popularity-weight curve, candidates chosen by NDCG) covers a seeded draw
    of at most `--tune-eval-users` validation users: each costs a score for every artist per
    weight or candidate, and the NDCG of 20,000 users tells close weights apart well enough. On 1M
    generated plays (45k validation users, 28k artists) ranking them was nearly all of each
    candidate's 42-56 s, and at 4M R1 ratings the curve took 107 of the 250 s of tuning."""
    feedback = model.feedback
    train, valid = data.ratings.subset(~in_valid), data.ratings.subset(in_valid)
    prepared = local_als.prepare_for(train, feedback, bias_reg)
    relevant = local_eval.relevant(valid.values, feedback, tuning.relevance_threshold)
    liked = local_model.of_some_users(valid.users, relevant, tuning.tune_eval_users, model.seed)
    task = local_eval.ranking_task(valid.users[liked], valid.items[liked],
                                   np.concatenate([train.users, data.blocked_users]),
                                   np.concatenate([train.items, data.blocked_items]), train.n_items)
    return LocalFold(prepared, local_als.Layout.of(prepared.residuals),
                     np.bincount(train.items, minlength=train.n_items), valid, task)


def _evaluate_candidate(folds: list[LocalFold], params: tuple[int, float], model: ModelOptions,
                        tuning: TuningOptions) -> tuple[Candidate, local_als.Factors]:
    """The candidate's mean validation metric over the folds, and its factors on the first fold."""
    start, values, first = time.perf_counter(), [], None
    for fold in folds:
        factors = local_als.fit_for(fold.layout, model.feedback, rank=params[0], reg_param=params[1],
                                    alpha=model.alpha, iterations=model.max_iter, seed=model.seed)
        first = factors if first is None else first
        if tuning.metric == "rmse":
            v = fold.valid
            errors = local_als.predict(fold.prepared, factors, v.users, v.items,
                                       model.feedback.rating_scale) - v.values
            values.append(float(np.sqrt(np.mean(errors ** 2))) if errors.size else math.nan)
        else:
            values.append(local_eval.ndcg_at_k(fold.task, fold.prepared, factors, fold.item_counts,
                                               tuning.k, [0.0])[0])
    assert first is not None
    cand = Candidate(params[0], params[1], tuning.metric, float(np.mean(values)), time.perf_counter() - start)
    return cand, first


def local_popularity_weight(fold: LocalFold, factors: local_als.Factors, feedback: Feedback,
                            tuning: TuningOptions) -> tuple[float, list[dict[str, float]]]:
    """tune_popularity_weight on the NumPy model: one scoring of the users with relevant
    validation items, ranked once per weight."""
    weights = tuning.popularity_weights_on(feedback)
    if len(weights) == 1:
        return weights[0], []
    ndcgs = local_eval.ndcg_at_k(fold.task, fold.prepared, factors, fold.item_counts, tuning.k, weights,
                                 workers=tuning.parallelism)
    curve = [{"popularity_weight": w, "ndcg_at_k": v} for w, v in zip(weights, ndcgs)]
    return best_weight(curve), curve


def blends_of(model: ModelOptions, tuning: TuningOptions) -> list[float]:
    """The positive --blend-weights, sorted; none (no companion model) for implicit feedback, which
    already ranks by which artists a user played."""
    return sorted({b for b in tuning.blend_weights if b > 0}) if model.feedback.has_ratings else []


def local_blend(fold: LocalFold, factors: local_als.Factors, weight: float, curve: list[dict[str, float]],
                model: ModelOptions, tuning: TuningOptions) -> tuple[float, float, list[dict[str, float]]]:
    """The implicit companion's weight in the ranking, and the popularity weight that goes with it,
    by validation NDCG@k on the first fold: the companion (model.fit_companion, `--blend-rank`,
    `--blend-reg`) is fitted on the fold's training pairs; then the positive `--blend-weights` are
    ranked at the chosen popularity `weight` in increasing order until one ranks worse than the one
    before (the curve rises to its best and falls: on 1M generated R1 ratings the first, 1, lost to
    the unblended ranking, and the four after it would have cost 1.6 s), and, if one beats the
    unblended ranking, the popularity weights again at the best blend (the companion's score
    carries popularity of its own, so the prior that suits it is smaller). The unblended ranking
    is a point of the curve, so a blend is taken only where it ranks better on validation. On
    generated 1..5 star data the job's test NDCG@10 went from 1.15x to 1.20x popularity's (100k
    ratings) and from 1.19x to 1.26x (300k); on R1 the blend won at 100k (1.82x to 1.83x), not at 1M.
    Returns (blend weight, popularity weight, the points ranked)."""
    blends = blends_of(model, tuning)
    if not blends:
        return 0.0, weight, []
    start = time.perf_counter()
    companion = local_als.fit_companion(fold.prepared.residuals, rank=model.blend_rank, reg_param=model.blend_reg,
                                        iterations=model.max_iter, seed=model.seed)
    fitted = time.perf_counter()

    def rank(blend_values: list[float], priors: list[float]) -> list[dict[str, float]]:
        grid = local_eval.ndcg_grid(fold.task, fold.prepared, factors, fold.item_counts, tuning.k, priors,
                                    workers=tuning.parallelism, companion=companion, blends=blend_values)
        return [{"blend_weight": b, "popularity_weight": w, "ndcg_at_k": value}
                for b, row in zip(blend_values, grid) for w, value in zip(priors, row)]

    unblended = [p for p in curve if p["popularity_weight"] == weight]
    points = ([{"blend_weight": 0.0, "popularity_weight": weight, "ndcg_at_k": unblended[0]["ndcg_at_k"]}]
              if unblended else rank([0.0], [weight]))
    for blend in blends:
        points += rank([blend], [weight])
        if points[-1]["ndcg_at_k"] < points[-2]["ndcg_at_k"] or math.isnan(points[-1]["ndcg_at_k"]):
            break
    skipped = blends[len(points) - 1:]
    if skipped:
        log.info("blend weights not tried: %s (blend %g ranked worse than %g)", ",".join(f"{b:g}" for b in skipped),
                 points[-1]["blend_weight"], points[-2]["blend_weight"])
    best = _best_point(points)
    others = [w for w in tuning.popularity_weights_on(model.feedback) if w != weight]
    if best["blend_weight"] > 0 and others:
        points += rank([best["blend_weight"]], others)
        best = _best_point(points)
    log.info("blend weight %g with popularity weight %g chosen from %d rankings (companion rank %d fitted in %.1f s,"
             " ranked in %.1f s): validation ndcg@%d %.4g, unblended %.4g", best["blend_weight"],
             best["popularity_weight"], len(points), model.blend_rank, fitted - start, time.perf_counter() - fitted,
             tuning.k, best["ndcg_at_k"], points[0]["ndcg_at_k"])
    return best["blend_weight"], best["popularity_weight"], points


def _best_point(points: list[dict[str, float]]) -> dict[str, float]:
    """The best NDCG (NaNs last); ties to the smaller blend, then the smaller popularity weight."""
    return min(points, key=lambda p: (-p["ndcg_at_k"] if not math.isnan(p["ndcg_at_k"]) else math.inf,
                                      p["blend_weight"], p["popularity_weight"]))
