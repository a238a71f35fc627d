"""The full sweep: one streaming pass that merges events and snapshots chain by chain.

It must find what the previous sweep found (every snapshot anchor in memory, then the events),
hold one chain at a time, and not mistake an event archived during the pass for a deleted one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.audit_memory import verify_all_in_memory
from services.archive import audit
from services.archive.archiver import Archiver
from services.archive.audit import ChainDocs, chain_order, merge_chains
from services.archive.chain import Break
from services.archive.settings import ArchiveTopics
from shared.lease import next_term
from tests import archive_samples as samples
from tests.archive_samples import record
from tests.component.archive_fake import InMemoryArchiveStore

TOPICS = ArchiveTopics()
Document = dict[str, Any]


async def _stream(docs: Iterable[Document]) -> AsyncIterator[Document]:
    for doc in docs:
        yield doc


def _events(*chains: tuple[str, int]) -> list[Document]:
    return [{"submission_id": c, "seq": s} for c, n in chains for s in range(n)]


def _snaps(*chains: tuple[str, int]) -> list[Document]:
    return [{"submission_id": c, "rank": r} for c, n in chains for r in range(n)]


async def _merged(events: list[Document], snaps: list[Document]) -> list[ChainDocs]:
    return [chain async for chain in merge_chains(_stream(events), _stream(snaps))]


async def test_merge_pairs_each_chain_and_keeps_chains_found_on_one_side_only() -> None:
    events = _events(("a", 2), ("c", 3), ("d", 1))
    snaps = _snaps(("b", 1), ("c", 2), ("e", 2))
    merged = await _merged(events, snaps)
    assert [(c.chain_id, len(c.events), len(c.snapshots)) for c in merged] == [
        ("a", 2, 0),  # events without a snapshot
        ("b", 0, 1),  # a snapshot whose events are gone
        ("c", 3, 2),
        ("d", 1, 0),
        ("e", 0, 2),  # snapshots after the last event
    ]
    assert [d["seq"] for d in merged[2].events] == [0, 1, 2]


async def test_merge_of_nothing_and_of_one_side_only() -> None:
    assert await _merged([], []) == []
    assert [c.chain_id for c in await _merged([], _snaps(("x", 1), ("y", 1)))] == ["x", "y"]
    assert [c.chain_id for c in await _merged(_events(("x", 1), ("y", 1)), [])] == ["x", "y"]


async def test_merge_follows_the_databases_order_of_ids_of_a_tampered_type() -> None:
    events: list[Document] = [
        {"seq": 0},
        {"submission_id": 7, "seq": 0},
        {"submission_id": "a", "seq": 0},
    ]
    snaps: list[Document] = [{"submission_id": None}, {"submission_id": "a"}]
    merged = await _merged(events, snaps)
    assert [(c.chain_id, len(c.events), len(c.snapshots)) for c in merged] == [
        (None, 1, 1),
        (7, 1, 0),
        ("a", 1, 1),
    ]
    assert sorted(["b", 3, None, "a", 1.5], key=chain_order) == [None, 1.5, 3, "a", "b"]


class Counted:
    """A source stream that records which chain each document it hands out belongs to."""

    def __init__(self, docs: Iterable[Document]) -> None:
        self._docs = docs
        self.taken: list[str] = []

    async def __aiter__(self) -> AsyncIterator[Document]:
        for doc in self._docs:
            self.taken.append(doc["submission_id"])
            yield doc

    def ahead(self, yielded: int) -> set[str]:
        """The chains of the documents taken but not yet yielded, but for the very last one."""
        return set(self.taken[yielded:-1])


async def test_merge_holds_one_chain_at_a_time_whatever_the_number_of_chains() -> None:
    chains = 5000
    ids = [f"chain-{i:05d}" for i in range(chains)]
    # Generators: nothing is materialised up front, the merge pulls what it needs.
    events = Counted({"submission_id": c, "seq": s} for c in ids for s in range(3))
    snaps = Counted({"submission_id": c, "rank": r} for c in ids[::2] for r in range(2))
    yielded_events = yielded_snaps = 0
    async for chain in merge_chains(aiter(events), aiter(snaps)):
        yielded_events += len(chain.events)
        yielded_snaps += len(chain.snapshots)
        # Each side is ahead of the caller by at most one chain and one document.
        assert len(events.ahead(yielded_events)) <= 1
        assert len(snaps.ahead(yielded_snaps)) <= 1
        assert len(events.taken) - yielded_events <= 3 + 1
        assert len(snaps.taken) - yielded_snaps <= 2 + 1
    assert (yielded_events, yielded_snaps) == (3 * chains, 2 * len(ids[::2]))


async def _archive(subs: int = 6) -> tuple[InMemoryArchiveStore, list[str]]:
    store, offset = InMemoryArchiveStore(), 0
    archiver = Archiver(store, TOPICS, cache_size=100)
    made = [samples.submission() for _ in range(subs)]
    for build, topic in (
        (samples.accepted, TOPICS.accepted),
        (samples.routed, TOPICS.routed),
        (samples.notified, TOPICS.notifications),
    ):
        batch = []
        for sub in made:
            offset += 1
            batch.append(record(topic, samples.encode(build(sub)), offset=offset))
        await archiver.archive(batch)
    return store, [sub.submission_id for sub in made]


def _found(breaks: list[Break]) -> list[tuple[str, int, str]]:
    return sorted((b.submission_id, b.seq, b.kind.value) for b in breaks)


def _event(store: InMemoryArchiveStore, chain: str, seq: int) -> Document:
    return next(d for d in store.events.values() if d["submission_id"] == chain and d["seq"] == seq)


async def _same_verdict_as_before(store: InMemoryArchiveStore) -> audit.Summary:
    summary = await audit.verify_all(store)
    before = await verify_all_in_memory(store)
    assert (summary.chains, summary.events) == (before.chains, before.events)
    assert _found(summary.breaks) == _found(before.breaks)
    return summary


async def test_an_intact_archive_verifies_as_before() -> None:
    store, chains = await _archive()
    summary = await _same_verdict_as_before(store)
    assert (summary.chains, summary.events, summary.breaks) == (len(chains), 3 * len(chains), [])


async def test_every_kind_of_tampering_is_found_as_before() -> None:
    store, chains = await _archive()
    edited = _event(store, chains[0], 1)
    edited["event"] = edited["event"].replace("istitlaa", "email")
    del store.events[_event(store, chains[1], 1)["_id"]]  # a middle event deleted
    del store.events[_event(store, chains[2], 2)["_id"]]  # the last one: only snapshots know
    for seq in range(3):  # a whole chain deleted: its snapshots remain
        del store.events[_event(store, chains[3], seq)["_id"]]
    moved = _event(store, chains[4], 2)
    moved["seq"] = 1  # two events now claim position 1
    summary = await _same_verdict_as_before(store)
    assert {(c, s) for c, s, _ in _found(summary.breaks)} >= {
        (chains[0], 1),
        (chains[1], 1),
        (chains[2], 2),
        (chains[3], 0),
        (chains[4], 1),
    }
    assert {k for c, _, k in _found(summary.breaks) if c == chains[3]} == {"deleted"}
    assert not [b for b in summary.breaks if b.submission_id == chains[5]]


class EventArrivesDuringThePass(InMemoryArchiveStore):
    """A store whose sweep cursor passed a chain before its last event (and snapshot) came."""

    def __init__(self, late_event_id: str) -> None:
        super().__init__()
        self.late = late_event_id

    async def all_events(self) -> AsyncIterator[Document]:
        async for doc in super().all_events():
            if doc["_id"] != self.late:
                yield doc


async def test_an_event_archived_during_the_pass_is_not_reported_as_deleted() -> None:
    built, chains = await _archive(3)
    late = _event(built, chains[1], 2)["_id"]
    store = EventArrivesDuringThePass(late)
    store.events, store.submissions = built.events, built.submissions
    summary = await audit.verify_all(store)
    assert summary.breaks == []
    assert summary.events == 3 * 3 - 1  # the pass itself did not see it

    del store.events[late]  # now it really is gone: the re-read confirms the break
    summary = await audit.verify_all(store)
    assert _found(summary.breaks) == [(chains[1], 2, "deleted")]


class CountedRereads(InMemoryArchiveStore):
    """Counts the chains re-read one query at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.rereads: list[int] = []

    async def snapshots(self, chain_ids: Sequence[str]) -> list[Document]:
        self.rereads.append(len(chain_ids))
        return await super().snapshots(chain_ids)


