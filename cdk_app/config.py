"""Typed, frozen settings per environment, built once from CDK context at the app's edge.

Every knob that differs between accounts lives here with a safe default; stacks receive the
values they need as keyword arguments and never read context themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A context value the app cannot deploy with."""


# Lambda's default concurrency quota per account and Region, and the part of it that must stay
# unreserved (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
LAMBDA_DEFAULT_CONCURRENCY = 1000
LAMBDA_UNRESERVED_MINIMUM = 100
# A Glue EVENT trigger's batch: 1..100 events, 1..900 s
# (https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-jobs-trigger.html#aws-glue-api-jobs-trigger-EventBatchingCondition).
GLUE_MAX_BATCH_SIZE = 100
GLUE_MAX_BATCH_WINDOW_S = 900


@dataclass(frozen=True)
class DmsSource:
    """An existing operational database that DMS replicates ratings from (opt-in)."""

    engine: str  # mysql | postgres | aurora | aurora-postgresql | ...
    host: str
    port: int
    database: str
    tables: tuple[str, ...]
    secret_arn: str  # Secrets Manager secret with username/password for DMS
    create_service_roles: bool = False  # dms-vpc-role etc. are account-wide: create once


@dataclass(frozen=True)
class Settings:
    env_name: str
    prefix: str
    retain_data: bool  # buckets, table, database kept on stack deletion
    deletion_protection: bool
    glue_worker_type: str = "G.1X"
    glue_workers: int = 2
    glue_timeout_minutes: int = 120
    trigger_batch_size: int = 10  # raw objects that start a run...
    trigger_batch_window_s: int = 900  # ...or this long after the first one
    schedule: str | None = None  # e.g. "cron(0 3 * * ? *)" to retrain nightly anyway
    job_arguments: dict[str, str] = field(default_factory=dict)  # extra recommender options
    log_retention_days: int = 90
    vpc_id: str | None = None  # import an existing VPC instead of creating one...
    vpc_azs: tuple[str, ...] = ()  # ...with its AZs and isolated subnet ids (no lookup call)
    vpc_subnet_ids: tuple[str, ...] = ()
    aurora_min_acu: float = 0.5
    aurora_max_acu: float = 4.0
    api_auth: str = "iam"  # iam | jwt
    # Cap on the API function's concurrent executions (protects the table and the bill); 0 = no cap.
    # Lambda keeps 100 of the account's concurrency unreserved, so the cap must fit under quota - 100.
    api_reserved_concurrency: int = 0
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    alarm_email: str | None = None
    dms: DmsSource | None = None
    quicksight_principal_arn: str | None = None
    emr: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.glue_worker_type not in ("G.1X", "G.2X", "G.4X", "G.8X"):
            problems.append(f"glueWorkerType must be G.1X, G.2X, G.4X or G.8X, got {self.glue_worker_type!r}")
        if self.glue_workers < 2:
            problems.append("glueWorkers must be at least 2 (Glue's minimum for Spark jobs)")
        if self.api_auth not in ("iam", "jwt"):
            problems.append(f"apiAuth must be iam or jwt, got {self.api_auth!r}")
        if self.api_auth == "jwt" and not (self.jwt_issuer and self.jwt_audience):
            problems.append("apiAuth jwt needs jwtIssuer and jwtAudience")
        if self.vpc_id and (not self.vpc_azs or len(self.vpc_subnet_ids) != len(self.vpc_azs)):
            problems.append("vpcId needs vpcAzs and one vpcSubnetIds entry per AZ (no lookup is made)")
        if not 1 <= self.trigger_batch_size <= GLUE_MAX_BATCH_SIZE:
            problems.append(f"triggerBatchSize must be 1 to {GLUE_MAX_BATCH_SIZE}, got {self.trigger_batch_size}")
        if not 1 <= self.trigger_batch_window_s <= GLUE_MAX_BATCH_WINDOW_S:
            problems.append(f"triggerBatchWindowSeconds must be 1 to {GLUE_MAX_BATCH_WINDOW_S}, "
                            f"got {self.trigger_batch_window_s}")
        if self.log_retention_days not in (7, 14, 30, 90, 180, 365, 731):
            problems.append("logRetentionDays must be one of 7, 14, 30, 90, 180, 365, 731")
        most = LAMBDA_DEFAULT_CONCURRENCY - LAMBDA_UNRESERVED_MINIMUM
        if not 0 <= self.api_reserved_concurrency <= most:
            problems.append(f"apiReservedConcurrency must be 0 (no cap) to {most}, got {self.api_reserved_concurrency}")
        if not 0.5 <= self.aurora_min_acu <= self.aurora_max_acu:
            problems.append("auroraMinAcu must be at least 0.5 and not above auroraMaxAcu")
        if problems:
            raise SettingsError("; ".join(problems))


