"""The batch work: put every consumed record on its chain, then project the statuses.

Appending without reading (the write path's only reads resolve duplicate keys):
1. parse every record first (a bad one raises before anything is written);
2. per chain, take the head from the in-process cache; a chain not in the cache is assumed
   empty (nearly always true: the cache holds every chain this process touched). The topics are
   consumed in parallel, so a `routed` or `notified` event often arrives before its `accepted`
   one: reading its head first would cost a full scan on FerretDB, guessing costs nothing;
3. insert the next event of every chain at `head.seq + 1` in one unordered `insert_many`, one
   event per chain per round, so a refused event never leaves a successor linked to it;
4. a refused event is either already archived (a redelivery: a no-op) or lost a race for its
   position to another replica or a stale head: the unique `(submission_id, seq)` index said so;
   the head is re-read and the event re-chained in the next round;
5. insert the status snapshots of what was appended (and of what was found already archived,
   which heals a crash between the two writes);
6. upsert the campaigns the batch's grouped events name (one idempotent upsert per campaign,
   repeated events included for the same reason: `campaigns.py`);
7. count the grouped events into the report aggregates, exactly once by a fence of Kafka
   positions (`aggregates.py`, `report_writer.py`);
8. add one leaf per record to its partition's Merkle log (`partition_log.py`), naming the stored
   event's hash: last, so a leaf never names an event that is not durable.
Before step 2, with a key vault, every entry's personal data is sealed under its submitter's
data key of the day (`privacy.py`): the chain hashes the ciphertext, never the plaintext.
The batch runner commits the offsets only after `archive` returns, i.e. after all are durable.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.archive import campaigns, metrics, report_writer
from services.archive.chain import Anchor, Head, seal
from services.archive.partition_log import PartitionLog
from services.archive.privacy import KeyVault
from services.archive.projection import ChainCache, ChainState, snapshot, state_from_store
from services.archive.records import Entry, read
from services.archive.settings import ArchiveTopics
from services.archive.status import RANK, STATUS_AT
from services.archive.store import ArchiveStore
from shared.kafka import Record
from shared.logging import get_logger
from shared.retry import TransientError

log = get_logger(__name__)

MAX_ROUNDS = 50
"""Rounds per batch before giving up as transient: only a storm of lost races gets near it."""

Document = dict[str, Any]


class Archiver:
    """Archives batches of Kafka records into an `ArchiveStore`."""

    def __init__(
        self,
        store: ArchiveStore,
        topics: ArchiveTopics,
        *,
        cache_size: int,
        partition_log: PartitionLog | None = None,
        keys: KeyVault | None = None,
    ) -> None:
        self._store = store
        self._log = partition_log
        self._keys = keys
        self._topics = topics
        self._cache = ChainCache(cache_size)
        self._indexed = False

    async def archive(self, records: Sequence[Record]) -> None:
        """Archive `records`; return only once they are durable (the caller then commits)."""
        if not self._indexed:  # the unique chain index must exist before the first append
            await self._store.ensure_indexes()
            self._indexed = True
        entries = [read(record, self._topics) for record in records]
        now = datetime.now(UTC)
        if self._keys is not None:  # personal data sealed before it is hashed (privacy.py)
            entries = await self._keys.protect(entries, now)
        batch = _Batch(self._cache, self._store, now=now)
        try:
            started = time.perf_counter()
            appended, repeated = await batch.append(entries)
            metrics.WRITE_SECONDS.labels("events").observe(time.perf_counter() - started)
            started = time.perf_counter()
            await batch.project(appended, repeated)
            metrics.WRITE_SECONDS.labels("submissions").observe(time.perf_counter() - started)
            started = time.perf_counter()
            if await batch.campaigns(appended, repeated):
                metrics.WRITE_SECONDS.labels("campaigns").observe(time.perf_counter() - started)
            started = time.perf_counter()
            facts = [entry.report for entry in entries if entry.report is not None]
            if await report_writer.count(self._store, facts):
                metrics.WRITE_SECONDS.labels("reports").observe(time.perf_counter() - started)
            if self._log is not None:  # last: each leaf names an event stored above
                started = time.perf_counter()
                await self._log.append(entries, batch.hashes)
                metrics.WRITE_SECONDS.labels("log").observe(time.perf_counter() - started)
        finally:
            batch.release()  # heads only ever advance on a successful insert: always true
        for topic, count in Counter(entry.topic for entry, _ in appended).items():
            metrics.EVENTS.labels(topic, "archived").inc(count)
        for topic, count in Counter(entry.topic for entry, _ in repeated).items():
            metrics.EVENTS.labels(topic, "duplicate").inc(count)
            metrics.DUPLICATES.labels(topic).inc(count)


class _Batch:
    """The chain states one batch works on, taken from the cache and given back to it."""

    def __init__(self, cache: ChainCache, store: ArchiveStore, *, now: datetime) -> None:
        self._cache = cache
        self._store = store
        self._now = now
        self._states: dict[str, ChainState] = {}
        self.hashes: dict[str, str] = {}
        """The stored chain hash of every event id appended or found archived."""

    def state(self, chain: str) -> ChainState:
        """Return the working state of `chain` (cached, or a new empty chain)."""
        state = self._states.get(chain)
        if state is None:
            state = self._cache.get(chain) or ChainState()
            self._states[chain] = state
        return state

    def release(self) -> None:
        """Give every working state back to the cache."""
        for chain, state in self._states.items():
            self._cache.put(chain, state)

    async def append(
        self, entries: list[Entry]
    ) -> tuple[list[tuple[Entry, Anchor]], list[tuple[Entry, Anchor | None]]]:
        """Chain `entries`; return (appended, already archived) with where each one sits."""
        queues: dict[str, deque[Entry]] = defaultdict(deque)
        repeated: list[tuple[Entry, Anchor | None]] = []
        seen: set[str] = set()
        for entry in sorted(entries, key=lambda e: (e.facts.rank, e.occurred_at)):
            if entry.event_id in seen:  # the same event twice in one batch
                repeated.append((entry, None))
                continue
            seen.add(entry.event_id)
            queues[entry.chain_id].append(entry)
        appended: list[tuple[Entry, Anchor]] = []
        for _ in range(MAX_ROUNDS):
            if not queues:
                return appended, repeated
            chains = list(queues)
            docs = [seal(queues[c][0], self.state(c).head, self._now) for c in chains]
            refused = await self._store.insert_events(docs)
            stored = (
                await self._store.find_events([docs[i]["_id"] for i in sorted(refused)])
                if refused
                else {}
            )
            stale: list[str] = []
            for i, (chain, doc) in enumerate(zip(chains, docs, strict=True)):
                if i not in refused:
                    self.hashes[doc["_id"]] = doc["hash"]
                    self.state(chain).head = Head(doc["seq"], doc["hash"])
                    anchor = Anchor(doc["seq"], doc["hash"], doc["_id"], "")
                    appended.append((queues[chain].popleft(), anchor))
                elif (existing := stored.get(doc["_id"])) is not None:
                    self.hashes[doc["_id"]] = str(existing.get("hash"))
                    repeated.append((queues[chain].popleft(), _anchor(existing, chain)))
                else:
                    stale.append(chain)
            if stale:
                metrics.CHAIN_CONFLICTS.inc(len(stale))
                log.info("chain position taken; re-reading heads", chains=len(stale))
                await self._load(stale)
            queues = {chain: queue for chain, queue in queues.items() if queue}
        raise TransientError(f"chain append did not settle in {MAX_ROUNDS} rounds")

    async def _load(self, chains: list[str]) -> None:
        """Read the heads and facts of `chains` from the store into the working states."""
        if not chains:
            return
        events: dict[str, list[Document]] = defaultdict(list)
        snaps: dict[str, list[Document]] = defaultdict(list)
        for doc in await self._store.chain_events(chains, brief=True):
            events[doc["submission_id"]].append(doc)
        for doc in await self._store.snapshots(chains):
            snaps[doc["submission_id"]].append(doc)
        for chain in chains:
            loaded = state_from_store(events[chain], snaps[chain])
            known = self._states.get(chain) or self._cache.get(chain)
            if known is None:
                self._states[chain] = loaded
                continue
            known.head = loaded.head  # facts learnt so far stay; the head is the store's
            if loaded.best_rank is not None and (loaded.best_rank, loaded.revision) > (
                -1 if known.best_rank is None else known.best_rank,
                known.revision,
            ):
                known.best_rank = loaded.best_rank
                known.revision = loaded.revision
                known.status_at = loaded.status_at
            self._states[chain] = known

    async def project(
        self,
        appended: list[tuple[Entry, Anchor]],
        repeated: list[tuple[Entry, Anchor | None]],
    ) -> None:
        """Insert a snapshot per chain when its status rose or it learnt facts.

        Repeated events count too: after a crash between the events and their snapshots, the
        redelivery finds the events stored and writes the missing snapshots.
        """
        best: dict[str, tuple[Entry, Anchor]] = {}
        known = [(e, a) for e, a in repeated if a is not None]
        for entry, anchor in [*appended, *known]:
            self.state(entry.chain_id).learn(entry)
            current = best.get(entry.chain_id)
            if current is None or entry.facts.rank > current[0].facts.rank:
                best[entry.chain_id] = (entry, anchor)
        docs, written = [], []
        for chain, (entry, anchor) in best.items():
            state = self.state(chain)
            if state.created_at is None:
                state.created_at = self._now
            if state.best_rank is None or entry.facts.rank > state.best_rank:
                status, status_at = entry.facts.status, entry.occurred_at
            elif state.known > state.revision and state.status_at is not None:
                status, status_at = STATUS_AT[state.best_rank], state.status_at  # new facts
            else:
                continue
            docs.append(snapshot(state, status, status_at, anchor, chain, self._now))
            written.append((state, RANK[status], status_at))
        await self._store.insert_snapshots(docs)
        for state, rank, status_at in written:
            state.best_rank, state.revision, state.status_at = rank, state.known, status_at

    async def campaigns(
        self,
        appended: list[tuple[Entry, Anchor]],
        repeated: list[tuple[Entry, Anchor | None]],
    ) -> bool:
        """Upsert the campaigns named by the batch's grouped events; return whether any were.

        Repeated events count, as for the snapshots; an event whose id sits on another chain
        (no anchor) does not.
        """
        known = [entry for entry, anchor in repeated if anchor is not None]
        members = [
            entry.campaign
            for entry in [*(entry for entry, _ in appended), *known]
            if entry.campaign is not None
        ]
        if not members:
            return False
        merged = campaigns.changes(members)
        await self._store.upsert_campaigns(
            [(m.campaign_id, campaigns.update(m, self._now)) for m in merged]
        )
        return True


def _anchor(doc: Document, chain: str) -> Anchor | None:
    """Return where a stored event sits, if on `chain` (an id reused elsewhere anchors nothing)."""
    seq, digest = doc.get("seq"), doc.get("hash")
    if doc.get("submission_id") == chain and isinstance(seq, int) and isinstance(digest, str):
        return Anchor(seq, digest, str(doc["_id"]), "")
    return None
