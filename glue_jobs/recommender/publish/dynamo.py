"""DynamoDB sink: one item per user (and one per artist with similar artists) per run, written in
batches of 25 with retries (staging), then a conditional flip of the pointer item that names the
active run (activating)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import spark
from glue_jobs.recommender.publish.errors import PublishError
from glue_jobs.recommender.publish.sink import RunToPublish


@dataclass(frozen=True)
class DynamoSettings:
    table: str
    endpoint_url: str | None = None
    region: str | None = None
    ttl_days: int = 30
    max_writes_per_s: float = 0.0  # 0: as fast as the table takes them
    max_attempts: int = 8
    base_delay_s: float = 0.05

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("dynamodb", endpoint_url=self.endpoint_url, region_name=self.region,
                            config=Config(retries={"max_attempts": 3, "mode": "standard"}))


RETRYABLE = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
             "InternalServerError", "ServiceUnavailable"}


def check_table(client: Any, table: str) -> None:
    """Fails before anything is written if the table is missing or keyed differently."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    try:
        desc = client.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "ResourceNotFoundException":
            raise PublishError(f"DynamoDB table {table!r} does not exist (--dynamodb-table)") from exc
        raise PublishError(f"DynamoDB table {table!r} cannot be described: {code}") from exc
    except EndpointConnectionError as exc:
        raise PublishError(f"DynamoDB endpoint unreachable: {exc}") from exc
    keys = {k["AttributeName"]: k["KeyType"] for k in desc["KeySchema"]}
    if keys != {c.DDB_PARTITION_KEY: "HASH", c.DDB_SORT_KEY: "RANGE"}:
        raise PublishError(f"DynamoDB table {table!r} has keys {keys}; expected "
                           f"{c.DDB_PARTITION_KEY} (HASH, N) and {c.DDB_SORT_KEY} (RANGE, S)")


def _number(value: float, digits: int = 4) -> dict[str, str]:
    return {"N": str(Decimal(str(round(float(value), digits))))}


def recommendation_list(recs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The list attribute: rank, artist_id, score and, when the run predicts ratings,
    predicted_rating (absent otherwise: readers take a missing one as null)."""
    out = []
    for r in sorted(recs, key=lambda r: r[c.RANK]):
        entry: dict[str, Any] = {c.ARTIST_ID: {"N": str(int(r[c.ARTIST_ID]))}, c.SCORE: _number(r[c.SCORE]),
                                 c.RANK: {"N": str(int(r[c.RANK]))}}
        if r.get(c.PREDICTED_RATING) is not None:
            entry[c.PREDICTED_RATING] = _number(r[c.PREDICTED_RATING])
        if r.get(c.ARTIST_NAME):
            entry[c.ARTIST_NAME] = {"S": str(r[c.ARTIST_NAME])}
        out.append({"M": entry})
    return {"L": out}


def similar_list(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """An artist's list attribute: c.SIMILAR_ENTRY_COLUMNS per entry (the similar artist's id)
    and, when the run has names, the similar artist's name."""
    out = []
    for e in sorted(entries, key=lambda e: e[c.RANK]):
        entry: dict[str, Any] = {c.RANK: {"N": str(int(e[c.RANK]))}, c.ARTIST_ID: {"N": str(int(e[c.ARTIST_ID]))},
                                 # as ranked: equal shown values stay in artist-id order
                                 c.SIMILARITY: _number(e[c.SIMILARITY], c.SIMILARITY_DIGITS)}
        if e.get(c.ARTIST_NAME):
            entry[c.ARTIST_NAME] = {"S": str(e[c.ARTIST_NAME])}
        out.append({"M": entry})
    return {"L": out}


def expiry(generated_at: datetime, ttl_days: int) -> int:
    return int((generated_at + timedelta(days=ttl_days)).timestamp())


