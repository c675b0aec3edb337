"""What the API answers, independent of Lambda and HTTP: validation, the active-run pointer
(cached for a short time), one item read, the popularity fallback, and artists' similar artists."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from glue_jobs import contracts as c

ALLOWED_QUERY = frozenset({"k"})


class BadRequest(ValueError):
    """The caller's request is wrong; the message says how (safe to show)."""


class NotFound(LookupError):
    """Nothing published for what the caller asked about (safe to show)."""


class Unavailable(RuntimeError):
    """The store cannot answer now (missing table, throttling, nothing published)."""


def _parse_id(name: str, raw: str | None) -> int:
    if raw is None or not raw.isdigit():
        raise BadRequest(f"{name} must be a positive integer")
    value = int(raw)
    if not 1 <= value <= c.MAX_ID:
        raise BadRequest(f"{name} must be between 1 and {c.MAX_ID}")
    return value


def parse_user_id(raw: str | None) -> int:
    return _parse_id(c.USER_ID, raw)


def parse_artist_id(raw: str | None) -> int:
    return _parse_id(c.ARTIST_ID, raw)


def check_query(query: Mapping[str, str] | None) -> None:
    unknown = sorted(set(query or {}) - ALLOWED_QUERY)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}; only k is accepted")


def check_k_form(query: Mapping[str, str] | None) -> None:
    """Refuses, before any read, a k no stored list could make right (not a positive integer);
    its upper bound, the list's length, needs the item."""
    check_query(query)
    raw = (query or {}).get("k")
    if raw is not None and (not raw.isdigit() or int(raw) < 1):
        raise BadRequest(f"k must be a positive integer, got {raw!r}")


def parse_k(query: Mapping[str, str] | None, top_n: int) -> int:
    check_query(query)
    query = query or {}
    raw = query.get("k")
    if raw is None:
        return top_n
    if not raw.isdigit() or not 1 <= int(raw) <= top_n:
        raise BadRequest(f"k must be an integer between 1 and {top_n} (the published list length)")
    return int(raw)


def api_entry(entry: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """One list entry as the API answers it: every contract column, in that order (null where the
    item has none), then the rest (the artist's name when the run has names).

    Recommendations (c.LIST_ENTRY_COLUMNS): `score` is the ranking score (higher is better, never
    higher further down the list); `predicted_rating` is null for implicit feedback and for items
    written before the field existed. Similar artists (c.SIMILAR_ENTRY_COLUMNS): `artist_id` is the
    similar artist's, `similarity` the cosine of the two artists' factors."""
    ordered = {name: entry.get(name) for name in columns}
    return {**ordered, **{k: v for k, v in entry.items() if k not in ordered}}


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
        recs = [api_entry(rec, c.LIST_ENTRY_COLUMNS) for rec in c.plain_value(item[c.DDB_RECOMMENDATIONS])[:k]]
        return {c.USER_ID: user_id, "run_id": pointer.run_id, c.DDB_GENERATED_AT: item[c.DDB_GENERATED_AT]["S"],
                "fallback": fallback, "k": k, c.DDB_RECOMMENDATIONS: recs}

    def similar_artists(self, artist_id: int, query: Mapping[str, str] | None) -> dict[str, Any]:
        """The artist's list in the active run (the item c.ddb_artist_key(artist_id)); NotFound
        when that run has none for it (unknown artist, or too few ratings to have one)."""
        check_k_form(query)  # a malformed request is refused before any read, known artist or not
        pointer = self.pointer()
        item = self._get(c.ddb_artist_key(artist_id), pointer.run_id)
        entries = c.plain_value(item[c.DDB_SIMILAR]) if item and c.DDB_SIMILAR in item else []
        if not entries:
            raise NotFound(f"artist {artist_id} has no similar artists in the active run")
        assert item is not None
        k = parse_k(query, len(entries))
        own = {c.ARTIST_NAME: item[c.ARTIST_NAME]["S"]} if c.ARTIST_NAME in item else {}
        return {c.ARTIST_ID: artist_id, **own, "run_id": pointer.run_id,
                c.DDB_GENERATED_AT: item[c.DDB_GENERATED_AT]["S"], "k": k,
                "similar": [api_entry(e, c.SIMILAR_ENTRY_COLUMNS) for e in entries[:k]]}

    def active_run(self) -> dict[str, Any]:
        return self.pointer().as_status()
