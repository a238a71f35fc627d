"""Verification of the archive's hash chains: for `sada audit verify`, the API and the sweep.

Snapshots are read before events: a snapshot is only written after its event is stored, so
reading in this order never mistakes an event being archived right now for a deleted one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.archive import metrics
from services.archive.chain import Anchor, Break, verify_chain
from services.archive.projection import anchors_of
from services.archive.store import ArchiveStore
from shared.logging import get_logger

log = get_logger(__name__)


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


async def verify_submission(store: ArchiveStore, chain_id: str) -> ChainReport | None:
    """Verify one chain; None when the archive holds nothing under `chain_id`."""
    snapshots = await store.snapshots([chain_id])
    docs = await store.chain_events([chain_id])
    if not snapshots and not docs:
        return None
    breaks = verify_chain(chain_id, docs, anchors_of(snapshots))
    _count(breaks)
    return ChainReport(chain_id, len(docs), breaks)


async def verify_all(store: ArchiveStore) -> Summary:
    """Verify every chain, streaming the events one chain at a time."""
    anchors: dict[str, list[Anchor]] = defaultdict(list)
    async for snap in store.all_snapshots():
        anchors[str(snap.get("submission_id"))].extend(anchors_of([snap]))
    summary = Summary()
    chain: str | None = None
    docs: list[dict[str, Any]] = []
    async for doc in store.all_events():
        if doc.get("submission_id") != chain:
            if chain is not None:
                _add(summary, chain, docs, anchors.pop(chain, []))
            chain, docs = str(doc.get("submission_id")), []
        docs.append(doc)
    if chain is not None:
        _add(summary, chain, docs, anchors.pop(chain, []))
    for orphan, orphan_anchors in anchors.items():  # snapshots whose chain has no event left
        _add(summary, orphan, [], orphan_anchors)
    _count(summary.breaks)
    return summary


def _add(summary: Summary, chain: str, docs: list[dict[str, Any]], anchors: list[Anchor]) -> None:
    summary.chains += 1
    summary.events += len(docs)
    summary.breaks.extend(verify_chain(chain, docs, anchors))


def _count(breaks: Iterable[Break]) -> None:
    for found in breaks:
        metrics.CHAIN_BREAKS.labels(found.kind.value).inc()


class Sweeper:
    """Verifies the whole archive every `interval` seconds in the background (0 = never)."""

    def __init__(self, store: ArchiveStore, interval: float) -> None:
        self._store = store
        self._interval = interval
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
        while True:
            await asyncio.sleep(self._interval)
            try:
                summary = await verify_all(self._store)
            except Exception as exc:  # an outage: try again next time
                log.warning("chain verification sweep failed", error=type(exc).__name__)
                continue
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