def user_item(user_id: int, run_id: str, recs: Iterable[dict[str, Any]], generated_at: datetime,
              ttl_days: int) -> dict[str, Any]:
    return {
        c.DDB_PARTITION_KEY: {"N": str(int(user_id))},
        c.DDB_SORT_KEY: {"S": run_id},
        c.DDB_RECOMMENDATIONS: recommendation_list(recs),
        c.DDB_GENERATED_AT: {"S": generated_at.isoformat()},
        c.DDB_TTL_ATTRIBUTE: {"N": str(expiry(generated_at, ttl_days))},
    }


def artist_item(artist_id: int, run_id: str, entries: Iterable[dict[str, Any]], generated_at: datetime,
                ttl_days: int, name: str | None = None) -> dict[str, Any]:
    """An artist's similar artists for a run (and the artist's own name, when the run has names),
    keyed like a user's item (c.ddb_artist_key): the same pointer flip publishes it and the same
    TTL expires it."""
    item = {
        c.DDB_PARTITION_KEY: {"N": str(c.ddb_artist_key(int(artist_id)))},
        c.DDB_SORT_KEY: {"S": run_id},
        c.DDB_SIMILAR: similar_list(entries),
        c.DDB_GENERATED_AT: {"S": generated_at.isoformat()},
        c.DDB_TTL_ATTRIBUTE: {"N": str(expiry(generated_at, ttl_days))},
    }
    if name:
        item[c.ARTIST_NAME] = {"S": str(name)}
    return item


def fallback_item(run_id: str, popular: Iterable[dict[str, Any]], generated_at: datetime,
                  ttl_days: int) -> dict[str, Any]:
    item = user_item(c.DDB_CONTROL_USER_ID, run_id, popular, generated_at, ttl_days)
    item[c.DDB_FALLBACK] = {"BOOL": True}
    return item


def write_batches(client: Any, table: str, items: Iterable[dict[str, Any]], *, max_attempts: int = 8,
                  base_delay_s: float = 0.05, max_delay_s: float = 5.0, writes_per_s: float = 0.0,
                  sleep: Callable[[float], None] = time.sleep) -> int:
    """PutRequests in batches of 25; unprocessed items and throttling are retried with
    exponential backoff and full jitter. Raises PublishError when a batch still has
    unprocessed items after max_attempts. Puts are idempotent, so a retried run is safe."""
    from botocore.exceptions import ClientError

    written = 0
    for batch in chunks(items, c.DDB_BATCH_SIZE):
        pending = [{"PutRequest": {"Item": item}} for item in batch]
        started = time.monotonic()
        for attempt in range(max_attempts):
            try:
                response = client.batch_write_item(RequestItems={table: pending})
                pending = response.get("UnprocessedItems", {}).get(table, [])
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in RETRYABLE:
                    raise PublishError(f"DynamoDB write to {table!r} failed: {exc}") from exc
            if not pending:
                break
            sleep(random.uniform(0, min(max_delay_s, base_delay_s * 2**attempt)))
        else:
            raise PublishError(f"DynamoDB write to {table!r}: {len(pending)} item(s) still unprocessed "
                               f"after {max_attempts} attempts (throttled); the active run is unchanged")
        written += len(batch)
        if writes_per_s > 0:
            sleep(max(0.0, len(batch) / writes_per_s - (time.monotonic() - started)))
    return written


def chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def pointer_key() -> dict[str, Any]:
    return {c.DDB_PARTITION_KEY: {"N": str(c.DDB_CONTROL_USER_ID)}, c.DDB_SORT_KEY: {"S": c.DDB_POINTER_SORT_KEY}}


def read_pointer(client: Any, table: str) -> c.ActivePointer | None:
    item = client.get_item(TableName=table, Key=pointer_key(), ConsistentRead=True).get("Item")
    return c.ActivePointer.from_item(item)


def run_is_loaded(client: Any, table: str, run_id: str) -> bool:
    """The fallback item is written last of a run's items, so its presence means complete."""
    key = {c.DDB_PARTITION_KEY: {"N": str(c.DDB_CONTROL_USER_ID)}, c.DDB_SORT_KEY: {"S": run_id}}
    return "Item" in client.get_item(TableName=table, Key=key, ConsistentRead=True)


