"""CloudFormation custom resource: runs the Aurora schema migrations at deploy time.

The same versioned, idempotent migrations the job runs before each load
(glue_jobs.recommender.publish.aurora.migrate), so running them again on every update is safe.
Deleting the resource leaves the database alone (its data outlives the stack's updates).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lambdas import custom_resource

log = logging.getLogger()
log.setLevel(logging.INFO)


def run_migrations(secret_arn: str) -> list[int]:
    from glue_jobs.recommender.publish.aurora import AuroraSettings, migrate

    engine = AuroraSettings(secret_arn=secret_arn).engine()
    try:
        return migrate(engine)
    finally:
        engine.dispose()


def respond(event: dict[str, Any], status: str, reason: str, data: dict[str, Any]) -> None:
    custom_resource.respond(event, status, reason, data, id_prefix="schema")


def handler(event: dict[str, Any], context: object,
            migrate_fn: Any = None) -> None:
    migrate_fn = migrate_fn or run_migrations
    request_type = event.get("RequestType")
    try:
        if request_type in ("Create", "Update"):
            secret_arn = event["ResourceProperties"].get("SecretArn") or os.environ["SECRET_ARN"]
            applied = migrate_fn(secret_arn)
            respond(event, "SUCCESS", f"applied migrations {applied or 'none (up to date)'}",
                    {"Applied": ",".join(map(str, applied))})
        else:  # Delete: the schema belongs to the data, which is retained or dropped with the cluster
            respond(event, "SUCCESS", "nothing to do on delete", {})
    except Exception as exc:  # CloudFormation waits an hour for a response that never comes otherwise
        log.exception("schema setup failed")
        respond(event, "FAILED", f"{exc.__class__.__name__}: {exc}", {})
