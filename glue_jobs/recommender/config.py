"""The job's options: one declaration each, from which the command line, Glue's option list and
the stacks' job arguments are generated, and the grouped frozen settings built from them at the edge."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, NoReturn


class ConfigError(ValueError):
    """An option value the job cannot run with."""


class Feedback(StrEnum):
    """What the input's numbers are: explicit ratings (0..100) or implicit preferences (plays)."""

    EXPLICIT = "explicit"
    IMPLICIT = "implicit"
    AUTO = "auto"  # decided from the input once it is read (stages.detect_feedback), then one of the two

    @property
    def has_ratings(self) -> bool:
        """Only ratings have an error to measure (RMSE) and biases to fit (the bias baseline)."""
        if self is Feedback.AUTO:
            raise RuntimeError("--feedback auto is decided from the input: resolve it (JobConfig.with_feedback) first")
        return self is Feedback.EXPLICIT

    @property
    def rating_scale(self) -> tuple[float, float]:
        """Scores are clipped to the input's scale: 0..100 ratings, or 0..1 preferences."""
        return (0.0, 100.0) if self.has_ratings else (0.0, 1.0)

    @property
    def default_metric(self) -> str:
        """rmse for ratings, ndcg for preferences; `auto` until --feedback auto is decided."""
        return "auto" if self is Feedback.AUTO else "rmse" if self.has_ratings else "ndcg"


class TuningMode(StrEnum):
    """Whether a run tunes, or reuses the parameters of the run published under --runs-root."""

    AUTO = "auto"  # reuse while the data changed little and the tuning is recent, else tune
    FULL = "full"
    REUSE = "reuse"  # always reuse: an error when there is nothing to reuse


def _one_of(*choices: str) -> str:
    return ", ".join(choices[:-1]) + " or " + choices[-1]


