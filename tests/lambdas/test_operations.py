"""Operations functions: rollback (moto S3 + DynamoDB) and the readable failure notice (moto SNS)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import dynamo
from lambdas.failure_notifier import handler as notifier
from lambdas.rollback import handler as rollback
from tools.lambda_events import LambdaContext

RUN_A, RUN_B = "20261129T160000Z-aaaa", "20261130T160000Z-bbbb"
NOW = datetime(2026, 11, 29, 16, tzinfo=UTC)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="curated")
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(TableName="recs", BillingMode="PAY_PER_REQUEST", **c.DDB_TABLE_KEYS)
        for run in (RUN_A, RUN_B):
            s3.put_object(Bucket="curated", Key=f"runs/{run}/_SUCCESS", Body=run.encode())
            dynamo.write_batches(ddb, "recs", [dynamo.fallback_item(run, [], NOW, 30)])
            dynamo.flip_pointer(ddb, "recs", run, 5)
        s3.put_object(Bucket="curated", Key="latest.json", Body=json.dumps({"run_id": RUN_B}).encode())
        monkeypatch.setenv("RUNS_ROOT", "s3://curated")
        monkeypatch.setenv("TABLE_NAME", "recs")
        yield s3, ddb


def test_rollback_points_serving_and_latest_back_at_a_complete_run(published: Any) -> None:
    s3, ddb = published
    result = rollback.handler({"run_id": RUN_A}, LambdaContext())
    assert result["ok"] is True
    assert dynamo.read_pointer(ddb, "recs").run_id == RUN_A  # type: ignore[union-attr]
    latest = json.loads(s3.get_object(Bucket="curated", Key="latest.json")["Body"].read())
    assert latest["run_id"] == RUN_A and latest["previous_run_id"] == RUN_B
    manifest = json.loads(s3.get_object(Bucket="curated", Key=c.QUICKSIGHT_MANIFEST_FILE)["Body"].read())
    assert f"runs/{RUN_A}/recommendations_csv/" in manifest["fileLocations"][0]["URIPrefixes"][0]


@pytest.mark.parametrize("run_id, message", [
    ("20261128T000000Z-dead", "not complete"),
    ("yesterday", "run_id must look like"),
])
def test_rollback_refuses_incomplete_or_malformed_runs(published: Any, run_id: str, message: str) -> None:
    _, ddb = published
    result = rollback.handler({"run_id": run_id}, LambdaContext())
    assert result["ok"] is False and message in result["error"]
    assert dynamo.read_pointer(ddb, "recs").run_id == RUN_B  # type: ignore[union-attr]


def test_rollback_refuses_a_run_whose_items_expired(published: Any) -> None:
    _, ddb = published
    ddb.delete_item(TableName="recs", Key={"user_id": {"N": "0"}, "run_id": {"S": RUN_A}})
    result = rollback.handler({"run_id": RUN_A}, LambdaContext())
    assert result["ok"] is False and "no complete item set in DynamoDB" in result["error"]


GLUE_EVENT = {"version": "0", "detail-type": "Glue Job State Change", "source": "aws.glue",
              "detail": {"jobName": "recsys-dev-recommender", "severity": "ERROR", "state": "FAILED",
                         "jobRunId": "jr_abc123", "message": "JobFailed: quality gate failed"}}


class FakeGlue:
    def __init__(self, run: dict[str, Any] | None) -> None:
        self.run = run

    def get_job_run(self, **kwargs: Any) -> dict[str, Any]:
        if self.run is None:
            raise RuntimeError("AccessDenied")
        assert kwargs == {"JobName": "recsys-dev-recommender", "RunId": "jr_abc123", "PredecessorsIncluded": False}
        return {"JobRun": self.run}


def failure_topic(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Callable[[], dict[str, Any]]]:
    """Inside mock_aws: the failure topic (TOPIC_ARN set) with a queue subscribed, and a reader of
    the one notification it received."""
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="failures")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("TOPIC_ARN", topic)

    def inbox() -> dict[str, Any]:
        (msg,) = sqs.receive_message(QueueUrl=queue)["Messages"]
        return json.loads(msg["Body"])  # type: ignore[no-any-return]
    return sns, inbox


@pytest.mark.parametrize("run, expected", [
    ({"ErrorMessage": "JobFailed: quality gate failed: rmse = 20.1 is not below 19.3", "StartedOn": "2026-11-29",
      "ExecutionTime": 754, "Attempt": 0}, ["rmse = 20.1 is not below 19.3", "Ran for: 12 min 34 s"]),
    (None, ["JobFailed: quality gate failed"]),  # no glue details: the event's message still goes out
])
def test_failed_runs_become_readable_notifications(monkeypatch: pytest.MonkeyPatch, run: Any,
                                                   expected: list[str]) -> None:
    with mock_aws():
        sns, inbox = failure_topic(monkeypatch)
        notifier.handler(GLUE_EVENT, LambdaContext(), glue=FakeGlue(run), sns=sns)
        body = inbox()
        assert body["Subject"] == "Recommender training FAILED: recsys-dev-recommender"
        link = "#/job/recsys-dev-recommender/run/jr_abc123"
        for text in [*expected, "Run:    jr_abc123", "still being served", link]:
            assert text in body["Message"]


STATES = "arn:aws:states:us-east-1:000000000000"
EMR_EVENT = {"version": "0", "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
             "detail": {"executionArn": f"{STATES}:execution:recsys-prod-emr-training:x1",
                        "stateMachineArn": f"{STATES}:stateMachine:recsys-prod-emr-training",
                        "name": "x1", "status": "FAILED", "startDate": 1_700_000_000_000,
                        "stopDate": 1_700_000_754_000, "error": "EMRServerless.JobRunFailed",
                        "cause": "quality gate failed"}}


def test_failed_emr_runs_become_readable_notifications(monkeypatch: pytest.MonkeyPatch) -> None:
    """The EMR runtime's failures arrive as Step Functions execution events: no Glue call is made."""
    with mock_aws():
        sns, inbox = failure_topic(monkeypatch)
        notifier.handler(EMR_EVENT, LambdaContext(), glue=FakeGlue(None), sns=sns)
        body = inbox()
        assert body["Subject"] == "Recommender training FAILED: recsys-prod-emr-training"
        for text in ["EMRServerless.JobRunFailed: quality gate failed", "Ran for: 12 min 34 s", "still being served",
                     "#/v2/executions/details/arn:aws:states:us-east-1:000000000000:execution:"]:
            assert text in body["Message"]
