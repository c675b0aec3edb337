"""Whether a run tunes or reuses the tuning of the run published under --runs-root (`--tuning`).

Read from that run's metrics.json, without Spark: the published run is looked up right after the
preflight, so `--tuning reuse` with nothing to reuse fails before any data is read, and the
choice itself (which needs the run's rating count) is a plain function, tested alone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from glue_jobs import contracts as c
from glue_jobs.recommender import storage
from glue_jobs.recommender.config import BIAS_ONLY, Feedback, ModelOptions, TuningMode, TuningOptions
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.metrics import BestParams, RunMetrics, TuningOrigin

log = logging.getLogger("recommender")
SECONDS_PER_DAY = 86_400.0
LEGACY_BIAS_REG = 10.0  # the biases' fixed shrinkage before --bias-reg was tuned: runs then record none


@dataclass(frozen=True)
class Previous:
    """The published run whose tuning a run may reuse, or why there is none to reuse."""

    metrics: RunMetrics | None
    missing: str = ""

    @property
    def tuned_by(self) -> str:
        """The run that tuned the parameters: the published run, or the one it reused them from."""
        assert self.metrics is not None
        origin = self.metrics.tuning
        return origin.reused_from if origin.reused and origin.reused_from else self.metrics.run_id


@dataclass(frozen=True)
class Decision:
    origin: TuningOrigin  # what metrics.json records
    params: BestParams | None  # the parameters to reuse; None: tune


def published_run(runs_root: str | None, options: TuningOptions, feedback: Feedback,
                  published: Previous | None = None) -> Previous:
    """The run published under `runs_root` (latest.json), when this run may reuse its tuning;
    `published`: that run as read_published already read it (the job reads it once, for the
    input guard too).

    JobFailed when `--tuning reuse` finds nothing to reuse: it is the one mode that cannot fall back.
    """
    if options.tuning_mode is TuningMode.FULL:
        return Previous(None, "--tuning full")
    previous = of_feedback(published or read_published(runs_root), feedback)
    if previous.metrics is None and options.tuning_mode is TuningMode.REUSE:
        raise JobFailed(f"--tuning reuse has no tuning to reuse: {previous.missing}. Publish a run under "
                        "--runs-root first (or give the --runs-root it was published under), or run with "
                        "--tuning full. Nothing was trained or published.")
    return previous


def of_feedback(previous: Previous, feedback: Feedback) -> Previous:
    """The published run when it learned from this feedback (its tuning means nothing for the other)."""
    metrics = previous.metrics
    if metrics is not None and metrics.feedback != feedback.value:
        return Previous(None, f"the published run {metrics.run_id} learned from {metrics.feedback} feedback, "
                              f"this run from {feedback.value}")
    return previous


def read_published(runs_root: str | None) -> Previous:
    """The run latest.json names under `runs_root`, whatever it learned from, or why there is none.
    The input guard compares any published run's input (a feed that changed shape enough to flip
    --feedback auto is just what it is for); reusing a tuning needs the same feedback (of_feedback)."""
    if not runs_root:
        return Previous(None, "no --runs-root, so no published run (--output writes a single run)")
    try:
        latest = json.loads(storage.read_text(storage.join(runs_root, c.LATEST_FILE)))
    except FileNotFoundError:
        return Previous(None, f"no run is published under {runs_root} yet")
    run_id = str(latest.get("run_id"))
    try:
        metrics = RunMetrics.from_json(storage.read_text(storage.join(c.run_path(runs_root, run_id), c.METRICS_FILE)))
    except FileNotFoundError:
        return Previous(None, f"the published run {run_id} has no {c.METRICS_FILE}")
    except (ValueError, KeyError, TypeError) as exc:
        return Previous(None, f"the published run {run_id}'s {c.METRICS_FILE} is unreadable ({exc!r})")
    return Previous(metrics)


def decide(previous: Previous, ratings: int, options: TuningOptions, now: datetime | None = None,
           feedback: Feedback = Feedback.EXPLICIT, bias_regs: tuple[float, ...] = ModelOptions().bias_reg) -> Decision:
    """Tune, or reuse the published run's best parameters: `--tuning reuse` always reuses, `auto`
    while the learnable ratings changed by less than --retune-change since the run that tuned them
    (not just since the published run: a chain of small changes adds up) and that run is younger
    than --retune-days. Parameters this run's settings could not have chosen (another --metric or
    --k, a rank, regParam or popularity weight outside this run's grid) are never reused. Logged
    with its reason."""
    if options.tuning_mode is TuningMode.FULL or previous.metrics is None:
        return _tune(previous.missing, ratings)
    published = previous.metrics
    unfit = _outside_this_grid(published, options, feedback, bias_regs)
    if unfit and options.tuning_mode is TuningMode.REUSE:
        raise JobFailed(f"--tuning reuse cannot reuse {previous.tuned_by}'s tuning: {unfit}. Run with "
                        "--tuning full (or the settings it was tuned with). Nothing was trained or published.")
    if unfit:
        return _tune(f"{previous.tuned_by}'s tuning does not fit this run: {unfit}", ratings)
    base = published.tuning.tuned_ratings or published.counts.ratings
    change = (ratings - base) / max(base, 1)
    tuned_at = c.run_id_time(previous.tuned_by)
    age = ((now or datetime.now(UTC)) - tuned_at).total_seconds() / SECONDS_PER_DAY if tuned_at else None
    if options.tuning_mode is TuningMode.AUTO:
        if abs(change) >= options.retune_change:
            return _tune(f"ratings changed {change:+.1%} since {previous.tuned_by} tuned "
                         f"(--retune-change {options.retune_change:g})", ratings)
        if age is None:
            return _tune(f"cannot tell when {previous.tuned_by} tuned: not a run id", ratings)
        if age >= options.retune_days:
            return _tune(f"{previous.tuned_by} tuned {age:.1f} days ago (--retune-days {options.retune_days:g})",
                         ratings)
    reason = f"ratings {change:+.1%} since {previous.tuned_by} tuned them" + (
        f" {age:.1f} days ago" if age is not None else "")
    best = published.best_params
    log.info("reusing rank=%s reg=%s weight=%g blend=%g from %s (%s)", best.rank, best.reg_param,
             best.popularity_weight, best.blend_weight, previous.tuned_by, reason)
    return Decision(TuningOrigin("reused", previous.tuned_by, reason, base), best)


def _outside_this_grid(published: RunMetrics, options: TuningOptions, feedback: Feedback,
                       bias_regs: tuple[float, ...]) -> str:
    """Why this run's settings could not have chosen the published parameters ("" when they could)."""
    best = published.best_params
    weights = {round(w, 6) for w in options.popularity_weights_on(feedback)}
    bias_only = feedback.has_ratings and (best.rank, best.reg_param) == BIAS_ONLY  # in every explicit grid
    bias_reg = bias_reg_of(best)
    return "; ".join(problem for problem, wrong in (
        (f"chosen by {published.selection_metric}, this run selects by {options.metric}",
         published.selection_metric != options.metric),
        (f"ranked at k={published.k}, this run at k={options.k}", published.k != options.k),
        (f"rank {best.rank} is not in --ranks", not bias_only and best.rank not in options.ranks),
        (f"regParam {best.reg_param:g} is not in --reg-params",
         not bias_only and best.reg_param not in options.reg_params),
        (f"popularity weight {best.popularity_weight:g} is not in --popularity-weights",
         round(best.popularity_weight, 6) not in weights),
        (f"bias reg {bias_reg:g} is not in --bias-reg", feedback.has_ratings and bias_reg not in bias_regs),
        (f"blend weight {best.blend_weight:g} is not in --blend-weights",
         best.blend_weight > 0 and best.blend_weight not in options.blend_weights),
    ) if wrong)


def blend_weight_of(best: BestParams) -> float:
    """The companion's weight in the ranking the parameters were chosen with (0: none)."""
    return best.blend_weight


def bias_reg_of(best: BestParams) -> float:
    """The biases' shrinkage the parameters were chosen with (runs from before it was tuned: 10)."""
    return LEGACY_BIAS_REG if best.bias_reg is None else best.bias_reg


def _tune(reason: str, ratings: int | None = None) -> Decision:
    log.info("tuning: %s", reason)
    return Decision(TuningOrigin("full", None, reason, ratings), None)
