"""Typed, frozen settings per environment, built once from CDK context at the app's edge.

Every knob that differs between accounts is one field with its context key, safe default and
check: here if the app itself uses it, else in the options of the stack that does (JobOptions,
ServingOptions, AnalyticsOptions). Stacks receive their options and never read context themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from aws_cdk import aws_logs as logs

from glue_jobs.recommender.config import ConfigError, job_arguments
from stacks.analytics import AnalyticsOptions
from stacks.ingestion import DmsSource
from stacks.options import context_key, option
from stacks.recommender_job import JobOptions
from stacks.serving import ServingOptions


class SettingsError(ValueError):
    """A context value the app cannot deploy with."""


RETENTION = {7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
             90: logs.RetentionDays.THREE_MONTHS, 180: logs.RetentionDays.SIX_MONTHS,
             365: logs.RetentionDays.ONE_YEAR, 731: logs.RetentionDays.TWO_YEARS}


def _groups(declared: Any) -> list[Any]:
    """The option groups among a dataclass's fields: dataclasses read field by field, not by one key."""
    return [getattr(declared, f.name) for f in fields(declared)
            if context_key(f) is None and is_dataclass(getattr(declared, f.name))]


@dataclass(frozen=True)
class Settings:
    """Fields with a context key are read from it; the option groups (`job`, `serving`,
    `analytics`) are read field by field the same way and go whole to the stacks that use them."""

    env_name: str
    prefix: str = option("prefix")
    retain_data: bool = option("retainData")  # buckets, table, database kept on stack deletion
    deletion_protection: bool = option("deletionProtection")
    log_retention_days: int = option("logRetentionDays", 90)
    vpc_id: str | None = option("vpcId", None)  # import an existing VPC instead of creating one...
    vpc_azs: tuple[str, ...] = option("vpcAzs", ())  # ...with its AZs and isolated subnet ids (no lookup call)
    vpc_subnet_ids: tuple[str, ...] = option("vpcSubnetIds", ())
    alarm_email: str | None = option("alarmEmail", None)
    dms: DmsSource | None = option("dms", None)  # noqa: RUF009 (None; a DmsSource is frozen)
    job: JobOptions = field(default_factory=JobOptions)
    serving: ServingOptions = field(default_factory=ServingOptions)
    analytics: AnalyticsOptions = field(default_factory=AnalyticsOptions)

    def __post_init__(self) -> None:
        problems = []
        if self.vpc_id and (not self.vpc_azs or len(self.vpc_subnet_ids) != len(self.vpc_azs)):
            problems.append("vpcId needs vpcAzs and one vpcSubnetIds entry per AZ (no lookup is made)")
        if self.log_retention_days not in RETENTION:
            problems.append(f"logRetentionDays must be one of {', '.join(map(str, RETENTION))}")
        for group in _groups(self):
            problems += group.problems()
        if problems:
            raise SettingsError("; ".join(problems))

    @property
    def log_retention(self) -> logs.RetentionDays:
        return RETENTION[self.log_retention_days]


DEFAULTS = {
    "dev": Settings(env_name="dev", prefix="recsys-dev", retain_data=False, deletion_protection=False),
    "prod": Settings(env_name="prod", prefix="recsys-prod", retain_data=True, deletion_protection=True,
                     log_retention_days=365, job=JobOptions(worker_type="G.2X", workers=10, timeout_minutes=360),
                     serving=ServingOptions(reserved_concurrency=200), analytics=AnalyticsOptions(max_acu=16.0)),
}


def _coerce(value: Any, like: Any) -> Any:
    """A context value (strings from `-c`, JSON from cdk.json or the settings file) as the type of `like`."""
    if isinstance(like, bool) and isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    if isinstance(like, int) and not isinstance(like, bool) and isinstance(value, str):
        return int(value)
    if isinstance(like, float) and isinstance(value, str):
        return float(value)
    if isinstance(like, tuple):
        return tuple(value.split(",")) if isinstance(value, str) else tuple(value)
    return value


def _dms_source(value: Any, like: DmsSource | None) -> DmsSource | None:
    if not value:
        return like
    dms = json.loads(value) if isinstance(value, str) else dict(value)
    try:
        return DmsSource(engine=dms["engine"], host=dms["host"], port=int(dms["port"]), database=dms["database"],
                         tables=tuple(dms["tables"]), secret_arn=dms["secretArn"],
                         create_service_roles=bool(dms.get("createServiceRoles", False)))
    except KeyError as exc:
        raise SettingsError(f"dms context lacks {exc.args[0]!r} (engine, host, port, database, "
                            "tables, secretArn)") from exc


def _job_arguments(value: Any, like: dict[str, str]) -> dict[str, str]:
    """Checked against the job's own option declarations now, rather than failing the first run."""
    if not value:
        return dict(like)
    try:
        return job_arguments(json.loads(value) if isinstance(value, str) else dict(value))
    except ConfigError as exc:
        raise SettingsError(f"jobArguments: {exc}") from exc


# Context values that are more than a scalar or a list, by context key.
_PARSERS: dict[str, Callable[[Any, Any], Any]] = {"dms": _dms_source, "jobArguments": _job_arguments}


def _read(declared: Any, get: Callable[[str], Any]) -> dict[str, Any]:
    """The fields of `declared` that the context sets (option groups read recursively), as changes."""
    changes: dict[str, Any] = {}
    for f in fields(declared):
        current, key = getattr(declared, f.name), context_key(f)
        if key is None:
            if is_dataclass(current):
                changes[f.name] = replace(current, **_read(current, get))  # type: ignore[type-var]
            continue
        value = get(key)
        if value is not None:
            changes[f.name] = _PARSERS.get(key, _coerce)(value, current)
    return changes


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
    return replace(base, **_read(base, get))
