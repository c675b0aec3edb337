"""What the API answers, independent of Lambda and HTTP: validation, the active-run pointer
(cached for a short time), one item read, and the popularity fallback."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from glue_jobs import contracts as c

ALLOWED_QUERY = frozenset({"k"})


class BadRequest(ValueError):
    """The caller's request is wrong; the message says how (safe to show)."""


class Unavailable(RuntimeError):
    """The store cannot answer now (missing table, throttling, nothing published)."""


def parse_user_id(raw: str | None) -> int:
    if raw is None or not raw.isdigit():
        raise BadRequest("user_id must be a positive integer")
    user_id = int(raw)
    if not 1 <= user_id <= c.MAX_ID:
        raise BadRequest(f"user_id must be between 1 and {c.MAX_ID}")
    return user_id


def parse_k(query: Mapping[str, str] | None, top_n: int) -> int:
    query = query or {}
    unknown = sorted(set(query) - ALLOWED_QUERY)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}; only k is accepted")
    raw = query.get("k")
    if raw is None:
        return top_n
    if not raw.isdigit() or not 1 <= int(raw) <= top_n:
        raise BadRequest(f"k must be an integer between 1 and {top_n} (the published list length)")
    return int(raw)


def list_entry(rec: dict[str, Any]) -> dict[str, Any]:
    """One recommendation as the API answers it: every c.LIST_ENTRY_COLUMNS field, in that order,
    then the artist's name when the item has one. `score` is the ranking score (higher is better,
    never higher further down the list); `predicted_rating` is null where the item has none
    (implicit feedback, or an item written before the field existed)."""
    entry = {name: rec.get(name) for name in c.LIST_ENTRY_COLUMNS}
    return {**entry, **{k: v for k, v in rec.items() if k not in entry}}


class RecommendationStore:
    """Reads the serving table through a boto3 DynamoDB client (low-level API)."""

    def __init__(self, client: Any, table: str, pointer_ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.table, self.pointer_ttl_s, self.clock = client, table, pointer_ttl_s, clock
        self._pointer: c.ActivePointer | None = None
        self._pointer_read_at = float("-inf")

    def _get(self, user_id: int, sort_key: str, consistent: bool = False) -> dict[str, Any] | None:
        key = {c.DDB_PARTITION_KEY: {"N": str(user_id)}, c.DDB_SORT_KEY: {"S": sort_key}}
        try:
            item: dict[str, Any] | None = self.client.get_item(
                TableName=self.table, Key=key, ConsistentRead=consistent).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise Unavailable(type(exc).__name__) from exc
        return item

    def pointer(self) -> c.ActivePointer:
        """The active run, re-read at most every pointer_ttl_s seconds."""
        now = self.clock()
        if self._pointer is None or now - self._pointer_read_at >= self.pointer_ttl_s:
            pointer = c.ActivePointer.from_item(self._get(c.DDB_CONTROL_USER_ID, c.DDB_POINTER_SORT_KEY,
                                                          consistent=True))
            if pointer is None:
                raise Unavailable("no run has been published yet")
            self._pointer, self._pointer_read_at = pointer, now
        return self._pointer

    def recommendations(self, user_id: int, query: Mapping[str, str] | None) -> dict[str, Any]:
        pointer = self.pointer()
        if pointer.top_n is None:  # the sink always writes it: without it no k can be checked
            raise Unavailable(f"the pointer to run {pointer.run_id} has no {c.DDB_TOP_N}")
        k = parse_k(query, pointer.top_n)
        item = self._get(user_id, pointer.run_id)
        fallback = item is None
        if fallback:
            item = self._get(c.DDB_CONTROL_USER_ID, pointer.run_id)
            if item is None:
                raise Unavailable(f"run {pointer.run_id} has no fallback list")
        assert item is not None
        recs = [list_entry(rec) for rec in c.plain_value(item[c.DDB_RECOMMENDATIONS])[:k]]
        return {c.USER_ID: user_id, "run_id": pointer.run_id, c.DDB_GENERATED_AT: item[c.DDB_GENERATED_AT]["S"],
                "fallback": fallback, "k": k, c.DDB_RECOMMENDATIONS: recs}

    def active_run(self) -> dict[str, Any]:
        return self.pointer().as_status()
