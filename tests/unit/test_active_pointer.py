"""The active-run pointer item read in one place (contracts.ActivePointer): what the API and the
publishers see for a full item, an item without its optional attributes, and no item."""

from __future__ import annotations

from glue_jobs import contracts as c

RUN_A, RUN_B = "20261129T160000Z-aaaa", "20261130T160000Z-bbbb"
KEY = {c.DDB_PARTITION_KEY: {"N": str(c.DDB_CONTROL_USER_ID)}, c.DDB_SORT_KEY: {"S": c.DDB_POINTER_SORT_KEY}}


def test_a_full_item_gives_every_field_typed() -> None:
    item = {**KEY, c.DDB_ACTIVE_RUN: {"S": RUN_B}, c.DDB_TOP_N: {"N": "10"}, c.DDB_PREVIOUS_RUN: {"S": RUN_A},
            c.DDB_UPDATED_AT: {"S": "2026-11-30T16:00:00+00:00"}}
    pointer = c.ActivePointer.from_item(item)
    assert pointer == c.ActivePointer(run_id=RUN_B, top_n=10, previous_run_id=RUN_A,
                                      updated_at="2026-11-30T16:00:00+00:00")
    # The API's /runs/active body: the item's attribute names, in this order.
    assert list(pointer.as_status().items()) == [(c.DDB_ACTIVE_RUN, RUN_B), (c.DDB_PREVIOUS_RUN, RUN_A),
                                                 (c.DDB_TOP_N, 10), (c.DDB_UPDATED_AT, "2026-11-30T16:00:00+00:00")]


def test_an_item_without_optional_attributes_leaves_them_none() -> None:
    pointer = c.ActivePointer.from_item({**KEY, c.DDB_ACTIVE_RUN: {"S": RUN_A}})
    assert pointer == c.ActivePointer(run_id=RUN_A, top_n=None, previous_run_id=None, updated_at=None)
    assert pointer.as_status() == {c.DDB_ACTIVE_RUN: RUN_A, c.DDB_PREVIOUS_RUN: None, c.DDB_TOP_N: None,
                                   c.DDB_UPDATED_AT: None}


def test_no_item_or_no_active_run_is_no_pointer() -> None:
    assert c.ActivePointer.from_item(None) is None
    assert c.ActivePointer.from_item({}) is None
    assert c.ActivePointer.from_item({**KEY, c.DDB_TOP_N: {"N": "10"}}) is None
