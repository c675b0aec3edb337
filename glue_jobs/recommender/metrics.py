"""What a run measured, typed: the one object the quality gate, the report, the sinks, the CLI
summary and the tools read, serialised to `metrics.json` with the keys people already use.

Nothing here imports Spark: tools read old runs' `metrics.json` back with `RunMetrics.from_json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

RANKING_METRICS = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k")


@dataclass(frozen=True)
class Ranking:
    """The four ranking metrics at k, of the model or of a baseline (None: nobody to evaluate)."""

    precision_at_k: float | None = None
    recall_at_k: float | None = None
    ndcg_at_k: float | None = None
    map_at_k: float | None = None


@dataclass(frozen=True)
class Baselines:
    """What the model is measured against on the test split."""

    global_mean_rmse: float | None = None
    global_mean_mae: float | None = None
    bias_rmse: float | None = None
    bias_mae: float | None = None
    popularity: Ranking = field(default_factory=Ranking)
    bias_reg: float | None = None  # the bias baseline's shrinkage: the --bias-reg value best for biases alone

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "popularity"}
        out.update({f"popularity_{name}": value for name, value in asdict(self.popularity).items()})
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Baselines:
        return cls(**{k: d.get(k) for k in ("global_mean_rmse", "global_mean_mae", "bias_rmse", "bias_mae",
                                             "bias_reg")},
                   popularity=Ranking(**{name: d.get(f"popularity_{name}") for name in RANKING_METRICS}))


@dataclass(frozen=True)
class TestMetrics:
    """The refitted model on the test split, beside its baselines."""

    rmse: float | None
    mae: float | None
    ranking: Ranking
    baselines: Baselines
    evaluated_users: int


@dataclass(frozen=True)
class BestParams:
    rank: int
    reg_param: float
    popularity_weight: float
    bias_reg: float | None = None  # the biases' shrinkage; None in runs from before it was tuned (10)
    blend_weight: float = 0.0  # the implicit companion's weight in the ranking (0: none, and runs before it)


@dataclass(frozen=True)
class TuningOrigin:
    """Where a run's parameters come from: its own tuning, or the run that tuned them (`reused_from`,
    the run whose tuning a chain of reusing runs goes back to), and why the run chose so."""

    mode: str = "full"  # "full" | "reused"; metrics.json from before --tuning holds no key: they all tuned
    reused_from: str | None = None
    reason: str = ""
    tuned_ratings: int | None = None  # the learnable ratings of the run that tuned: drift is measured from it

    @property
    def reused(self) -> bool:
        return self.mode == "reused"

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TuningOrigin:
        d = d or {}
        return cls(d.get("mode", "full"), d.get("reused_from"), d.get("reason", ""), d.get("tuned_ratings"))


@dataclass(frozen=True)
class Counts:
    input_rows: int
    ratings: int
    users: int
    items: int
    never_play_again: int
    train: int
    validation: int
    test: int
    quarantined: int
    recommendations: int
    # Defaults: metrics.json from before similar artists holds neither (RunMetrics.from_dict).
    similar_artists: int = 0  # rows of similar_artists/
    similar_lists: int = 0  # artists that got a similar-artists list


@dataclass(frozen=True)
class Gate:
    """The quality gate's verdict: the model against its baseline, with the limit it had to beat."""

    passed: bool
    metric: str
    value: float | None
    baseline: str
    limit: float
    below: bool  # True: value must be below the limit (RMSE); False: above it (NDCG)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "metric": self.metric, "value": self.value, "baseline": self.baseline,
                ("must_be_below" if self.below else "must_be_above"): self.limit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Gate:
        below = "must_be_below" in d
        return cls(d["passed"], d["metric"], d["value"], d["baseline"],
                   d["must_be_below" if below else "must_be_above"], below)


# The rating histogram's buckets, for every run alike (so two runs' histograms compare): ten of
# width 10 over 0..100, the last holding 100 too. 255 (never play again) is not a rating.
RATING_BUCKET_WIDTH = 10
RATING_BUCKETS = tuple(f"{lo}-{lo + RATING_BUCKET_WIDTH - 1 if lo < 90 else 100}" for lo in range(0, 100, 10))


