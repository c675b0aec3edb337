"""The job's options: one frozen settings object, parsed at the edge from argv or Glue's arguments."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields


class ConfigError(ValueError):
    """An option value the job cannot run with."""


@dataclass(frozen=True)
class JobConfig:
    inputs: tuple[str, ...]
    output: str | None = None
    artists: str | None = None
    top_n: int = 5
    ranks: tuple[int, ...] = (10, 20, 50)
    reg_params: tuple[float, ...] = (0.05, 0.1, 0.2)
    max_iter: int = 10
    feedback: str = "explicit"
    score_pairs: str | None = None
    seed: int = 42
    input_format: str = "auto"
    folds: int = 0
    metric: str = "rmse"
    k: int = 10
    relevance_threshold: float = 70.0
    bias_reg: float = 10.0
    alpha: float = 10.0
    validation_share: float = 0.1
    test_share: float = 0.1
    max_quarantine_share: float = 0.05
    min_rmse_gain: float = 0.0
    min_ndcg_gain: float = 0.0
    parallelism: int = 2
    popular_n: int = 100
    popularity_weights: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
    checkpoint_dir: str | None = None
    shuffle_partitions: int = 0  # 0: twice the cores (see shuffle_partitions_for)
    driver_memory: str = "4g"
    master: str = "local[2]"
    runs_root: str | None = None
    dynamodb_table: str | None = None
    dynamodb_endpoint: str | None = None
    dynamodb_region: str | None = None
    dynamodb_ttl_days: int = 30
    dynamodb_max_writes_per_s: float = 0.0
    aurora_url: str | None = None
    aurora_secret_arn: str | None = None
    aurora_batch_size: int = 5000

    def __post_init__(self) -> None:
        problems = []
        if bool(self.output) == bool(self.runs_root):
            problems.append("give exactly one of --output DIR (plain outputs) or --runs-root ROOT "
                            "(versioned runs/<run_id>/ plus latest.json)")
        if self.aurora_url and self.aurora_secret_arn:
            problems.append("give --aurora-url (local) or --aurora-secret-arn (AWS), not both")
        if self.dynamodb_ttl_days < 1 or self.aurora_batch_size < 1 or self.dynamodb_max_writes_per_s < 0:
            problems.append("--dynamodb-ttl-days and --aurora-batch-size must be positive, "
                            "--dynamodb-max-writes-per-s not negative")
        if not self.inputs:
            problems.append("--input names no path")
        if self.top_n < 1:
            problems.append(f"--top-n must be at least 1, got {self.top_n}")
        if not self.ranks or min(self.ranks) < 1:
            problems.append(f"--ranks must be positive integers, got {list(self.ranks)}")
        if not self.reg_params or min(self.reg_params) < 0:
            problems.append(f"--reg-params must be non-negative, got {list(self.reg_params)}")
        if self.max_iter < 1:
            problems.append(f"--max-iter must be at least 1, got {self.max_iter}")
        if self.feedback not in ("explicit", "implicit"):
            problems.append(f"--feedback must be explicit or implicit, got {self.feedback!r}")
        if self.input_format not in ("auto", "r1", "dms"):
            problems.append(f"--input-format must be auto, r1 or dms, got {self.input_format!r}")
        if self.folds == 1 or self.folds < 0:
            problems.append(f"--folds must be 0 (hold-out validation) or at least 2, got {self.folds}")
        if self.metric not in ("rmse", "ndcg"):
            problems.append(f"--metric must be rmse or ndcg, got {self.metric!r}")
        if self.feedback == "implicit" and self.metric == "rmse":
            problems.append("--feedback implicit has no rating scale to compute RMSE on: use --metric ndcg")
        if self.k < 1:
            problems.append(f"--k must be at least 1, got {self.k}")
        if not 0 < self.validation_share < 0.5 or not 0 < self.test_share < 0.5:
            problems.append("--validation-share and --test-share must lie between 0 and 0.5")
        if not 0 <= self.max_quarantine_share <= 1:
            problems.append(f"--max-quarantine-share must lie in 0..1, got {self.max_quarantine_share}")
        if not self.popularity_weights or min(self.popularity_weights) < 0:
            problems.append(f"--popularity-weights must be non-negative, got {list(self.popularity_weights)}")
        if self.shuffle_partitions < 0:
            problems.append(f"--shuffle-partitions must be 0 (auto) or more, got {self.shuffle_partitions}")
        if self.parallelism < 1:
            problems.append(f"--parallelism must be at least 1, got {self.parallelism}")
        if problems:
            raise ConfigError("; ".join(problems))

    def output_for(self, run_id: str) -> str:
        from glue_jobs.contracts import run_path

        return self.output or run_path(self.runs_root or "", run_id)

    def publish_settings(self):  # -> publish.PublishSettings (imported lazily: boto3, SQLAlchemy)
        from glue_jobs.recommender.publish import PublishSettings
        from glue_jobs.recommender.publish.aurora import AuroraSettings
        from glue_jobs.recommender.publish.dynamo import DynamoSettings

        return PublishSettings(
            runs_root=self.runs_root,
            dynamo=DynamoSettings(self.dynamodb_table, self.dynamodb_endpoint, self.dynamodb_region,
                                  self.dynamodb_ttl_days, self.dynamodb_max_writes_per_s)
            if self.dynamodb_table else None,
            aurora=AuroraSettings(self.aurora_url, self.aurora_secret_arn, self.dynamodb_region,
                                  self.aurora_batch_size)
            if (self.aurora_url or self.aurora_secret_arn) else None,
        )

    @property
    def rating_scale(self) -> tuple[float, float]:
        """Scores are clipped to the input's scale: 0..100 ratings, or 0..1 preferences."""
        return (0.0, 100.0) if self.feedback == "explicit" else (0.0, 1.0)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m glue_jobs.recommender",
        description="Train bias-aware ALS on user-artist ratings and publish top-N recommendations.",
    )
    p.add_argument("--input", required=True,
                   help="ratings: file(s), directory or glob, comma-separated; .gz allowed")
    p.add_argument("--output", help="output directory (local path or s3://)")
    p.add_argument("--runs-root", help="publish as ROOT/runs/<run_id>/ and point ROOT/latest.json at it")
    p.add_argument("--artists", help="artist names file: artist_id<TAB>name, Windows-1252")
    p.add_argument("--top-n", type=int, default=5, help="recommendations per user (default 5)")
    p.add_argument("--ranks", type=_int_list, default=(10, 20, 50), help="ALS ranks to try")
    p.add_argument("--reg-params", type=_float_list, default=(0.05, 0.1, 0.2),
                   help="ALS regParam values to try")
    p.add_argument("--max-iter", type=int, default=10, help="ALS iterations (default 10)")
    p.add_argument("--feedback", default="explicit", help="explicit (ratings) or implicit (plays)")
    p.add_argument("--score-pairs", help="tab-separated user_id, artist_id pairs to score")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--input-format", default="auto",
                   help="r1 (tab-separated), dms (AWS DMS CSV with Op column) or auto")
    p.add_argument("--folds", type=int, default=0,
                   help="k-fold cross-validation over train+validation (0: one hold-out split)")
    p.add_argument("--metric", default=None,
                   help="model selection metric: rmse (explicit default) or ndcg (implicit default)")
    p.add_argument("--k", type=int, default=10, help="cut-off for the ranking metrics")
    p.add_argument("--relevance-threshold", type=float, default=70.0,
                   help="a test rating at or above this counts as relevant (explicit)")
    p.add_argument("--bias-reg", type=float, default=10.0,
                   help="shrinkage of user and artist biases, in pseudo-ratings")
    p.add_argument("--alpha", type=float, default=10.0, help="implicit ALS confidence scale")
    p.add_argument("--validation-share", type=float, default=0.1)
    p.add_argument("--test-share", type=float, default=0.1)
    p.add_argument("--max-quarantine-share", type=float, default=0.05,
                   help="fail the run if more of the input is quarantined (default 0.05)")
    p.add_argument("--min-rmse-gain", type=float, default=0.0,
                   help="quality gate: required relative RMSE gain over the bias baseline")
    p.add_argument("--min-ndcg-gain", type=float, default=0.0,
                   help="quality gate (implicit): required relative NDCG gain over popularity")
    p.add_argument("--parallelism", type=int, default=2, help="candidate models fitted at once")
    p.add_argument("--popular-n", type=int, default=100, help="length of the popularity list")
    p.add_argument("--popularity-weights", type=_float_list, default=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
                   help="ranking bonus per log(1+ratings of the artist), as shares of the rating "
                        "scale, tried on validation NDCG (0 alone: rank by predicted score)")
    p.add_argument("--checkpoint-dir", help="Spark checkpoint directory (default: a temp dir)")
    p.add_argument("--shuffle-partitions", type=int, default=0,
                   help="partitions of every shuffle, and ALS's user/item blocks (0, the default: "
                        "twice the cores Spark has, e.g. 4 on local[2], 144 on 9 G.2X executors)")
    p.add_argument("--driver-memory", default="4g", help="local runs only")
    p.add_argument("--master", default="local[2]", help="local runs only")
    p.add_argument("--dynamodb-table", help="publish to this DynamoDB table")
    p.add_argument("--dynamodb-endpoint", help="DynamoDB endpoint URL (local stand-ins only)")
    p.add_argument("--dynamodb-region", help="AWS region of the table (default: the environment's)")
    p.add_argument("--dynamodb-ttl-days", type=int, default=30, help="items of a run expire after this")
    p.add_argument("--dynamodb-max-writes-per-s", type=float, default=0.0,
                   help="cap on item writes per second across the job (0: no cap)")
    p.add_argument("--aurora-url", help="SQLAlchemy URL, e.g. mysql+pymysql://user@host/db or sqlite:///f.db")
    p.add_argument("--aurora-secret-arn", help="Secrets Manager secret with the Aurora credentials")
    p.add_argument("--aurora-batch-size", type=int, default=5000)
    return p


def config_from_namespace(ns: argparse.Namespace) -> JobConfig:
    """Option dests are named like the config's fields; only a few need shaping."""
    values = {f.name: getattr(ns, f.name) for f in fields(JobConfig) if hasattr(ns, f.name)}
    values.update(
        inputs=tuple(p.strip() for p in ns.input.split(",") if p.strip()),
        output=ns.output.rstrip("/") if ns.output else None,
        runs_root=ns.runs_root.rstrip("/") if ns.runs_root else None,
        metric=ns.metric or ("rmse" if ns.feedback == "explicit" else "ndcg"),
        ranks=tuple(ns.ranks), reg_params=tuple(ns.reg_params), popularity_weights=tuple(ns.popularity_weights),
    )
    return JobConfig(**values)


def parse_args(argv: Sequence[str]) -> JobConfig:
    """Parses a command line; unknown options (Glue adds its own) are ignored."""
    parser = build_parser()
    ns, _unknown = parser.parse_known_args(list(argv))
    return config_from_namespace(ns)


def option_names() -> list[str]:
    """The job's option names without dashes, as Glue job parameters spell them."""
    names = []
    for action in build_parser()._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                names.append(opt[2:])
    return names


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
