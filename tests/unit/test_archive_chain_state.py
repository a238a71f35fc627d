"""The archive's chain-state cache: what one cached chain knows, and what it costs to keep."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

from services.archive.chain import Anchor, Head
from services.archive.projection import (
    FACT_FIELDS,
    ChainCache,
    ChainState,
    snapshot,
    state_from_store,
)
from services.archive.status import Status

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _stored_snapshot(index: int, **facts: str) -> dict[str, object]:
    # Values built at run time, as a decoder builds them: never the same object twice.
    return {
        "status": "routed",
        "rank": 2,
        "revision": len(facts),
        "channel": "".join(["web_", "portal"]),
        "unit": "".join(["legislations", "_office"]),
        "receipt_id": f"receipt-{index}",
        "created_at": NOW,
        **facts,
    }


def test_the_first_value_of_a_fact_wins_and_counts_once() -> None:
    state = ChainState()
    state.add_fact("unit", "voice_of_customer")
    state.add_fact("unit", "legislations_office")
    state.add_fact("channel", "")
    state.add_fact("kind", None)

    assert state.fact("unit") == "voice_of_customer"
    assert state.fact("channel") is None
    assert state.known == 1


def test_a_snapshot_carries_every_known_fact_and_no_unknown_one() -> None:
    state = state_from_store([{"seq": 0, "hash": "h0"}], [_stored_snapshot(1, kind="comment")])
    anchor = Anchor(0, "h0", "event-1", "")

    doc = snapshot(state, Status.ROUTED, NOW, anchor, "chain-1", NOW)

    assert {name: doc[name] for name in FACT_FIELDS if name in doc} == {
        "channel": "web_portal",
        "kind": "comment",
        "unit": "legislations_office",
        "receipt_id": "receipt-1",
    }
    assert doc["revision"] == state.known == 4
    assert state.head == Head(0, "h0")


def test_cached_chains_share_the_values_that_repeat_across_submissions() -> None:
    states = [state_from_store([], [_stored_snapshot(i)]) for i in range(3)]

    assert states[0].fact("unit") is states[1].fact("unit") is states[2].fact("unit")
    assert states[0].fact("channel") is states[2].fact("channel")
    assert states[0].fact("receipt_id") is not states[1].fact("receipt_id")


def test_a_cached_chain_costs_well_under_a_kilobyte() -> None:
    count = 2_000
    cache = ChainCache(count)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            head = {"seq": 2, "hash": f"{i:064x}"}
            state = state_from_store([head], [_stored_snapshot(i, kind="".join(["com", "ment"]))])
            cache.put(f"{i:08d}-0000-4000-8000-000000000000", state)
        per_chain = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()

    # The head-cache size's documented cost (settings.py) is ~0.75 KB a chain; a dict of facts
    # and uninterned values made it ~1.2 KB.
    assert per_chain < 900, per_chain
