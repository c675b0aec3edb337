"""The recommendations API through HTTP API v2 events against moto: every answer and error path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import dynamo
from lambdas.recommendations_api import handler
from lambdas.recommendations_api.logic import RecommendationStore
from tools.lambda_events import LambdaContext, http_event

RUN_A, RUN_B = "20261129T160000Z-aaaa", "20261130T160000Z-bbbb"
NOW = datetime(2026, 11, 29, 16, tzinfo=UTC)


def call(target: str) -> tuple[int, dict[str, Any]]:
    response = handler.handler(http_event(target), LambdaContext())
    return response["statusCode"], json.loads(response["body"])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="recs", BillingMode="PAY_PER_REQUEST", **c.DDB_TABLE_KEYS)
        clock = Clock()
        monkeypatch.setattr(handler, "_store", RecommendationStore(client, "recs", pointer_ttl_s=30, clock=clock))
        client.clock = clock  # type: ignore[attr-defined]
        yield client


def publish(client: Any, run_id: str = RUN_A, base: int = 10) -> None:
    recs = [{c.RANK: r, c.ARTIST_ID: base + r, c.SCORE: 95.5 - r, c.PREDICTED_RATING: 80.0 + r, c.ARTIST_NAME: f"A{r}"}
            for r in range(1, 6)]
    popular = [{c.RANK: r, c.ARTIST_ID: 100 + r, c.SCORE: 500.0 - r, c.PREDICTED_RATING: 70.0} for r in range(1, 6)]
    dynamo.write_batches(client, "recs", [dynamo.user_item(7, run_id, recs, NOW, 30),
                                          dynamo.fallback_item(run_id, popular, NOW, 30)])
    dynamo.flip_pointer(client, "recs", run_id, 5)


def test_known_user_gets_the_active_runs_ordered_list(ddb: Any) -> None:
    publish(ddb)
    status, body = call("/users/7/recommendations")
    assert status == 200
    assert body["run_id"] == RUN_A and body["fallback"] is False and body["k"] == 5
    assert body["generated_at"].startswith("2026-11-29T16:00")
    assert body["recommendations"][0] == {"rank": 1, "artist_id": 11, "score": 94.5, "predicted_rating": 81,
                                          "artist_name": "A1"}
    assert list(body["recommendations"][0]) == [*c.LIST_ENTRY_COLUMNS, c.ARTIST_NAME]
    assert [r["rank"] for r in body["recommendations"]] == [1, 2, 3, 4, 5]
    assert [r["score"] for r in body["recommendations"]] == [94.5, 93.5, 92.5, 91.5, 90.5]
    assert [r["predicted_rating"] for r in body["recommendations"]] == [81, 82, 83, 84, 85]


def test_items_written_before_predicted_rating_existed_still_read(ddb: Any) -> None:
    """An item of an earlier run (no predicted_rating in its entries) answers with it as null."""
    old_entry = {"M": {c.ARTIST_ID: {"N": "11"}, c.SCORE: {"N": "89"}, c.RANK: {"N": "1"}}}
    item = dynamo.user_item(7, RUN_A, [], NOW, 30)
    item[c.DDB_RECOMMENDATIONS] = {"L": [old_entry]}
    dynamo.write_batches(ddb, "recs", [item, dynamo.fallback_item(RUN_A, [], NOW, 30)])
    dynamo.flip_pointer(ddb, "recs", RUN_A, 5)
    status, body = call("/users/7/recommendations")
    assert status == 200
    assert body["recommendations"] == [{"rank": 1, "artist_id": 11, "score": 89, "predicted_rating": None}]


def test_k_limits_the_list(ddb: Any) -> None:
    publish(ddb)
    status, body = call("/users/7/recommendations?k=2")
    assert status == 200 and [r["artist_id"] for r in body["recommendations"]] == [11, 12]


def test_unknown_user_gets_the_popularity_list_marked_as_fallback(ddb: Any) -> None:
    publish(ddb)
    status, body = call("/users/8/recommendations?k=3")
    assert status == 200 and body["fallback"] is True
    assert [r["artist_id"] for r in body["recommendations"]] == [101, 102, 103]
    assert [(r["score"], r["predicted_rating"]) for r in body["recommendations"]] == [(499, 70), (498, 70), (497, 70)]


@pytest.mark.parametrize("target, message", [
    ("/users/abc/recommendations", "user_id must be a positive integer"),
    ("/users/0/recommendations", "user_id must be between 1 and 2147483647"),
    ("/users/2147483648/recommendations", "user_id must be between 1 and 2147483647"),
    ("/users/7/recommendations?k=0", "k must be an integer between 1 and 5"),
    ("/users/7/recommendations?k=6", "k must be an integer between 1 and 5"),
    ("/users/7/recommendations?k=two", "k must be an integer between 1 and 5"),
    ("/users/7/recommendations?k=1&k=2", "k must be an integer between 1 and 5"),
    ("/users/7/recommendations?limit=3&k=1", "unknown query parameter(s): limit"),
])
def test_bad_requests_get_400_with_a_message(ddb: Any, target: str, message: str) -> None:
    publish(ddb)
    status, body = call(target)
    assert status == 400 and list(body) == ["message"] and body["message"].startswith(message)


def test_the_pointer_is_cached_for_its_ttl_then_reread(ddb: Any) -> None:
    publish(ddb, RUN_A)
    assert call("/users/7/recommendations")[1]["run_id"] == RUN_A
    publish(ddb, RUN_B, base=50)
    ddb.clock.now = 29.0
    assert call("/users/7/recommendations")[1]["run_id"] == RUN_A  # still cached
    ddb.clock.now = 30.0
    _, body = call("/users/7/recommendations")
    assert body["run_id"] == RUN_B and body["recommendations"][0]["artist_id"] == 51


def test_nothing_published_is_503(ddb: Any) -> None:
    status, body = call("/users/7/recommendations")
    assert status == 503 and body == {"message": "recommendations are temporarily unavailable"}


class ThrottledClient:
    def get_item(self, **_: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                     "Message": "Rate of requests exceeds the allowed throughput (table recs)"}},
                          "GetItem")


@pytest.mark.parametrize("client_kind", ["throttled", "missing-table"])
def test_throttling_or_a_missing_table_is_503_and_leaks_nothing(ddb: Any, monkeypatch: pytest.MonkeyPatch,
                                                                client_kind: str) -> None:
    store = RecommendationStore(ThrottledClient() if client_kind == "throttled" else ddb,
                                "recs" if client_kind == "throttled" else "no-such-table")
    monkeypatch.setattr(handler, "_store", store)
    response = handler.handler(http_event("/users/7/recommendations"), LambdaContext())
    assert response["statusCode"] == 503
    for secret in ("Throughput", "ResourceNotFound", "no-such-table", "Traceback", "recs"):
        assert secret not in response["body"]


def test_unexpected_errors_are_500_without_a_stack_trace(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def get_item(self, **_: Any) -> dict[str, Any]:
            raise KeyError("internal detail")

    monkeypatch.setattr(handler, "_store", RecommendationStore(Broken(), "recs"))
    status, body = call("/users/7/recommendations")
    assert status == 500 and body == {"message": "internal error"}


def test_health_active_run_and_unknown_routes(ddb: Any) -> None:
    assert call("/health") == (200, {"status": "ok"})
    publish(ddb, RUN_A)
    publish(ddb, RUN_B, base=50)
    status, body = call("/runs/active")
    assert status == 200
    assert list(body) == [c.DDB_ACTIVE_RUN, c.DDB_PREVIOUS_RUN, c.DDB_TOP_N, c.DDB_UPDATED_AT]
    assert (body[c.DDB_ACTIVE_RUN], body[c.DDB_PREVIOUS_RUN], body[c.DDB_TOP_N]) == (RUN_B, RUN_A, 5)
    assert datetime.fromisoformat(body[c.DDB_UPDATED_AT]).tzinfo is not None  # ISO 8601 with its zone
    assert handler.handler(http_event("/admin"), LambdaContext())["statusCode"] == 404


def test_a_pointer_without_top_n_is_shown_but_serves_nothing(ddb: Any) -> None:
    publish(ddb)
    ddb.update_item(TableName="recs", Key=dynamo.pointer_key(), UpdateExpression=f"REMOVE {c.DDB_TOP_N}")
    assert call("/users/7/recommendations")[0] == 503
    status, body = call("/runs/active")
    assert status == 200 and (body[c.DDB_ACTIVE_RUN], body[c.DDB_TOP_N]) == (RUN_A, None)


def publish_similar(client: Any, run_id: str = RUN_A, base: int = 20, named: bool = True) -> None:
    """Artist 11's four similar artists (and artist 12's one), as the DynamoDB sink writes them."""
    entries = [{c.RANK: r, c.ARTIST_ID: base + r, c.SIMILARITY: 0.95 - r / 10,
                **({c.ARTIST_NAME: f"S{r}"} if named else {})} for r in range(1, 5)]
    dynamo.write_batches(client, "recs", [
        dynamo.artist_item(11, run_id, entries, NOW, 30, "Eleven" if named else None),
        dynamo.artist_item(12, run_id, entries[:1], NOW, 30)])


def test_an_artists_similar_artists_come_from_the_active_run_with_names(ddb: Any) -> None:
    publish(ddb, RUN_A)
    publish_similar(ddb, RUN_A)
    status, body = call("/artists/11/similar")
    assert status == 200
    assert (body["artist_id"], body["artist_name"], body["run_id"], body["k"]) == (11, "Eleven", RUN_A, 4)
    assert body["similar"][0] == {"rank": 1, "artist_id": 21, "similarity": 0.85, "artist_name": "S1"}
    assert list(body["similar"][0]) == [*c.SIMILAR_ENTRY_COLUMNS, c.ARTIST_NAME]
    assert [e["artist_id"] for e in body["similar"]] == [21, 22, 23, 24]
    status, body = call("/artists/11/similar?k=2")
    assert status == 200 and [e["rank"] for e in body["similar"]] == [1, 2]
    # a new run's lists are served once the pointer names it (and the cached pointer expires)
    publish(ddb, RUN_B, base=50)
    publish_similar(ddb, RUN_B, base=70, named=False)
    ddb.clock.now = 30.0
    status, body = call("/artists/11/similar?k=1")
    assert status == 200 and body["run_id"] == RUN_B and "artist_name" not in body
    assert body["similar"] == [{"rank": 1, "artist_id": 71, "similarity": 0.85}]


def test_an_artist_without_a_list_in_the_active_run_is_404(ddb: Any) -> None:
    """Artist 13 has no list; artist 11's list exists only in a run that is not active; user 7's
    recommendations (the same number's user item) are not an artist's list."""
    publish(ddb, RUN_A)
    publish_similar(ddb, RUN_B)
    for artist in (13, 11, 7):
        status, body = call(f"/artists/{artist}/similar")
        assert status == 404
        assert body == {"message": f"artist {artist} has no similar artists in the active run"}


@pytest.mark.parametrize("target, message", [
    ("/artists/abc/similar", "artist_id must be a positive integer"),
    ("/artists/-11/similar", "artist_id must be a positive integer"),
    ("/artists/0/similar", "artist_id must be between 1 and 2147483647"),
    ("/artists/2147483648/similar", "artist_id must be between 1 and 2147483647"),
    ("/artists/11/similar?k=0", "k must be a positive integer, got '0'"),
    ("/artists/13/similar?k=0", "k must be a positive integer, got '0'"),  # bad input first, unknown artist or not
    ("/artists/13/similar?k=x", "k must be a positive integer, got 'x'"),
    ("/artists/11/similar?k=5", "k must be an integer between 1 and 4"),
    ("/artists/12/similar?k=2", "k must be an integer between 1 and 1"),
    ("/artists/11/similar?k=x", "k must be a positive integer, got 'x'"),
    ("/artists/11/similar?limit=3", "unknown query parameter(s): limit"),
    ("/artists/13/similar?limit=3", "unknown query parameter(s): limit"),
])
def test_bad_similar_artist_requests_get_400_with_a_message(ddb: Any, target: str, message: str) -> None:
    publish(ddb)
    publish_similar(ddb)
    status, body = call(target)
    assert status == 400 and list(body) == ["message"] and body["message"].startswith(message)


def test_similar_artists_with_nothing_published_is_503(ddb: Any) -> None:
    status, body = call("/artists/11/similar")
    assert status == 503 and body == {"message": "recommendations are temporarily unavailable"}