def _reader(convert: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """A parser from the option's text that says what it expected when the text is not that."""
    def read(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise ValueError(f"must be {what}, got {text!r}") from None
    return read


_integer = _reader(int, "an integer")
_number = _reader(float, "a number")
_integers = _reader(lambda text: tuple(int(v) for v in text.split(",") if v.strip()), "comma-separated integers")
_numbers = _reader(lambda text: tuple(float(v) for v in text.split(",") if v.strip()), "comma-separated numbers")
_feedback = _reader(Feedback, _one_of(*Feedback))
_tuning_mode = _reader(TuningMode, _one_of(*TuningMode))
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _boolean(text: str) -> bool:
    """true/false as Glue job arguments spell them (any case; yes/no, 1/0 too)."""
    word = text.strip().lower()
    if word not in (*_TRUE, *_FALSE):
        raise ValueError(f"must be true or false, got {text!r}")
    return word in _TRUE


def _text(text: str) -> str:
    return text


def _paths(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _directory(text: str) -> str:
    return text.rstrip("/")


@dataclass(frozen=True)
class Option:
    """One job option: its flag, where its value lives, how text becomes the value, what is valid."""

    flag: str  # without dashes, as Glue job parameters spell it
    group: str  # the JobConfig field that holds it
    field: str
    parse: Callable[[str], Any]  # raises ValueError saying what is wrong (without the flag)
    default: Any = None
    help: str = ""
    valid: Callable[[Any], bool] | None = None
    problem: str = ""  # the message when not valid; {flag} and {v} are filled in
    local_only: bool = False  # on AWS the cluster sizes itself: refused as a job argument
    required: bool = False

    @property
    def switch(self) -> bool:
        """A boolean: `--flag` alone means true on a command line; Glue job arguments, which always
        carry a value, say `--flag true` (or false)."""
        return self.parse is _boolean

    def read(self, text: str) -> Any:
        """The value of an option's text; a ValueError names the option."""
        try:
            return self.parse(text)
        except ValueError as exc:
            raise ValueError(f"--{self.flag} {exc}") from None

    def check(self, value: Any) -> str | None:
        """The problem with a value, or None."""
        if self.valid is None or self.valid(value):
            return None
        return self.problem.format(flag=f"--{self.flag}", v=list(value) if isinstance(value, tuple) else value)


_AT_LEAST_1: dict[str, Any] = dict(valid=lambda v: v >= 1, problem="{flag} must be at least 1, got {v}")
_SHARES = "--validation-share and --test-share must lie between 0 and 0.5"
_SINK_LIMITS = ("--dynamodb-ttl-days and --aurora-batch-size must be positive, "
                "--dynamodb-max-writes-per-s not negative")
_FORMATS = ("auto", "r1", "dms")
_METRICS = ("rmse", "ndcg", "auto")  # auto: the feedback's (JobConfig.with_feedback)
_DEFAULT_FEEDBACK = Feedback.EXPLICIT

OPTIONS: tuple[Option, ...] = (
    Option("input", "input", "inputs", _paths, None,
           "ratings: file(s), directory or glob, comma-separated; .gz allowed",
           valid=bool, problem="{flag} names no path", required=True),
    Option("input-format", "input", "input_format", _text, "auto",
           "r1 (tab-separated), dms (AWS DMS CSV with Op column) or auto",
           valid=lambda v: v in _FORMATS, problem=f"{{flag}} must be {_one_of(*_FORMATS)}, got {{v!r}}"),
    Option("artists", "input", "artists", _text, None, "artist names file: artist_id<TAB>name, Windows-1252"),
    Option("score-pairs", "input", "score_pairs", _text, None, "tab-separated user_id, artist_id pairs to score"),
    Option("feedback", "model", "feedback", _feedback, _DEFAULT_FEEDBACK,
           "explicit (ratings), implicit (plays) or auto (implicit when nearly every user's ratings span "
           "exactly 0..100, the mark of play counts scaled per user; else explicit)",
           valid=lambda v: isinstance(v, Feedback),
           problem=f"{{flag}} must be {_one_of(*Feedback)}, got {{v!r}}"),
    Option("max-iter", "model", "max_iter", _integer, 20, "ALS iterations", **_AT_LEAST_1),
    Option("alpha", "model", "alpha", _number, 10.0, "implicit ALS confidence scale"),
    Option("blend-rank", "model", "blend_rank", _integer, 5,
           "rank of the implicit companion model (which artists each user rated, not how) whose score "
           "the ranking may blend in (--blend-weights)", **_AT_LEAST_1),
    Option("blend-reg", "model", "blend_reg", _number, 0.1, "regParam of the implicit companion model",
           valid=lambda v: v >= 0, problem="{flag} must be non-negative, got {v}"),
    Option("bias-reg", "model", "bias_reg", _numbers, (10.0, 30.0, 100.0),
           "shrinkage of user and artist biases, in pseudo-ratings; with several values (explicit "
           "feedback), the grid runs at the first, then the best rank and regParam at each other, and "
           "the bias baseline takes the value that suits biases alone",
           valid=lambda v: bool(v) and min(v) >= 0, problem="{flag} must be non-negative, got {v}"),
    Option("seed", "model", "seed", _integer, 42, "seed of the splits, the folds and ALS"),
    Option("top-n", "model", "top_n", _integer, 5, "recommendations per user", **_AT_LEAST_1),
    Option("popular-n", "model", "popular_n", _integer, 100, "length of the popularity list"),
    Option("similar-n", "model", "similar_n", _integer, 10, "similar artists listed per artist",
           valid=lambda v: 1 <= v <= 500,
           problem="{flag} must lie in 1..500 (one DynamoDB item holds a list), got {v}"),
    Option("min-artist-ratings", "model", "min_artist_ratings", _integer, 5,
           "artists with fewer ratings in the final fit neither get a similar-artists list nor appear in "
           "one (their factors say little)", **_AT_LEAST_1),
    Option("ranks", "tuning", "ranks", _integers, (10, 20, 50), "ALS ranks to try",
           valid=lambda v: bool(v) and min(v) >= 1, problem="{flag} must be positive integers, got {v}"),
    Option("all-ranks", "tuning", "all_ranks", _boolean, False,
           "tuning on the driver: fit every rank of --ranks and every --reg-params value; by default a rank "
           "is tried only while the rank before it beat its own predecessor on validation (the two smallest "
           "always), and each rank's regParams are walked from the middle (or the previous rank's choice) "
           "towards the better neighbour until both neighbours of the best were fitted"),
    Option("reg-params", "tuning", "reg_params", _numbers, (0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
           "ALS regParam values to try (tuning on the driver walks them per rank: see --all-ranks)",
           valid=lambda v: bool(v) and min(v) >= 0, problem="{flag} must be non-negative, got {v}"),
    Option("folds", "tuning", "folds", _integer, 0,
           "k-fold cross-validation over train+validation (0: one hold-out split)",
           valid=lambda v: v == 0 or v >= 2, problem="{flag} must be 0 (hold-out validation) or at least 2, got {v}"),
    # One default: the default feedback's metric; from_fields and parse_args follow the feedback given.
    Option("metric", "tuning", "metric", _text, _DEFAULT_FEEDBACK.default_metric,
           "model selection metric (default, or auto: the feedback's, rmse for explicit, ndcg for implicit)",
           valid=lambda v: v in _METRICS, problem=f"{{flag}} must be {_one_of(*_METRICS)}, got {{v!r}}"),
    Option("k", "tuning", "k", _integer, 10, "cut-off for the ranking metrics", **_AT_LEAST_1),
    Option("relevance-threshold", "tuning", "relevance_threshold", _number, 70.0,
           "a test rating at or above this counts as relevant (explicit)"),
    Option("validation-share", "tuning", "validation_share", _number, 0.1, "share of the ratings to tune on",
           valid=lambda v: 0 < v < 0.5, problem=_SHARES),
    Option("test-share", "tuning", "test_share", _number, 0.1, "share of the ratings to evaluate on",
           valid=lambda v: 0 < v < 0.5, problem=_SHARES),
    Option("parallelism", "tuning", "parallelism", _integer, 2, "candidate models fitted at once", **_AT_LEAST_1),
    Option("tune-sample-ratings", "tuning", "sample_ratings", _integer, 3_000_000,
           "tune on the ratings of a random sample of users holding at most this many (0: all); "
           "parameters found on a few million ratings carry over. Input with at most this many ratings "
           "(3M when 0), explicit or implicit, is also refitted, evaluated and ranked in NumPy on the driver",
           valid=lambda v: v >= 0, problem="{flag} must be 0 (no bound) or more, got {v}"),
    Option("eval-users", "tuning", "eval_users", _integer, 100_000,
           "ranking metrics on the test split over about this many users, drawn by a seeded hash "
           "(on the driver: a seeded draw of exactly this many; 0: all); RMSE and MAE always use every "
           "test rating",
           valid=lambda v: v >= 0, problem="{flag} must be 0 (no bound) or more, got {v}"),
    Option("tune-eval-users", "tuning", "tune_eval_users", _integer, 20_000,
           "tuning on the driver: validation NDCG (the popularity-weight curve, and the candidates with "
           "--metric ndcg) over a seeded draw of at most this many validation users (0: all); RMSE "
           "always uses every validation rating",
           valid=lambda v: v >= 0, problem="{flag} must be 0 (no bound) or more, got {v}"),
    Option("popularity-weights", "tuning", "popularity_weights", _numbers, (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
           "ranking bonus per log(1+ratings of the artist), as shares of the rating scale, tried on "
           "validation NDCG (0 alone: rank by predicted score)",
           valid=lambda v: bool(v) and min(v) >= 0, problem="{flag} must be non-negative, got {v}"),
    Option("blend-weights", "tuning", "blend_weights", _numbers, (0.0, 1.0, 2.0, 4.0, 8.0, 16.0),
           "explicit feedback: weights of the implicit companion model's score in the ranking, in units "
           "of the residuals' spread, tried on validation NDCG after the popularity weight (0 alone: no "
           "companion model is fitted); the predicted rating never includes it",
           valid=lambda v: bool(v) and min(v) >= 0, problem="{flag} must be non-negative, got {v}"),
    Option("tuning", "tuning", "tuning_mode", _tuning_mode, TuningMode.AUTO,
           "full (tune), reuse (the best parameters of the run published under --runs-root) or auto "
           "(reuse while the ratings changed less than --retune-change since that run and its tuning "
           "is younger than --retune-days, else tune)", valid=lambda v: isinstance(v, TuningMode),
           problem=f"{{flag}} must be {_one_of(*TuningMode)}, got {{v!r}}"),
    Option("retune-change", "tuning", "retune_change", _number, 0.25,
           "--tuning auto tunes when the learnable ratings changed by this share or more",
           valid=lambda v: v >= 0, problem="{flag} must not be negative, got {v}"),
    Option("retune-days", "tuning", "retune_days", _number, 7.0,
           "--tuning auto tunes when the reused parameters were tuned this many days ago or more",
           valid=lambda v: v > 0, problem="{flag} must be positive, got {v}"),
    Option("max-quarantine-share", "gates", "max_quarantine_share", _number, 0.05,
           "fail the run if more of the input is quarantined",
           valid=lambda v: 0 <= v <= 1, problem="{flag} must lie in 0..1, got {v}"),
    Option("min-rmse-gain", "gates", "min_rmse_gain", _number, -0.01,
           "quality gate: required relative test RMSE gain over the bias baseline; negative, how much "
           "worse it may be (test noise: the bias-only model is a candidate, so the chosen model is "
           "never worse on validation)"),
    Option("min-ndcg-gain", "gates", "min_ndcg_gain", _number, 0.0,
           "quality gate (implicit): required relative NDCG gain over popularity"),
    Option("max-shrink", "gates", "max_shrink", _number, 0.5,
           "input guard: fail the run if its learnable ratings are fewer than (1 - this) times the "
           "published run's (under --runs-root)",
           valid=lambda v: 0 <= v <= 1, problem="{flag} must lie in 0..1, got {v}"),
    Option("max-histogram-shift", "gates", "max_histogram_shift", _number, 0.2,
           "input guard: fail the run if its rating histogram is further than this from the published "
           "run's (total variation distance, 0..1)",
           valid=lambda v: 0 <= v <= 1, problem="{flag} must lie in 0..1, got {v}"),
    Option("allow-shrink", "gates", "allow_shrink", _boolean, False,
           "run even when the input guard refuses the input (a planned reset); on the command line "
           "alone, as a Glue job argument `--allow-shrink true`"),
    Option("master", "spark", "master", _text, "local[2]", "Spark master, local runs only", local_only=True),
    Option("driver-memory", "spark", "driver_memory", _text, "4g", "local runs only", local_only=True),
    Option("shuffle-partitions", "spark", "shuffle_partitions", _integer, 0,
           "partitions of every shuffle, and ALS's user/item blocks (0, the default: twice the cores "
           "Spark has, e.g. 4 on local[2], 144 on 9 G.2X executors)",
           valid=lambda v: v >= 0, problem="{flag} must be 0 (auto) or more, got {v}"),
    Option("checkpoint-dir", "spark", "checkpoint_dir", _text, None,
           "Spark checkpoint directory (default: a temp dir)"),
    Option("output", "sinks", "output", _directory, None, "output directory (local path or s3://)"),
    Option("runs-root", "sinks", "runs_root", _directory, None,
           "publish as ROOT/runs/<run_id>/ and point ROOT/latest.json at it"),
    Option("dynamodb-table", "sinks", "dynamodb_table", _text, None, "publish to this DynamoDB table"),
    Option("dynamodb-endpoint", "sinks", "dynamodb_endpoint", _text, None,
           "DynamoDB endpoint URL (local stand-ins only)"),
    Option("dynamodb-region", "sinks", "dynamodb_region", _text, None,
           "AWS region of the table (default: the environment's)"),
    Option("dynamodb-ttl-days", "sinks", "dynamodb_ttl_days", _integer, 30, "items of a run expire after this",
           valid=lambda v: v >= 1, problem=_SINK_LIMITS),
    Option("dynamodb-max-writes-per-s", "sinks", "dynamodb_max_writes_per_s", _number, 0.0,
           "cap on item writes per second across the job (0: no cap)", valid=lambda v: v >= 0, problem=_SINK_LIMITS),
    Option("aurora-url", "sinks", "aurora_url", _text, None,
           "SQLAlchemy URL, e.g. mysql+pymysql://user@host/db or sqlite:///f.db"),
    Option("aurora-secret-arn", "sinks", "aurora_secret_arn", _text, None,
           "Secrets Manager secret with the Aurora credentials"),
    Option("aurora-batch-size", "sinks", "aurora_batch_size", _integer, 5000, "rows per insert into Aurora",
           valid=lambda v: v >= 1, problem=_SINK_LIMITS),
)
_BY_FLAG = {o.flag: o for o in OPTIONS}
_BY_FIELD = {o.field: o for o in OPTIONS}
_DEFAULTS: dict[str, Any] = {o.field: o.default for o in OPTIONS}  # the groups' defaults
_GROUP_HELP = {
    "input": "what to read",
    "model": "the model and its recommendations",
    "tuning": "model selection on held-out data",
    "gates": "quality gates: a run that fails one publishes nothing",
    "spark": "Spark session (on AWS the cluster sizes itself)",
    "sinks": "where results go: --output DIR or --runs-root ROOT, plus DynamoDB and Aurora",
}


def _raise(problems: Iterable[str]) -> None:
    unique = list(dict.fromkeys(problems))  # options that share a message report it once
    if unique:
        raise ConfigError("; ".join(unique))


class _Checked:
    """A group of options checks each of its values against its declaration."""

    def __post_init__(self) -> None:
        _raise(p for f in fields(self) if (p := _BY_FIELD[f.name].check(getattr(self, f.name))))  # type: ignore[arg-type]


@dataclass(frozen=True)
class InputOptions(_Checked):
    inputs: tuple[str, ...]
    input_format: str = _DEFAULTS["input_format"]
    artists: str | None = _DEFAULTS["artists"]
    score_pairs: str | None = _DEFAULTS["score_pairs"]


@dataclass(frozen=True)
class ModelOptions(_Checked):
    feedback: Feedback = _DEFAULTS["feedback"]
    max_iter: int = _DEFAULTS["max_iter"]
    alpha: float = _DEFAULTS["alpha"]
    blend_rank: int = _DEFAULTS["blend_rank"]
    blend_reg: float = _DEFAULTS["blend_reg"]
    bias_reg: tuple[float, ...] = _DEFAULTS["bias_reg"]  # tuned in this order (tuning.tune)
    seed: int = _DEFAULTS["seed"]
    top_n: int = _DEFAULTS["top_n"]
    popular_n: int = _DEFAULTS["popular_n"]
    similar_n: int = _DEFAULTS["similar_n"]
    min_artist_ratings: int = _DEFAULTS["min_artist_ratings"]


BIAS_ONLY = (0, 0.0)  # rank, regParam of the model without factors: a candidate in every explicit grid


@dataclass(frozen=True)
class TuningOptions(_Checked):
    ranks: tuple[int, ...] = _DEFAULTS["ranks"]
    all_ranks: bool = _DEFAULTS["all_ranks"]
    reg_params: tuple[float, ...] = _DEFAULTS["reg_params"]
    folds: int = _DEFAULTS["folds"]
    metric: str = _DEFAULTS["metric"]
    k: int = _DEFAULTS["k"]
    relevance_threshold: float = _DEFAULTS["relevance_threshold"]
    validation_share: float = _DEFAULTS["validation_share"]
    test_share: float = _DEFAULTS["test_share"]
    parallelism: int = _DEFAULTS["parallelism"]
    sample_ratings: int = _DEFAULTS["sample_ratings"]
    eval_users: int = _DEFAULTS["eval_users"]
    tune_eval_users: int = _DEFAULTS["tune_eval_users"]
    popularity_weights: tuple[float, ...] = _DEFAULTS["popularity_weights"]
    blend_weights: tuple[float, ...] = _DEFAULTS["blend_weights"]
    tuning_mode: TuningMode = _DEFAULTS["tuning_mode"]
    retune_change: float = _DEFAULTS["retune_change"]
    retune_days: float = _DEFAULTS["retune_days"]

    def popularity_weights_on(self, feedback: Feedback) -> list[float]:
        """The weights to try, as points on the rating scale (`--popularity-weights` are shares of it)."""
        span = feedback.rating_scale[1] - feedback.rating_scale[0]
        return sorted({w * span for w in self.popularity_weights})


@dataclass(frozen=True)
class GateOptions(_Checked):
    max_quarantine_share: float = _DEFAULTS["max_quarantine_share"]
    min_rmse_gain: float = _DEFAULTS["min_rmse_gain"]
    min_ndcg_gain: float = _DEFAULTS["min_ndcg_gain"]
    max_shrink: float = _DEFAULTS["max_shrink"]
    max_histogram_shift: float = _DEFAULTS["max_histogram_shift"]
    allow_shrink: bool = _DEFAULTS["allow_shrink"]


@dataclass(frozen=True)
class SparkOptions(_Checked):
    master: str = _DEFAULTS["master"]
    driver_memory: str = _DEFAULTS["driver_memory"]
    shuffle_partitions: int = _DEFAULTS["shuffle_partitions"]  # 0: twice the cores (see shuffle_partitions_for)
    checkpoint_dir: str | None = _DEFAULTS["checkpoint_dir"]


@dataclass(frozen=True)
class SinkOptions(_Checked):
    output: str | None = _DEFAULTS["output"]
    runs_root: str | None = _DEFAULTS["runs_root"]
    dynamodb_table: str | None = _DEFAULTS["dynamodb_table"]
    dynamodb_endpoint: str | None = _DEFAULTS["dynamodb_endpoint"]
    dynamodb_region: str | None = _DEFAULTS["dynamodb_region"]
    dynamodb_ttl_days: int = _DEFAULTS["dynamodb_ttl_days"]
    dynamodb_max_writes_per_s: float = _DEFAULTS["dynamodb_max_writes_per_s"]
    aurora_url: str | None = _DEFAULTS["aurora_url"]
    aurora_secret_arn: str | None = _DEFAULTS["aurora_secret_arn"]
    aurora_batch_size: int = _DEFAULTS["aurora_batch_size"]


def _joint_problems(value: Callable[[str], Any]) -> list[str]:
    """Checks across options; `value` gives an option's value by field name."""
    problems = []
    if bool(value("output")) == bool(value("runs_root")):
        problems.append("give exactly one of --output DIR (plain outputs) or --runs-root ROOT "
                        "(versioned runs/<run_id>/ plus latest.json)")
    if value("aurora_url") and value("aurora_secret_arn"):
        problems.append("give --aurora-url (local) or --aurora-secret-arn (AWS), not both")
    if value("feedback") == Feedback.IMPLICIT and value("metric") == "rmse":
        problems.append("--feedback implicit has no rating scale to compute RMSE on: use --metric ndcg")
    return problems


@dataclass(frozen=True)
class JobConfig:
    input: InputOptions
    model: ModelOptions = field(default_factory=ModelOptions)
    tuning: TuningOptions = field(default_factory=TuningOptions)
    gates: GateOptions = field(default_factory=GateOptions)
    spark: SparkOptions = field(default_factory=SparkOptions)
    sinks: SinkOptions = field(default_factory=SinkOptions)

    def __post_init__(self) -> None:
        _raise(_joint_problems(lambda name: getattr(getattr(self, _BY_FIELD[name].group), name)))

    @classmethod
    def from_fields(cls, **values: Any) -> JobConfig:
        """A config from option values by field name (`top_n=3`; text is read like the command
        line's); absent ones take their defaults, --metric the feedback's. Every problem is
        reported at once."""
        return _build(values)

    def with_feedback(self, feedback: Feedback) -> JobConfig:
        """This config for input of this feedback (--feedback auto, once decided): --metric auto
        becomes the feedback's. ConfigError when an option given does not suit it."""
        metric = feedback.default_metric if self.tuning.metric == "auto" else self.tuning.metric
        return dataclasses.replace(self, model=dataclasses.replace(self.model, feedback=feedback),
                                   tuning=dataclasses.replace(self.tuning, metric=metric))

    def output_for(self, run_id: str) -> str:
        from glue_jobs.contracts import run_path

        return self.sinks.output or run_path(self.sinks.runs_root or "", run_id)


_GROUPS: dict[str, type[_Checked]] = {
    "input": InputOptions, "model": ModelOptions, "tuning": TuningOptions,
    "gates": GateOptions, "spark": SparkOptions, "sinks": SinkOptions,
}


def _build(given: Mapping[str, Any]) -> JobConfig:
    unknown = sorted(set(given) - set(_BY_FIELD))
    if unknown:
        raise TypeError(f"no option has the field(s) {', '.join(unknown)}")
    values = dict(_DEFAULTS)
    problems = []
    for name, value in given.items():
        try:
            values[name] = _BY_FIELD[name].read(value) if isinstance(value, str) else value
        except ValueError as exc:
            problems.append(str(exc))
    if "metric" not in given and isinstance(values["feedback"], Feedback):
        values["metric"] = values["feedback"].default_metric
    problems += [p for o in OPTIONS if (p := o.check(values[o.field]))]
    _raise([*problems, *_joint_problems(values.__getitem__)])
    return JobConfig(**{group: cls(**{f.name: values[f.name] for f in fields(cls)})  # type: ignore[arg-type]
                        for group, cls in _GROUPS.items()})


def _closest(name: str) -> str:
    """' (did you mean --x?)' for the declared flag nearest to `name`, or ''."""
    near = difflib.get_close_matches("--" + name.lstrip("-").replace("_", "-"), [f"--{o.flag}" for o in OPTIONS], n=1)
    return f" (did you mean {near[0]}?)" if near else ""


def _help(option: Option) -> str:
    shown = ",".join(map(str, option.default)) if isinstance(option.default, tuple) else option.default
    # A help text that explains its own default keeps it; the rest show the declared one.
    if option.default is None or "default" in option.help:
        return option.help
    return f"{option.help} (default: {shown})"


class _StrictParser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of exiting, so every bad option is reported alike."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """The job's command line, grouped like JobConfig; values stay text until parse_args reads them."""
    parser = _StrictParser(
        prog="python -m glue_jobs.recommender", allow_abbrev=False,
        description="Train bias-aware ALS on user-artist ratings and publish top-N recommendations.")
    groups = {name: parser.add_argument_group(name, text) for name, text in _GROUP_HELP.items()}
    for o in OPTIONS:
        groups[o.group].add_argument(f"--{o.flag}", dest=o.field, metavar=o.flag.upper().replace("-", "_"),
                                     required=o.required, help=_help(o), **_switch(o))
    return parser


def _switch(option: Option) -> dict[str, Any]:
    """argparse settings that let a boolean option stand alone (`--allow-shrink`, read as "true") or
    take a value."""
    return {"nargs": "?", "const": "true"} if option.switch else {}


def parse_args(argv: Sequence[str]) -> JobConfig:
    """Parses a command line strictly: an unknown option is an error naming it (Glue's own
    options never get here, see glue_argv)."""
    ns, extra = build_parser().parse_known_args(list(argv))
    if extra:
        unknown = [a.split("=", 1)[0] for a in extra if a.startswith("-")]
        raise ConfigError("; ".join(f"unknown option {name}{_closest(name)}" for name in unknown)
                          if unknown else f"unexpected argument {extra[0]!r}")
    return _build({o.field: text for o in OPTIONS if (text := getattr(ns, o.field)) is not None})


def option_names() -> list[str]:
    """The job's option names without dashes, as Glue job parameters spell them."""
    return [o.flag for o in OPTIONS]


def add_options(parser: argparse.ArgumentParser, names: Iterable[str], *, required: Iterable[str] = ()) -> None:
    """Adds the declared options with these flag names (e.g. "runs-root") to another command line,
    typed and with their defaults, under the config's field names (see sink_options)."""
    must = set(required)
    for name in names:
        option = _BY_FLAG.get(name)
        if option is None:
            raise ConfigError(f"no option --{name}{_closest(name)}")

        def typed(text: str, option: Option = option) -> Any:
            try:
                return option.parse(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        parser.add_argument(f"--{name}", dest=option.field, metavar=name.upper().replace("-", "_"), type=typed,
                            default=option.default, required=name in must, help=_help(option),
                            **_switch(option))


def sink_options(ns: argparse.Namespace) -> SinkOptions:
    """SinkOptions from a namespace holding some of the sink options (see add_options); the rest default."""
    return SinkOptions(**{f.name: getattr(ns, f.name) for f in fields(SinkOptions) if hasattr(ns, f.name)})


def _problem_of(option: Option, text: str) -> str | None:
    try:
        return option.check(option.read(text))
    except ValueError as exc:
        return str(exc)


def job_arguments(values: Mapping[str, object]) -> dict[str, str]:
    """The stacks' extra job options as Glue wants them ({"--top-n": "3"}), checked at synth time.

    Keys may be flags with or without dashes or field names ("--top-n", "top-n", "top_n"); each
    value is read and checked like the command line's. Unresolved CDK tokens pass unchecked.
    """
    out: dict[str, str] = {}
    problems: list[str] = []
    for key, value in values.items():
        name = key.removeprefix("--")
        option = _BY_FLAG.get(name) or _BY_FIELD.get(name)
        text = (",".join(map(str, value)) if isinstance(value, list | tuple)
                else str(value).lower() if isinstance(value, bool) else str(value))
        if option is None:
            problems.append(f"unknown job argument {key!r}{_closest(name)}")
        elif option.local_only:
            problems.append(f"--{option.flag} applies to local runs only; on AWS the worker type "
                            "and count size the job")
        elif f"--{option.flag}" in out:
            problems.append(f"job argument {key!r} repeats --{option.flag}")
        else:
            out[f"--{option.flag}"] = text
            problem = None if "${Token[" in text else _problem_of(option, text)  # tokens resolve at deploy
            if problem:
                problems.append(problem)
    _raise(problems)
    return out


def glue_argv(argv: Sequence[str], resolve: Callable[[list[str], list[str]], dict[str, str]]) -> list[str]:
    """Turns Glue's argv into our command line through awsglue's getResolvedOptions.

    getResolvedOptions fails on options that are absent, so only the present ones are asked
    for; it may return keys with '-' turned into '_', so both spellings are accepted.
    """
    present = [name for name in option_names() if f"--{name}" in argv]
    resolved = resolve(list(argv), present)
    out: list[str] = []
    for name in present:
        value = resolved.get(name, resolved.get(name.replace("-", "_")))
        if value is not None:
            out += [f"--{name}", str(value)]
    return out


def shuffle_partitions_for(requested: int, master: str, default_parallelism: int | None = None) -> int:
    """The shuffle partition count a run uses: the one asked for, or twice the task slots (the
    cores of a local master, else what the cluster reports), so every core has work and a
    straggler's share stays small. ALS uses the same number of blocks."""
    if requested:
        return requested
    cores = local_cores(master) or default_parallelism or 2
    return max(2, 2 * cores)


def local_cores(master: str) -> int | None:
    """Cores of a local master (`local`, `local[N]`, `local[*]`, `local[N,retries]`); None for a cluster."""
    local = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", master.strip())
    if not local:
        return None
    slots = local.group(1)
    return 1 if slots is None else (os.cpu_count() or 1) if slots == "*" else int(slots)