async def test_rechecks_are_batched_and_each_break_reported_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built, chains = await _archive(4)
    store = CountedRereads()
    store.events, store.submissions = built.events, built.submissions
    for chain in chains:
        del store.events[_event(store, chain, 2)["_id"]]
    monkeypatch.setattr(audit, "RECHECK_BATCH", 3)
    summary = await audit.verify_all(store)
    assert _found(summary.breaks) == sorted((c, 2, "deleted") for c in chains)
    assert store.rereads == [3, 1]


def test_a_lease_term_runs_until_it_expires_whoever_holds_it() -> None:
    now = datetime(2026, 12, 3, 8, tzinfo=UTC)
    first = next_term(None, "sweep", "a", now, ttl=3600)
    assert first is not None
    assert (first.term, first.holder, first.expires_at) == (0, "a", now + timedelta(hours=1))
    latest = first.document()
    assert next_term(latest, "sweep", "b", now + timedelta(minutes=59), ttl=3600) is None
    assert next_term(latest, "sweep", "a", now + timedelta(minutes=59), ttl=3600) is None
    second = next_term(latest, "sweep", "b", now + timedelta(hours=1, seconds=1), ttl=3600)
    assert second is not None
    assert (second.term, second.holder, second.document()["_id"]) == (1, "b", "sweep:1")
