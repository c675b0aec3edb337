"""Rollback for operators: points serving (the DynamoDB pointer) and latest.json back at an
earlier, complete run. Invoke with {"run_id": "20261129T160000Z-3f2a"}.

The same code as `python -m glue_jobs.recommender.publish rollback`; the Aurora table is
reloaded by that command (it needs the VPC), not here.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from glue_jobs import contracts as c
from glue_jobs.recommender.config import SinkOptions
from glue_jobs.recommender.publish import PublishError, PublishSettings, rollback

logger = Logger(service="rollback")


def settings() -> PublishSettings:
    return PublishSettings.from_options(SinkOptions(runs_root=os.environ["RUNS_ROOT"],
                                                    dynamodb_table=os.environ["TABLE_NAME"]))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    run_id = str(event.get("run_id", ""))
    if not c.is_run_id(run_id):
        return {"ok": False, "error": f"run_id must look like 20261129T160000Z-3f2a, got {run_id!r}"}
    try:
        done = rollback(run_id, settings())
    except PublishError as exc:
        logger.warning("rollback refused", extra={"run_id": run_id, "reason": str(exc)})
        return {"ok": False, "error": str(exc)}
    logger.info("rolled back", extra=done)
    return {"ok": True, **done}