def flip_pointer(client: Any, table: str, run_id: str, top_n: int, *, force: bool = False) -> None:
    """Makes run_id the active run; flipping to the already-active run changes nothing. The
    write is conditional, the guard against a concurrent publisher: the pointer must still be
    what was read and, unless forced (rollback), name an older run."""
    from botocore.exceptions import ClientError

    current = read_pointer(client, table)
    if current and current.run_id == run_id:
        return
    values: dict[str, Any] = {":run": {"S": run_id}, ":n": {"N": str(top_n)},
                              ":at": {"S": datetime.now(UTC).isoformat()}}
    update = f"SET {c.DDB_ACTIVE_RUN} = :run, {c.DDB_TOP_N} = :n, {c.DDB_UPDATED_AT} = :at"
    if current:
        values[":prev"] = {"S": current.run_id}
        update += f", {c.DDB_PREVIOUS_RUN} = :prev"
        condition = f"{c.DDB_ACTIVE_RUN} = :prev" + ("" if force else f" AND {c.DDB_ACTIVE_RUN} < :run")
    else:
        condition = f"attribute_not_exists({c.DDB_ACTIVE_RUN})"
    try:
        client.update_item(TableName=table, Key=pointer_key(), UpdateExpression=update,
                           ConditionExpression=condition, ExpressionAttributeValues=values)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        now = read_pointer(client, table)
        if now and now.run_id > run_id:
            raise PublishError(f"run {run_id} is older than the active run {now.run_id}: not replacing it "
                               "(use rollback to go back on purpose)") from exc
        raise PublishError(f"active-run pointer changed while publishing {run_id}; not replacing it") from exc


def write_user_items(settings: DynamoSettings, run_id: str, generated_at: datetime, writes_per_s: float,
                     rows: Iterable[dict[str, Any]]) -> None:
    """One Spark partition's users (rows of spark.per_user_lists), over the task's own client."""
    items = (user_item(row[c.USER_ID], run_id, row["recs"], generated_at, settings.ttl_days) for row in rows)
    write_batches(settings.client(), settings.table, items, max_attempts=settings.max_attempts,
                  base_delay_s=settings.base_delay_s, writes_per_s=writes_per_s)


def write_artist_items(settings: DynamoSettings, run_id: str, generated_at: datetime, writes_per_s: float,
                       rows: Iterable[dict[str, Any]]) -> None:
    """One Spark partition's artists (rows of spark.per_artist_lists), over the task's own client."""
    items = (artist_item(row[c.ARTIST_ID], run_id, row["similar"], generated_at, settings.ttl_days,
                         row.get(c.ARTIST_NAME)) for row in rows)
    write_batches(settings.client(), settings.table, items, max_attempts=settings.max_attempts,
                  base_delay_s=settings.base_delay_s, writes_per_s=writes_per_s)


@dataclass(frozen=True)
class StagedItems:
    users: int
    artists: int  # similar-artists items; 0 when the run has none


def _write_lists(settings: DynamoSettings, run_id: str, lists: Any, writer: Callable[..., None],
                 generated_at: datetime) -> int:
    """Items from each partition of `lists` (one row per key), the write rate shared among them."""
    share = settings.max_writes_per_s / spark.partitions(lists) if settings.max_writes_per_s else 0.0
    return spark.write_partitions(lists, partial(writer, settings, run_id, generated_at, share),
                                  f"DynamoDB publish of run {run_id} failed")


def stage_all_items(settings: DynamoSettings, run_id: str, recommendations: Any, popular: list[dict[str, Any]],
                    generated_at: datetime, similar: Any = None) -> StagedItems:
    """User items and artists' similar-artists items from Spark partitions, then the run's
    fallback item, written last so that its presence marks the run's items as complete."""
    users = _write_lists(settings, run_id, spark.per_user_lists(recommendations), write_user_items, generated_at)
    artists = (0 if similar is None else
               _write_lists(settings, run_id, spark.per_artist_lists(similar), write_artist_items, generated_at))
    write_batches(settings.client(), settings.table, [fallback_item(run_id, popular, generated_at, settings.ttl_days)],
                  max_attempts=settings.max_attempts, base_delay_s=settings.base_delay_s)
    return StagedItems(users, artists)


