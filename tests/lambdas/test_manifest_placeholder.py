"""The placeholder-manifest custom resource (moto S3): it writes QuickSight's manifest only where none
exists, so a redeploy never replaces the manifest of a published run, and it always answers
CloudFormation.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import files
from lambdas.manifest_placeholder import handler
from tools.lambda_events import LambdaContext

BUCKET = "curated"
REAL_RUN = "20261129T160000Z-aaaa"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(handler, "respond", lambda event, status, reason, data: sent.append((status, reason)))
    return sent


def event(kind: str) -> dict[str, Any]:
    manifest = json.dumps(files.quicksight_manifest(f"s3://{BUCKET}", "00000000T000000Z-0000"))
    return {"RequestType": kind, "ResponseURL": "http://unused", "StackId": "stack", "RequestId": "req-1",
            "LogicalResourceId": "Placeholder", "ResourceType": "Custom::QuickSightManifestPlaceholder",
            "ResourceProperties": {"Bucket": BUCKET, "Objects": [
                {"Key": c.QUICKSIGHT_MANIFEST_FILE, "Body": manifest, "ContentType": "application/json"}]}}


def manifest_in(s3: Any) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=BUCKET, Key=c.QUICKSIGHT_MANIFEST_FILE)["Body"].read()))


def test_writes_the_placeholder_when_no_run_has_published(s3: Any, responses: list[tuple[str, str]]) -> None:
    handler.handler(event("Create"), LambdaContext(), s3=s3)
    assert responses[0][0] == "SUCCESS"
    assert manifest_in(s3)["fileLocations"][0]["URIPrefixes"][0].startswith(f"s3://{BUCKET}/runs/00000000T")


@pytest.mark.parametrize("kind", ["Create", "Update"])
def test_never_replaces_a_published_runs_manifest(s3: Any, responses: list[tuple[str, str]], kind: str) -> None:
    real = files.quicksight_manifest(f"s3://{BUCKET}", REAL_RUN)
    s3.put_object(Bucket=BUCKET, Key=c.QUICKSIGHT_MANIFEST_FILE, Body=json.dumps(real).encode())
    handler.handler(event(kind), LambdaContext(), s3=s3)
    assert responses[0][0] == "SUCCESS"
    assert manifest_in(s3) == real


def test_delete_leaves_the_manifest_and_other_errors_fail_the_resource(s3: Any,
                                                                       responses: list[tuple[str, str]]) -> None:
    handler.handler(event("Create"), LambdaContext(), s3=s3)
    handler.handler(event("Delete"), LambdaContext(), s3=s3)
    assert manifest_in(s3)
    missing_bucket = event("Create")
    missing_bucket["ResourceProperties"]["Bucket"] = "no-such-bucket"
    handler.handler(missing_bucket, LambdaContext(), s3=s3)
    assert responses[-1][0] == "FAILED" and "NoSuchBucket" in responses[-1][1]
