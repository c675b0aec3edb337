"""The API function the serving stack deploys, through HTTP API v2 events against moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import dynamo
from lambdas.recommendations_api import handler

RUN = "20261129T160000Z-aaaa"
NOW = datetime(2026, 11, 29, 16, tzinfo=UTC)


def event(path: str, user_id: str | None = None) -> dict[str, Any]:
    return {"version": "2.0", "rawPath": path, "routeKey": f"GET {path}",
            "pathParameters": {"user_id": user_id} if user_id is not None else None,
            "requestContext": {"http": {"method": "GET", "path": path}}}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="recs", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": c.DDB_PARTITION_KEY, "KeyType": "HASH"},
                                       {"AttributeName": c.DDB_SORT_KEY, "KeyType": "RANGE"}],
                            AttributeDefinitions=[{"AttributeName": c.DDB_PARTITION_KEY, "AttributeType": "N"},
                                                  {"AttributeName": c.DDB_SORT_KEY, "AttributeType": "S"}])
        monkeypatch.setattr(handler, "TABLE", "recs")
        monkeypatch.setattr(handler, "_ddb", client)
        yield client


def publish(client: Any) -> None:
    recs = [{c.RANK: r, c.ARTIST_ID: 10 + r, c.SCORE: 90.0 - r} for r in range(1, 6)]
    popular = [{c.RANK: r, c.ARTIST_ID: 100 + r, c.SCORE: 70.0} for r in range(1, 6)]
    dynamo.write_batches(client, "recs", [dynamo.user_item(7, RUN, recs, NOW, 30),
                                          dynamo.fallback_item(RUN, popular, NOW, 30)])
    dynamo.flip_pointer(client, "recs", RUN, 5)


def body(response: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(response["body"]))


def test_known_user_gets_the_active_runs_list(table: Any) -> None:
    publish(table)
    response = handler.handler(event("/users/7/recommendations", "7"), None)
    assert response["statusCode"] == 200
    got = body(response)
    assert got["run_id"] == RUN and got["fallback"] is False
    assert [r["artist_id"] for r in got["recommendations"]] == [11, 12, 13, 14, 15]


def test_unknown_user_gets_the_popularity_fallback(table: Any) -> None:
    publish(table)
    got = body(handler.handler(event("/users/8/recommendations", "8"), None))
    assert got["fallback"] is True and [r["artist_id"] for r in got["recommendations"]][:2] == [101, 102]


@pytest.mark.parametrize("raw", ["abc", "0", "-3", "2147483648", ""])
def test_bad_user_ids_get_400(table: Any, raw: str) -> None:
    response = handler.handler(event(f"/users/{raw}/recommendations", raw), None)
    assert response["statusCode"] == 400 and "user_id" in body(response)["message"]


def test_nothing_published_or_missing_table_is_503(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert handler.handler(event("/users/7/recommendations", "7"), None)["statusCode"] == 503
    monkeypatch.setattr(handler, "TABLE", "no-such-table")
    response = handler.handler(event("/users/7/recommendations", "7"), None)
    assert response["statusCode"] == 503
    assert "ResourceNotFound" not in response["body"] and "Traceback" not in response["body"]


def test_health(table: Any) -> None:
    assert handler.handler(event("/health"), None) == {
        "statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"status": "ok"}'}


def test_operators_see_the_active_run(table: Any) -> None:
    assert handler.handler(event("/runs/active"), None)["statusCode"] == 404
    publish(table)
    got = body(handler.handler(event("/runs/active"), None))
    assert got[c.DDB_ACTIVE_RUN] == RUN and got[c.DDB_TOP_N] == 5
