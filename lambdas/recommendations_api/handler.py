"""Recommendations API (HTTP API v2 events): GET /users/{user_id}/recommendations, /health.

A thin first version the stack deploys; the API issue grows it (Powertools, caching, k).
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

from glue_jobs import contracts as c

TABLE = os.environ.get("TABLE_NAME", "")
_ddb = None


def _client() -> Any:
    global _ddb
    if _ddb is None:
        _ddb = boto3.client("dynamodb")
    return _ddb


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def _get(user_id: int, sort_key: str) -> dict[str, Any] | None:
    key = {c.DDB_PARTITION_KEY: {"N": str(user_id)}, c.DDB_SORT_KEY: {"S": sort_key}}
    item: dict[str, Any] | None = _client().get_item(TableName=TABLE, Key=key).get("Item")
    return item


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    path = event.get("rawPath", "")
    if path == "/health":
        return _response(200, {"status": "ok"})
    if path == "/runs/active":
        try:
            pointer = _get(c.DDB_CONTROL_USER_ID, c.DDB_POINTER_SORT_KEY)
        except Exception:
            return _response(503, {"message": "recommendations are temporarily unavailable"})
        if pointer is None:
            return _response(404, {"message": "no run has been published yet"})
        return _response(200, {k: c.plain_value(v) for k, v in pointer.items()
                               if k in (c.DDB_ACTIVE_RUN, c.DDB_PREVIOUS_RUN, c.DDB_TOP_N, "updated_at")})
    raw_id = (event.get("pathParameters") or {}).get("user_id", "")
    if not raw_id.isdigit() or not 1 <= int(raw_id) <= c.MAX_ID:
        return _response(400, {"message": "user_id must be an integer in 1..2147483647"})
    try:
        pointer = _get(c.DDB_CONTROL_USER_ID, c.DDB_POINTER_SORT_KEY)
        if pointer is None:
            return _response(503, {"message": "no recommendations have been published yet"})
        run_id = pointer[c.DDB_ACTIVE_RUN]["S"]
        item = _get(int(raw_id), run_id)
        fallback = item is None
        if fallback:
            item = _get(c.DDB_CONTROL_USER_ID, run_id)
    except Exception:  # throttling, missing table: never leak internals
        return _response(503, {"message": "recommendations are temporarily unavailable"})
    recs = c.plain_value(item[c.DDB_RECOMMENDATIONS]) if item else []
    return _response(200, {c.USER_ID: int(raw_id), "run_id": run_id, "fallback": fallback,
                           c.DDB_GENERATED_AT: item[c.DDB_GENERATED_AT]["S"] if item else None,
                           c.DDB_RECOMMENDATIONS: recs[: int(pointer[c.DDB_TOP_N]["N"])]})
