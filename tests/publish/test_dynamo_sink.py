"""DynamoDB sink against moto's server: batching, retries, pointer rules, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import dynamo
from glue_jobs.recommender.publish.errors import PublishError

NOW = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
RUN_A, RUN_B = "20261129T160000Z-aaaa", "20261130T160000Z-bbbb"


def client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("dynamodb", endpoint_url=endpoint)


def items(run_id: str, users: range) -> list[dict]:  # type: ignore[type-arg]
    rec = {c.RANK: 1, c.ARTIST_ID: 7, c.SCORE: 93.87654321, c.PREDICTED_RATING: 88.123456, c.ARTIST_NAME: "Motörhead"}
    return [dynamo.user_item(u, run_id, [rec], NOW, 30) for u in users]


def test_items_carry_the_contract_and_land_in_batches(moto_endpoint: str, table: str) -> None:
    ddb = client(moto_endpoint)
    assert dynamo.write_batches(ddb, table, items(RUN_A, range(1, 61))) == 60
    got = ddb.get_item(TableName=table, Key={"user_id": {"N": "42"}, "run_id": {"S": RUN_A}})["Item"]
    rec = got[c.DDB_RECOMMENDATIONS]["L"][0]["M"]
    assert rec == {"artist_id": {"N": "7"}, "score": {"N": "93.8765"}, "predicted_rating": {"N": "88.1235"},
                   "rank": {"N": "1"}, "artist_name": {"S": "Motörhead"}}
    assert int(got[c.DDB_TTL_ATTRIBUTE]["N"]) == int(NOW.timestamp()) + 30 * 86400
    assert got[c.DDB_GENERATED_AT]["S"].startswith("2026-11-29T16:00")


def test_a_list_without_predicted_ratings_leaves_the_field_out(moto_endpoint: str, table: str) -> None:
    """Implicit feedback predicts no rating: the entry carries no predicted_rating (readers take
    a missing one as null) rather than a number that means nothing."""
    ddb = client(moto_endpoint)
    item = dynamo.user_item(5, RUN_A, [{c.RANK: 1, c.ARTIST_ID: 7, c.SCORE: 0.75, c.PREDICTED_RATING: None}], NOW, 30)
    dynamo.write_batches(ddb, table, [item])
    got = ddb.get_item(TableName=table, Key={"user_id": {"N": "5"}, "run_id": {"S": RUN_A}})["Item"]
    assert got[c.DDB_RECOMMENDATIONS]["L"][0]["M"] == {"artist_id": {"N": "7"}, "score": {"N": "0.75"},
                                                        "rank": {"N": "1"}}


class FlakyClient:
    """Returns part of every batch as unprocessed for the first calls, like a throttled table."""

    def __init__(self, real, failing_calls: int | None) -> None:  # type: ignore[no-untyped-def]
        self.real, self.failing_calls, self.calls = real, failing_calls, 0

    def batch_write_item(self, RequestItems):  # type: ignore[no-untyped-def]
        self.calls += 1
        (table, reqs), = RequestItems.items()
        if self.failing_calls is None or self.calls <= self.failing_calls:
            self.real.batch_write_item(RequestItems={table: reqs[:5]})
            return {"UnprocessedItems": {table: reqs[5:]}}
        return self.real.batch_write_item(RequestItems=RequestItems)


def test_unprocessed_items_are_retried_with_backoff(moto_endpoint: str, table: str) -> None:
    flaky = FlakyClient(client(moto_endpoint), failing_calls=3)
    delays: list[float] = []
    assert dynamo.write_batches(flaky, table, items(RUN_A, range(1, 26)), sleep=delays.append,
                                base_delay_s=0.1) == 25
    assert flaky.calls == 4 and len(delays) == 3
    assert all(0 <= d <= 0.1 * 2**i for i, d in enumerate(delays))  # full jitter, doubling cap
    count = client(moto_endpoint).scan(TableName=table, Select="COUNT")["Count"]
    assert count == 25


def test_permanent_throttling_fails_with_a_clear_message(moto_endpoint: str, table: str) -> None:
    flaky = FlakyClient(client(moto_endpoint), failing_calls=None)
    with pytest.raises(PublishError, match=r"5 item\(s\) still unprocessed after 4 attempts"):
        dynamo.write_batches(flaky, table, items(RUN_A, range(1, 26)), max_attempts=4, sleep=lambda s: None)


def test_pointer_moves_forward_only_unless_rolled_back(moto_endpoint: str, table: str) -> None:
    ddb = client(moto_endpoint)

    def active() -> str | None:
        pointer = dynamo.read_pointer(ddb, table)
        return pointer.run_id if pointer else None

    assert active() is None
    dynamo.flip_pointer(ddb, table, RUN_A, 5)
    dynamo.flip_pointer(ddb, table, RUN_B, 5)
    pointer = dynamo.read_pointer(ddb, table)
    assert pointer and (pointer.run_id, pointer.previous_run_id, pointer.top_n) == (RUN_B, RUN_A, 5)
    assert pointer.updated_at and datetime.fromisoformat(pointer.updated_at).tzinfo is not None
    dynamo.flip_pointer(ddb, table, RUN_B, 5)  # publishing the same run again changes nothing
    assert dynamo.read_pointer(ddb, table) == pointer
    # The conditional write itself refuses an older run (the guard against a concurrent publisher).
    with pytest.raises(PublishError, match="older than the active run"):
        dynamo.flip_pointer(ddb, table, RUN_A, 5)
    assert active() == RUN_B
    dynamo.flip_pointer(ddb, table, RUN_A, 5, force=True)
    assert active() == RUN_A


def test_missing_or_misshapen_table_is_named(moto_endpoint: str) -> None:
    ddb = client(moto_endpoint)
    with pytest.raises(PublishError, match="DynamoDB table 'no-such-table' does not exist"):
        dynamo.check_table(ddb, "no-such-table")
    ddb.create_table(TableName="wrong-keys", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    with pytest.raises(PublishError, match="has keys .*expected user_id"):
        dynamo.check_table(ddb, "wrong-keys")


def test_a_run_counts_as_loaded_once_its_fallback_item_is_written(moto_endpoint: str, table: str) -> None:
    ddb = client(moto_endpoint)
    dynamo.write_batches(ddb, table, items(RUN_A, range(1, 3)))
    assert not dynamo.run_is_loaded(ddb, table, RUN_A)  # user items alone: still loading
    dynamo.write_batches(ddb, table, [dynamo.fallback_item(RUN_A, [], NOW, 30)])
    assert dynamo.run_is_loaded(ddb, table, RUN_A) and not dynamo.run_is_loaded(ddb, table, RUN_B)


def test_artist_items_sit_beside_user_items_under_the_artists_key(moto_endpoint: str, table: str) -> None:
    """An artist's similar artists are item (c.ddb_artist_key(id), run): never the item of the user
    with the same number; entries in rank order with the similar artist's id and name; same TTL."""
    ddb = client(moto_endpoint)
    entries: list[dict[str, Any]] = [{c.RANK: 2, c.ARTIST_ID: 9, c.SIMILARITY: 0.512345678},
               {c.RANK: 1, c.ARTIST_ID: 8, c.SIMILARITY: 0.9, c.ARTIST_NAME: "Sigur Rós"}]
    dynamo.write_batches(ddb, table, [*items(RUN_A, range(7, 8)), dynamo.artist_item(7, RUN_A, entries, NOW, 30)])
    user = ddb.get_item(TableName=table, Key={"user_id": {"N": "7"}, "run_id": {"S": RUN_A}})["Item"]
    artist = ddb.get_item(TableName=table, Key={"user_id": {"N": str(c.ddb_artist_key(7))},
                                                "run_id": {"S": RUN_A}})["Item"]
    assert c.DDB_RECOMMENDATIONS in user and c.DDB_SIMILAR not in user
    assert c.DDB_SIMILAR in artist and c.DDB_RECOMMENDATIONS not in artist
    assert artist[c.DDB_PARTITION_KEY] == {"N": "-7"}
    assert c.plain_value(artist[c.DDB_SIMILAR]) == [
        {c.RANK: 1, c.ARTIST_ID: 8, c.SIMILARITY: 0.9, c.ARTIST_NAME: "Sigur Rós"},
        {c.RANK: 2, c.ARTIST_ID: 9, c.SIMILARITY: 0.512346}]
    assert artist[c.DDB_TTL_ATTRIBUTE] == user[c.DDB_TTL_ATTRIBUTE]