DEFAULTS = {
    "dev": Settings(env_name="dev", prefix="recsys-dev", retain_data=False, deletion_protection=False),
    "prod": Settings(env_name="prod", prefix="recsys-prod", retain_data=True, deletion_protection=True,
                     glue_worker_type="G.2X", glue_workers=10, glue_timeout_minutes=360, log_retention_days=365,
                     aurora_max_acu=16.0, api_reserved_concurrency=200),
}

_KEYS = {  # context key -> field
    "prefix": "prefix", "retainData": "retain_data", "deletionProtection": "deletion_protection",
    "glueWorkerType": "glue_worker_type", "glueWorkers": "glue_workers",
    "glueTimeoutMinutes": "glue_timeout_minutes",
    "triggerBatchSize": "trigger_batch_size", "triggerBatchWindowSeconds": "trigger_batch_window_s",
    "schedule": "schedule", "logRetentionDays": "log_retention_days", "vpcId": "vpc_id",
    "auroraMinAcu": "aurora_min_acu", "auroraMaxAcu": "aurora_max_acu", "apiAuth": "api_auth",
    "jwtIssuer": "jwt_issuer", "alarmEmail": "alarm_email", "apiReservedConcurrency": "api_reserved_concurrency",
    "quicksightPrincipalArn": "quicksight_principal_arn", "emr": "emr",
}
_TUPLES = {"vpcAzs": "vpc_azs", "vpcSubnetIds": "vpc_subnet_ids", "jwtAudience": "jwt_audience"}


def _coerce(value: Any, like: Any) -> Any:
    if isinstance(like, bool) and isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    if isinstance(like, int) and not isinstance(like, bool) and isinstance(value, str):
        return int(value)
    if isinstance(like, float) and isinstance(value, str):
        return float(value)
    return value


def _falling_back_to(get: Any, values: dict[str, Any]) -> Any:
    def lookup(key: str) -> Any:
        value = get(key)
        return values.get(key) if value is None else value
    return lookup


def settings_from_context(get: Any) -> Settings:
    """`get(key)` returns a context value or None (App.node.try_get_context). With
    `-c settingsFile=PATH`, a JSON object of context keys fills in what `-c` and cdk.json leave unset."""
    path = get("settingsFile")
    if path:
        try:
            from_file = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise SettingsError(f"settingsFile {path} is not a readable JSON object: {exc}") from exc
        if not isinstance(from_file, dict):
            raise SettingsError(f"settingsFile {path} must hold a JSON object of context keys")
        get = _falling_back_to(get, from_file)
    env_name = get("env") or "dev"
    if env_name not in DEFAULTS:
        raise SettingsError(f"-c env must be one of {', '.join(DEFAULTS)}, got {env_name!r}")
    base = DEFAULTS[env_name]
    changes: dict[str, Any] = {}
    for key, attr in _KEYS.items():
        value = get(key)
        if value is not None:
            changes[attr] = _coerce(value, getattr(base, attr))
    for key, attr in _TUPLES.items():
        value = get(key)
        if value is not None:
            changes[attr] = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
    dms = get("dms")
    if dms:
        dms = json.loads(dms) if isinstance(dms, str) else dict(dms)
        try:
            changes["dms"] = DmsSource(engine=dms["engine"], host=dms["host"], port=int(dms["port"]),
                                       database=dms["database"], tables=tuple(dms["tables"]),
                                       secret_arn=dms["secretArn"],
                                       create_service_roles=bool(dms.get("createServiceRoles", False)))
        except KeyError as exc:
            raise SettingsError(f"dms context lacks {exc.args[0]!r} (engine, host, port, database, "
                                "tables, secretArn)") from exc
    job_args = get("jobArguments")
    if job_args:
        changes["job_arguments"] = dict(json.loads(job_args) if isinstance(job_args, str) else job_args)
    return replace(base, **changes)