def stage_items(settings: DynamoSettings, run_id: str, recommendations: Any, popular: list[dict[str, Any]],
                generated_at: datetime) -> int:
    """A run without similar artists (benchmarks): returns the number of user items."""
    return stage_all_items(settings, run_id, recommendations, popular, generated_at).users


class DynamoSink:
    """Stages the run's items under its own run id; activating flips the pointer to it."""

    name = "dynamodb"

    def __init__(self, settings: DynamoSettings) -> None:
        self.settings = settings
        self.client = settings.client()
        self.before: c.ActivePointer | None = None  # the pointer as last read, for undo

    def check(self) -> None:
        check_table(self.client, self.settings.table)

    def active_run(self) -> str | None:
        self.before = read_pointer(self.client, self.settings.table)
        return self.before.run_id if self.before else None

    def stage(self, run: RunToPublish) -> dict[str, Any]:
        staged = stage_all_items(self.settings, run.run_id, run.recommendations, run.popular, datetime.now(UTC),
                                 run.similar)
        return {"dynamodb_items": staged.users, "dynamodb_similar_items": staged.artists}

    def activate(self, run: RunToPublish) -> None:
        flip_pointer(self.client, self.settings.table, run.run_id, run.top_n)

    def abandon(self, run: RunToPublish, reason: str) -> None:
        """The staged items stay unreferenced until their TTL removes them."""

    def undo(self, run: RunToPublish, previous: str | None) -> str:
        from botocore.exceptions import ClientError

        ours = {":ours": {"S": run.run_id}}
        try:
            if previous is None:  # the first run ever: the pointer names no run again (as readers
                # see a missing pointer; an UpdateItem, so the job needs no DeleteItem grant)
                self.client.update_item(TableName=self.settings.table, Key=pointer_key(),
                                        UpdateExpression=f"REMOVE {c.DDB_ACTIVE_RUN}, {c.DDB_PREVIOUS_RUN}",
                                        ConditionExpression=f"{c.DDB_ACTIVE_RUN} = :ours",
                                        ExpressionAttributeValues=ours)
                return "dynamodb pointer names no run again"
            # The pointer as it was before this run: its top_n (the API's limit on k) and its
            # previous run too, when publish_run read it (active_run) before flipping.
            before = self.before if self.before and self.before.run_id == previous else None
            values: dict[str, Any] = {**ours, ":prev": {"S": previous}, ":at": {"S": datetime.now(UTC).isoformat()}}
            update = f"SET {c.DDB_ACTIVE_RUN} = :prev, {c.DDB_UPDATED_AT} = :at"
            if before and before.top_n is not None:
                values[":n"] = {"N": str(before.top_n)}
                update += f", {c.DDB_TOP_N} = :n"
            if before and before.previous_run_id:
                values[":pp"] = {"S": before.previous_run_id}
                update += f", {c.DDB_PREVIOUS_RUN} = :pp"
            else:
                update += f" REMOVE {c.DDB_PREVIOUS_RUN}"
            self.client.update_item(TableName=self.settings.table, Key=pointer_key(), UpdateExpression=update,
                                    ConditionExpression=f"{c.DDB_ACTIVE_RUN} = :ours",
                                    ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return "dynamodb already names another run, left alone"
        return f"dynamodb rolled back to {previous}"

    def rollback(self, to: str) -> dict[str, Any]:
        if not run_is_loaded(self.client, self.settings.table, to):
            raise PublishError(f"run {to} has no complete item set in DynamoDB (expired or never "
                               "published): refusing to point serving at it")
        pointer = read_pointer(self.client, self.settings.table)
        flip_pointer(self.client, self.settings.table, to, (pointer and pointer.top_n) or 5, force=True)
        return {"dynamodb": "pointer flipped"}

    def close(self) -> None:
        pass
