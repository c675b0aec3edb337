"""CloudFormation custom resource: writes placeholder objects (QuickSight's manifest and the header-only
CSV it points at) only where no object exists yet, so a real run's manifest is never replaced.

The objects come in the resource's properties (built at synth time by the job's own manifest
builder). Each is written with S3's conditional `If-None-Match: *`: the write is atomic and fails
with 412 when the key already exists, which here means "a run already published; keep it".
Deleting the resource leaves the objects alone (the manifest then belongs to the published runs).
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.exceptions import ClientError

from lambdas import custom_resource

log = logging.getLogger()
log.setLevel(logging.INFO)

# 412: the key exists. 409: a concurrent write to the same key is in progress (also "not ours to write").
ALREADY_THERE = {"PreconditionFailed", "ConditionalRequestConflict"}


def put_if_absent(s3: Any, bucket: str, key: str, body: str, content_type: str) -> bool:
    """True if written, False if an object was already there (left untouched)."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"), ContentType=content_type,
                      IfNoneMatch="*")
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ALREADY_THERE:
            return False
        raise


def respond(event: dict[str, Any], status: str, reason: str, data: dict[str, Any]) -> None:
    custom_resource.respond(event, status, reason, data, id_prefix="placeholder")


def handler(event: dict[str, Any], context: object, s3: Any = None) -> None:
    try:
        if event.get("RequestType") in ("Create", "Update"):
            props = event["ResourceProperties"]
            s3 = s3 or boto3.client("s3")
            written = [o["Key"] for o in props["Objects"]
                       if put_if_absent(s3, props["Bucket"], o["Key"], o["Body"], o.get("ContentType", "text/plain"))]
            kept = [o["Key"] for o in props["Objects"] if o["Key"] not in written]
            respond(event, "SUCCESS", f"written {written or 'nothing'}; already there {kept or 'nothing'}",
                    {"Written": ",".join(written)})
        else:  # Delete: the objects now belong to the published runs
            respond(event, "SUCCESS", "nothing to do on delete", {})
    except Exception as exc:  # CloudFormation waits an hour for a response that never comes otherwise
        log.exception("placeholder write failed")
        respond(event, "FAILED", f"{exc.__class__.__name__}: {exc}", {})