def rating_bucket(rating: int) -> int:
    """The index in RATING_BUCKETS of a rating in 0..100."""
    return min(rating // RATING_BUCKET_WIDTH, len(RATING_BUCKETS) - 1)


@dataclass(frozen=True)
class InputProfile:
    """What a run's validated input looked like: the figures the input guard compares between runs."""

    ratings: int  # learnable ratings
    users: int
    artists: int
    histogram: tuple[int, ...]  # learnable ratings per RATING_BUCKETS
    never_play_again_share: float  # of the valid rows
    quarantine_share: float  # of the input rows

    @property
    def shares(self) -> tuple[float, ...]:
        """The histogram as shares of the ratings (all 0 when there are none)."""
        total = sum(self.histogram)
        return tuple(n / total if total else 0.0 for n in self.histogram)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "histogram": dict(zip(RATING_BUCKETS, self.histogram, strict=True))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputProfile:
        hist = d["histogram"]
        return cls(d["ratings"], d["users"], d["artists"], tuple(int(hist.get(b, 0)) for b in RATING_BUCKETS),
                   d["never_play_again_share"], d["quarantine_share"])


def total_variation_distance(p: tuple[float, ...], q: tuple[float, ...]) -> float:
    """Half the sum of absolute differences of two distributions: 0 when equal, 1 when disjoint."""
    return 0.5 * sum(abs(a - b) for a, b in zip(p, q, strict=True))


@dataclass(frozen=True)
class InputComparison:
    """The input guard's verdict: this run's input against the published run's (metrics.json's "input_guard")."""

    verdict: str  # "passed" | "refused" (run anyway only when overridden) | "not compared"
    reason: str  # what was compared, or why nothing was
    previous_run_id: str | None = None
    previous_ratings: int | None = None
    ratings: int | None = None
    drop: float | None = None  # share of the previous run's learnable ratings lost (negative: growth)
    max_shrink: float | None = None
    histogram_tvd: float | None = None  # None: the previous run recorded no histogram
    max_histogram_shift: float | None = None
    overridden: bool = False  # refused, but --allow-shrink ran it anyway
    previous_profile: InputProfile | None = None  # for the report: this run beside the previous one

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "previous_profile"}
        out["previous_profile"] = self.previous_profile.as_dict() if self.previous_profile else None
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputComparison:
        plain: dict[str, Any] = {f.name: d.get(f.name) for f in fields(cls)
                                 if f.name not in ("previous_profile", "overridden")}
        profile = d.get("previous_profile")
        return cls(**plain, overridden=bool(d.get("overridden")),
                   previous_profile=InputProfile.from_dict(profile) if profile else None)


@dataclass(frozen=True)
class RunMetrics:
    run_id: str
    feedback: str
    k: int
    top_n: int
    spark: dict[str, Any]
    input_format: str
    quarantine: dict[str, int]
    best_params: BestParams
    grid: list[dict[str, Any]]
    popularity_weight_curve: list[dict[str, float]]
    selection_metric: str
    test: TestMetrics
    quality_gate: Gate
    catalog_coverage: float
    counts: Counts
    timings_s: dict[str, float] = field(default_factory=dict)
    dms_changes: dict[str, int] | None = None  # DMS input only: changes by operation
    published: dict[str, Any] | None = None  # what each sink took, once publishing is done
    tuning: TuningOrigin = field(default_factory=TuningOrigin)
    bias_reg_curve: list[dict[str, float]] = field(default_factory=list)  # --bias-reg value -> validation figures
    blend_curve: list[dict[str, float]] = field(default_factory=list)  # blend and popularity weight -> NDCG
    # Seconds measured inside a stage's tasks, summed over them ("recommend_scoring": the Spark top-N's
    # block scorer); written only when measured (the Spark path's top-N).
    task_s: dict[str, float] = field(default_factory=dict)
    feedback_reason: str | None = None  # --feedback auto: why the input was read as `feedback`
    # None in metrics.json from before the input guard (and in tests that build no input).
    input_profile: InputProfile | None = None
    input_guard: InputComparison | None = None

    # The figures people quote most, without the nesting.
    @property
    def rmse(self) -> float | None:
        return self.test.rmse

    @property
    def ndcg_at_k(self) -> float | None:
        return self.test.ranking.ndcg_at_k

    @property
    def baselines(self) -> Baselines:
        return self.test.baselines

    def with_(self, **changes: Any) -> RunMetrics:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The metrics.json layout: flat test metrics, baselines keyed popularity_<metric>."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                               if f.name not in ("test", "dms_changes", "published", "input_profile", "input_guard",
                                                 "feedback_reason", "task_s")}
        out.update(best_params=asdict(self.best_params), counts=asdict(self.counts), tuning=asdict(self.tuning),
                   quality_gate=self.quality_gate.as_dict(), rmse=self.test.rmse, mae=self.test.mae,
                   baselines=self.test.baselines.as_dict(), evaluated_users=self.test.evaluated_users,
                   **asdict(self.test.ranking))
        for optional in ("dms_changes", "published", "feedback_reason"):
            if getattr(self, optional) is not None:
                out[optional] = getattr(self, optional)
        if self.task_s:
            out["task_s"] = self.task_s
        for typed in ("input_profile", "input_guard"):
            if (value := getattr(self, typed)) is not None:
                out[typed] = value.as_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunMetrics:
        test = TestMetrics(d.get("rmse"), d.get("mae"), Ranking(**{n: d.get(n) for n in RANKING_METRICS}),
                           Baselines.from_dict(d["baselines"]), d["evaluated_users"])
        plain: dict[str, Any] = {f.name: d.get(f.name) for f in fields(cls)
                 if f.name not in ("test", "best_params", "counts", "quality_gate", "tuning", "input_profile",
                                   "input_guard")}
        return cls(**{**plain, "timings_s": d.get("timings_s") or {}, "bias_reg_curve": d.get("bias_reg_curve") or [],
                      "blend_curve": d.get("blend_curve") or [], "task_s": d.get("task_s") or {}},
                   test=test, best_params=BestParams(**d["best_params"]), counts=Counts(**d["counts"]),
                   quality_gate=Gate.from_dict(d["quality_gate"]), tuning=TuningOrigin.from_dict(d.get("tuning")),
                   input_profile=InputProfile.from_dict(d["input_profile"]) if d.get("input_profile") else None,
                   input_guard=InputComparison.from_dict(d["input_guard"]) if d.get("input_guard") else None)

    @classmethod
    def from_json(cls, text: str) -> RunMetrics:
        return cls.from_dict(json.loads(text))
