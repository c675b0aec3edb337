"""The deploy-time schema function through real CloudFormation custom-resource events: it runs
the job's migrations on the real MariaDB (credentials from a Secrets Manager secret) and always
answers CloudFormation's response URL, also when it fails."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws

from glue_jobs import contracts as c
from lambdas.schema_setup import handler
from tests.publish.schema_v2 import create_v2_database

pytestmark = pytest.mark.mysql


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Stands in for CloudFormation's pre-signed S3 URL and records what it was sent."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/response", received
    server.shutdown()


def cfn_event(kind: str, url: str, secret_arn: str) -> dict[str, Any]:
    return {"RequestType": kind, "ResponseURL": url, "StackId": "arn:aws:cloudformation:us-east-1:123:stack/s/1",
            "RequestId": "req-1", "LogicalResourceId": "Schema", "ResourceType": "Custom::AuroraSchema",
            "ResourceProperties": {"ServiceToken": "arn", "SecretArn": secret_arn,
                                   "SchemaVersion": str(c.SCHEMA_VERSION)}}


def secret_for(mysql_url: str) -> str:
    database = mysql_url.rsplit("/", 1)[1]
    arn: str = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="aurora", SecretString=json.dumps({"username": "root", "password": "", "host": "127.0.0.1",
                                                "port": 3306, "dbname": database}))["ARN"]
    return arn


@mock_aws
def test_create_then_update_migrate_once_and_report_success(mysql_url: str, response_url: Any) -> None:
    url, received = response_url
    arn = secret_for(mysql_url)
    handler.handler(cfn_event("Create", url, arn), None)
    handler.handler(cfn_event("Update", url, arn), None)
    assert [r["Status"] for r in received] == ["SUCCESS", "SUCCESS"]
    assert received[0]["Data"] == {"Applied": "1,2,3,4"} and received[1]["Data"] == {"Applied": ""}
    assert received[0]["PhysicalResourceId"] == "schema-Schema"
    tables = set(sa.inspect(sa.create_engine(mysql_url)).get_table_names())
    assert {c.SQL_RECOMMENDATIONS, c.SQL_ARTISTS, c.SQL_MODEL_RUNS, c.SQL_SIMILAR_ARTISTS} <= tables


@mock_aws
def test_an_update_upgrades_a_database_the_previous_version_deployed(mysql_url: str, response_url: Any) -> None:
    """The stack's update (SchemaVersion bumped) runs migrations 3 and 4 on a version 2 database:
    the recommendations table gains predicted_rating and keeps its rows; similar_artists appears."""
    url, received = response_url
    engine = sa.create_engine(mysql_url)
    create_v2_database(engine, live=("20261129T160000Z-aaaa", 3))
    handler.handler(cfn_event("Update", url, secret_for(mysql_url)), None)
    assert received[0]["Status"] == "SUCCESS" and received[0]["Data"] == {"Applied": "3,4"}
    assert sa.inspect(engine).has_table(c.SQL_SIMILAR_ARTISTS)
    assert c.PREDICTED_RATING in {col["name"] for col in sa.inspect(engine).get_columns(c.SQL_RECOMMENDATIONS)}
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {c.SQL_RECOMMENDATIONS}")).scalar_one() == 15


@mock_aws
def test_a_missing_secret_reports_failure_instead_of_hanging_the_stack(response_url: Any) -> None:
    url, received = response_url
    handler.handler(cfn_event("Create", url, "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone"), None)
    assert received[0]["Status"] == "FAILED" and "cannot be read" in received[0]["Reason"]


def test_delete_leaves_the_database_alone(response_url: Any) -> None:
    url, received = response_url
    calls: list[str] = []
    handler.handler(cfn_event("Delete", url, "arn"), None, migrate_fn=calls.append)
    assert calls == [] and received[0]["Status"] == "SUCCESS"
