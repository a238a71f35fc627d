"""Verification of the archive's hash chains: for `sada audit verify`, the API and the sweep.

The full sweep streams both collections in chain order (`submission_id`, then position) and
merges them in one pass (`merge_chains`), so it holds one chain at a time, whatever the size of
the archive: memory stays flat (figures in docs/audit.md).

A snapshot is only written after its event is stored, so reading a chain's snapshots before its
events never mistakes an event being archived right now for a deleted one. The single pass reads
both at once, so a chain whose snapshot names an event the pass did not see is read again that
way (snapshots, then events) before anything is reported: the verdicts are those of a reading in
that order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pymongo

from services.archive import metrics
from services.archive.chain import Anchor, Break, verify_chain
from services.archive.projection import anchors_of
from services.archive.store import ArchiveStore
from shared.lease import Lease
from shared.logging import get_logger

log = get_logger(__name__)

Document = dict[str, Any]

RECHECK_BATCH: Final = 500
"""Chains re-read together when the pass may have raced: two queries per batch (each a scan of
the collection on FerretDB), and a few MB of documents (a chain is ~4 events, ~4 snapshots)."""


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The verification of one chain."""

    submission_id: str
    events: int
    breaks: list[Break]

    @property
    def ok(self) -> bool:
        """True when no link is broken."""
        return not self.breaks


@dataclass(slots=True)
class Summary:
    """The verification of the whole archive."""

    chains: int = 0
    events: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no link is broken anywhere."""
        return not self.breaks


@dataclass(frozen=True, slots=True)
class ChainDocs:
    """One chain as the merge hands it out: its events (by position) and its snapshots."""

    chain_id: Any
    """The stored `submission_id` (a string, unless someone tampered with it)."""
    events: list[Document]
    snapshots: list[Document]


async def verify_submission(store: ArchiveStore, chain_id: str) -> ChainReport | None:
    """Verify one chain; None when the archive holds nothing under `chain_id`."""
    snapshots = await store.snapshots([chain_id])
    docs = await store.chain_events([chain_id])
    if not snapshots and not docs:
        return None
    breaks = verify_chain(chain_id, docs, anchors_of(snapshots))
    _count(breaks)
    return ChainReport(chain_id, len(docs), breaks)


async def verify_all(store: ArchiveStore, *, time_limit: float | None = None) -> Summary:
    """Verify every chain in one streaming pass over events and snapshots, in chain order.

    `time_limit` (seconds) bounds the whole pass and lets each read wait that long: FerretDB
    answers a sorted read only once it has sorted the whole collection, which takes far longer
    than the client's socket timeout on a large archive.
    """
    if time_limit is None:
        return await _verify_all(store)
    with pymongo.timeout(time_limit):
        return await _verify_all(store)


async def _verify_all(store: ArchiveStore) -> Summary:
    summary = Summary()
    suspects: list[Any] = []
    merged = merge_chains(store.all_events(), store.all_snapshots())
    async for chain in merged:
        summary.chains += 1
        summary.events += len(chain.events)
        anchors = anchors_of(chain.snapshots)
        breaks = verify_chain(str(chain.chain_id), chain.events, anchors)
        if breaks and _may_have_raced(chain.events, anchors):
            suspects.append(chain.chain_id)
            if len(suspects) >= RECHECK_BATCH:
                summary.breaks.extend(await _recheck(store, suspects))
                suspects = []
        else:
            summary.breaks.extend(breaks)
    if suspects:
        summary.breaks.extend(await _recheck(store, suspects))
    _count(summary.breaks)
    return summary


async def merge_chains(
    events: AsyncIterator[Document], snapshots: AsyncIterator[Document]
) -> AsyncIterator[ChainDocs]:
    """Yield each chain's events and snapshots together, from two streams in chain order.

    Both streams must be sorted by `submission_id` (the events then by `seq`), as the database
    sorts them. Besides the chain it yields, each side holds at most one more chain and one
    document (the one that ends a group). A chain with snapshots but no event left, or events
    but no snapshot, is yielded too.
    """
    event_groups, snapshot_groups = _groups(events), _groups(snapshots)
    pending_events = await anext(event_groups, None)
    pending_snapshots = await anext(snapshot_groups, None)
    while pending_events is not None or pending_snapshots is not None:
        take_events = pending_events is not None and (
            pending_snapshots is None
            or chain_order(pending_events[0]) <= chain_order(pending_snapshots[0])
        )
        take_snapshots = pending_snapshots is not None and (
            pending_events is None
            or chain_order(pending_snapshots[0]) <= chain_order(pending_events[0])
        )
        chain: Any = None
        docs: list[Document] = []
        snaps: list[Document] = []
        if take_snapshots and pending_snapshots is not None:
            chain, snaps = pending_snapshots
            pending_snapshots = None
        if take_events and pending_events is not None:
            chain, docs = pending_events  # the events' own id when both name the chain
            pending_events = None
        yield ChainDocs(chain, docs, snaps)
        # Read on only now, so a side runs ahead by at most one chain and one document.
        if take_events:
            pending_events = await anext(event_groups, None)
        if take_snapshots:
            pending_snapshots = await anext(snapshot_groups, None)


def chain_order(chain_id: Any) -> tuple[int, Any]:
    """Return a sort key that orders chain ids as MongoDB does (null, numbers, strings, others).

    Ids are strings unless tampered with; a tampered type only needs a stable, comparable key.
    """
    if chain_id is None:
        return (0, "")
    if isinstance(chain_id, bool):
        return (4, int(chain_id))
    if isinstance(chain_id, int | float):
        return (1, chain_id)
    if isinstance(chain_id, str):
        return (2, chain_id)
    return (3, repr(chain_id))


async def _groups(docs: AsyncIterator[Document]) -> AsyncIterator[tuple[Any, list[Document]]]:
    """Yield runs of consecutive documents with the same `submission_id`."""
    chain: Any = None
    group: list[Document] = []
    async for doc in docs:
        key = doc.get("submission_id")
        if group and key != chain:
            yield chain, group
            group = []
        chain = key
        group.append(doc)
    if group:
        yield chain, group


def _may_have_raced(docs: list[Document], anchors: list[Anchor]) -> bool:
    """Whether a snapshot names a position the pass did not see (written during the pass?)."""
    seen = {doc.get("seq") for doc in docs}
    return any(anchor.seq not in seen for anchor in anchors)


async def _recheck(store: ArchiveStore, chains: list[Any]) -> list[Break]:
    """Verify `chains` again, snapshots read before events (see the module docstring)."""
    snapshots: dict[Any, list[Document]] = {chain: [] for chain in chains}
    events: dict[Any, list[Document]] = {chain: [] for chain in chains}
    for snap in await store.snapshots(chains):
        snapshots.setdefault(snap.get("submission_id"), []).append(snap)
    for doc in await store.chain_events(chains):
        events.setdefault(doc.get("submission_id"), []).append(doc)
    breaks: list[Break] = []
    for chain in chains:
        breaks.extend(verify_chain(str(chain), events[chain], anchors_of(snapshots[chain])))
    return breaks


def _count(breaks: Iterable[Break]) -> None:
    for found in breaks:
        metrics.CHAIN_BREAKS.labels(found.kind.value).inc()


class Sweeper:
    """Verifies the whole archive every `interval` seconds in the background (0 = never).

    With a `lease`, the replicas share the work: each asks every `poll` seconds (after a first
    wait of one interval), and whichever takes the lease's next term (one per `interval`,
    cluster-wide) runs the sweep. Without one, this process sweeps every `interval` seconds.
    """

    def __init__(
        self,
        store: ArchiveStore,
        interval: float,
        *,
        lease: Lease | None = None,
        poll: float = 60.0,
        timeout: float | None = None,
    ) -> None:
        self._store = store
        self._interval = interval
        self._timeout = timeout
        self._lease = lease
        self._poll = min(poll, interval) if lease is not None else interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start sweeping (a no-op when the interval is 0)."""
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="archive-verify-sweep")

    async def stop(self) -> None:
        """Stop sweeping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        # The first attempt waits a whole interval, as a single replica always has: a service
        # just started (a deploy, a test, a benchmark) is not loaded with a sweep at once.
        await asyncio.sleep(self._interval)
        while True:
            await self.sweep_if_due()
            await asyncio.sleep(self._poll)

    async def sweep_if_due(self) -> Summary | None:
        """Sweep now if this process holds the lease's next term (always, without a lease)."""
        try:
            if self._lease is not None and not await self._lease.acquire(datetime.now(UTC)):
                return None
            summary = await verify_all(self._store, time_limit=self._timeout)
        except Exception as exc:  # an outage: try again next time
            log.warning("chain verification sweep failed", error=type(exc).__name__)
            return None
        metrics.CHAIN_BREAKS_LAST_SWEEP.set(len(summary.breaks))
        if summary.breaks:
            log.error(
                "archive chains are broken",
                chains=summary.chains,
                events=summary.events,
                breaks=len(summary.breaks),
            )
        else:
            log.info("archive chains verified", chains=summary.chains, events=summary.events)
        return summary
