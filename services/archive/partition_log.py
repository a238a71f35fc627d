"""The log-wide tamper-evident structure: one Merkle log per Kafka (topic, partition).

Every consumed Kafka record (a new event or a redelivered duplicate alike) becomes one leaf of
its partition's log, in offset order. The leaf covers the canonical text of (topic, partition,
offset, event_id, the STORED event's chain `hash`), so it pins both where the record sat in Kafka
and which event the archive holds for it; the per-submission chains pin the event's content.

Collections (the archive's database):
- `log_leaves`: `_id` = "<topic>/<partition>/<index>", index dense 0..n-1 per partition, with
  topic, partition, index, offset, event_id, submission_id, reference, hash and `leaf` (hex);
- `log_heads`: `_id` = "<topic>/<partition>", size, last_offset, frontier (the O(log n) subtree
  roots, `merkle.Frontier`). Records at or below `last_offset` are logged already (a redelivery)
  and skipped.

The write path (after the batch's events and snapshots are durable, before the offsets are
committed) reads only by `_id`: one consumer group member writes a partition at a time, so the
head stays in memory; one unordered insert of every new leaf, then one conditional update of
each head (`size` as read). A duplicate leaf `_id` with the same content is a redelivery after
a crash (fine); other content, or a lost condition, means another writer took the partition
(a rebalance): the head is reloaded and the batch retried (`TransientError`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from services.archive import checkpoints, metrics
from services.archive.merkle import Frontier, leaf_hash
from services.archive.records import Entry, canonical_json
from shared.logging import get_logger
from shared.mongo import insert_unordered
from shared.retry import TransientError

log = get_logger(__name__)

Document = dict[str, Any]

LEAVES = "log_leaves"
HEADS = "log_heads"
LEAF_FIELDS = ("topic", "partition", "offset", "event_id", "hash")
"""What a leaf's hash covers (besides its position, given by the tree)."""


def log_name(topic: str, partition: int) -> str:
    """Return the name of a partition's log, "<topic>/<partition>"."""
    return f"{topic}/{partition}"


def leaf_data(topic: str, partition: int, offset: int, event_id: str, digest: str) -> bytes:
    """Return the canonical text a leaf hashes (JSON, sorted keys)."""
    fields = {
        "event_id": event_id,
        "hash": digest,
        "offset": offset,
        "partition": partition,
        "topic": topic,
    }
    return canonical_json(fields).encode()


def leaf_of(doc: Mapping[str, Any]) -> bytes | None:
    """Return the leaf hash recomputed from a `log_leaves` document's fields (None: malformed)."""
    topic, partition, offset = doc.get("topic"), doc.get("partition"), doc.get("offset")
    event_id, digest = doc.get("event_id"), doc.get("hash")
    if not (isinstance(topic, str) and isinstance(event_id, str) and isinstance(digest, str)):
        return None
    if not (isinstance(partition, int) and isinstance(offset, int)):
        return None
    return leaf_hash(leaf_data(topic, partition, offset, event_id, digest))


class LogStore(Protocol):
    """What the partition logs need from the database."""

    async def head(self, name: str) -> Document | None:
        """Return the head of log `name` (by `_id`), None when it has none yet."""

    async def insert_leaves(self, docs: Sequence[Document]) -> set[int]:
        """Insert `docs` unordered; return the indexes refused for a duplicate `_id`."""

    async def leaves(self, ids: Sequence[str]) -> dict[str, Document]:
        """Return the stored leaves among `ids`."""

    async def insert_head(self, doc: Document) -> bool:
        """Insert a new head; False when one exists already."""

    async def update_head(self, name: str, size: int, fields: Document) -> bool:
        """Set `fields` on the head of `name` if its size is still `size`; False otherwise."""


class MongoLogStore:
    """`LogStore` on MongoDB or FerretDB, plus the streaming reads of `sada audit`."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        db = client[database]
        self.leaf_docs: AsyncCollection[Document] = db[LEAVES]
        self.heads: AsyncCollection[Document] = db[HEADS]
        self.event_docs: AsyncCollection[Document] = db["events"]

    async def head(self, name: str) -> Document | None:
        """Return the head of log `name` (by `_id`), None when it has none yet."""
        return await self.heads.find_one({"_id": name})

    async def insert_leaves(self, docs: Sequence[Document]) -> set[int]:
        """Insert `docs` unordered; return the indexes refused for a duplicate `_id`."""
        return await insert_unordered(self.leaf_docs, docs)

    async def leaves(self, ids: Sequence[str]) -> dict[str, Document]:
        """Return the stored leaves among `ids` (rare: after a crash or a rebalance)."""
        if not ids:
            return {}
        return {doc["_id"]: doc async for doc in self.leaf_docs.find({"_id": {"$in": list(ids)}})}

    async def insert_head(self, doc: Document) -> bool:
        """Insert a new head; False when one exists already."""
        return not await insert_unordered(self.heads, [doc])

    async def update_head(self, name: str, size: int, fields: Document) -> bool:
        """Set `fields` on the head of `name` if its size is still `size`; False otherwise."""
        result = await self.heads.update_one({"_id": name, "size": size}, {"$set": fields})
        return result.matched_count == 1

    async def all_heads(self) -> list[Document]:
        """Return every head (one per partition: a small collection)."""
        return [doc async for doc in self.heads.find({})]

    async def all_leaves(self, batch_size: int = 1000) -> AsyncIterator[Document]:
        """Yield every leaf ordered by (topic, partition, index)."""
        cursor = self.leaf_docs.find({}, batch_size=batch_size, allow_disk_use=True).sort(
            [("topic", ASCENDING), ("partition", ASCENDING), ("index", ASCENDING)]
        )
        async for doc in cursor:
            yield doc

    async def log_leaves(
        self, topic: str, partition: int, size: int, batch_size: int = 1000
    ) -> AsyncIterator[Document]:
        """Yield the first `size` leaves of one log, by index."""
        cursor = self.leaf_docs.find(
            {"topic": topic, "partition": partition, "index": {"$lt": size}},
            batch_size=batch_size,
            allow_disk_use=True,
        ).sort([("index", ASCENDING)])
        async for doc in cursor:
            yield doc

    async def leaves_of_events(self, event_ids: Sequence[str]) -> list[Document]:
        """Return the leaves naming `event_ids` (an operator command: a scan on FerretDB)."""
        if not event_ids:
            return []
        return [doc async for doc in self.leaf_docs.find({"event_id": {"$in": list(event_ids)}})]

    async def events_by_position(self, batch_size: int = 1000) -> AsyncIterator[Document]:
        """Yield the Kafka-fed events ordered by (topic, partition, offset), brief fields."""
        fields = {
            "submission_id": 1,
            "reference": 1,
            "topic": 1,
            "partition": 1,
            "offset": 1,
            "hash": 1,
            "prev_hash": 1,
            "event": 1,
        }
        cursor = self.event_docs.find(
            {"offset": {"$exists": True}}, fields, batch_size=batch_size, allow_disk_use=True
        ).sort([("topic", ASCENDING), ("partition", ASCENDING), ("offset", ASCENDING)])
        async for doc in cursor:
            yield doc

    async def events(self, event_ids: Sequence[str]) -> dict[str, Document]:
        """Return the stored events among `event_ids` (brief fields)."""
        if not event_ids:
            return {}
        cursor = self.event_docs.find(
            {"_id": {"$in": list(event_ids)}},
            {"submission_id": 1, "topic": 1, "partition": 1, "offset": 1, "hash": 1},
        )
        return {doc["_id"]: doc async for doc in cursor}


@dataclass(slots=True)
class _Head:
    size: int
    last_offset: int
    frontier: Frontier
    stored: bool
    """Whether a head document exists (else the first append inserts it)."""


@dataclass(frozen=True, slots=True)
class LogState:
    """A log's size and root as this process last made them durable."""

    name: str
    size: int
    root: str


class PartitionLog:
    """Appends each batch's records to their partitions' logs (one writer per partition)."""

    def __init__(self, store: LogStore) -> None:
        self._store = store
        self._heads: dict[str, _Head] = {}
        self._advanced: dict[str, LogState] = {}

    async def append(self, entries: Sequence[Entry], hashes: Mapping[str, str]) -> int:
        """Log every entry not logged yet; `hashes` gives each event id's stored chain hash.

        Return how many leaves were added. Raise `TransientError` when another writer has
        advanced a partition meanwhile (the head is reloaded; the retried batch skips what it
        logged).
        """
        by_log: dict[str, list[Entry]] = defaultdict(list)
        for entry in entries:
            by_log[log_name(entry.topic, entry.partition)].append(entry)
        docs: list[Document] = []
        updates: list[tuple[str, _Head, _Head]] = []
        for name, group in by_log.items():
            head = await self._head(name)
            frontier = head.frontier.copy()
            last = head.last_offset
            for entry in sorted(group, key=lambda e: e.offset):
                if entry.offset <= last:
                    continue  # logged already: a redelivery
                digest = hashes.get(entry.event_id)
                if digest is None:
                    raise TransientError(f"no stored hash for event {entry.event_id}")
                data = leaf_data(entry.topic, entry.partition, entry.offset, entry.event_id, digest)
                leaf = leaf_hash(data)
                docs.append(
                    {
                        "_id": f"{name}/{frontier.size}",
                        "topic": entry.topic,
                        "partition": entry.partition,
                        "index": frontier.size,
                        "offset": entry.offset,
                        "event_id": entry.event_id,
                        "submission_id": entry.chain_id,
                        "reference": entry.reference,
                        "hash": digest,
                        "leaf": leaf.hex(),
                    }
                )
                frontier.append(leaf)
                last = entry.offset
            if frontier.size > head.size:
                updates.append((name, head, _Head(frontier.size, last, frontier, True)))
        if not docs:
            return 0
        refused = await self._store.insert_leaves(docs)
        if refused:
            await self._check_refused([docs[i] for i in sorted(refused)])
        for name, old, new in updates:
            fields: Document = {"size": new.size, "last_offset": new.last_offset}
            fields["frontier"] = new.frontier.to_hex()
            won = (
                await self._store.update_head(name, old.size, fields)
                if old.stored
                else await self._store.insert_head({"_id": name, **fields})
            )
            if not won:
                self._heads.pop(name, None)
                log.warning("partition log head moved; reloading", log=name)
                raise TransientError(f"the head of log {name} moved (another writer?)")
            self._heads[name] = new
            self._advanced[name] = LogState(name, new.size, new.frontier.root().hex())
        return len(docs)

    def take_advanced(self) -> list[LogState]:
        """Return the logs advanced since the last call, as this process made them durable."""
        advanced, self._advanced = list(self._advanced.values()), {}
        return advanced

    def put_back(self, states: Sequence[LogState]) -> None:
        """Return states taken but not checkpointed (newer ones advanced meanwhile win)."""
        for state in states:
            self._advanced.setdefault(state.name, state)

    async def _head(self, name: str) -> _Head:
        head = self._heads.get(name)
        if head is None:
            doc = await self._store.head(name)
            if doc is None:
                head = _Head(0, -1, Frontier(), stored=False)
            else:
                frontier = Frontier.from_hex(int(doc["size"]), doc.get("frontier") or [])
                head = _Head(frontier.size, int(doc["last_offset"]), frontier, stored=True)
            self._heads[name] = head
        return head

    async def _check_refused(self, docs: list[Document]) -> None:
        """Accept leaves stored already with the same content; else reload and retry."""
        stored = await self._store.leaves([doc["_id"] for doc in docs])
        for doc in docs:
            if stored.get(doc["_id"]) != doc:
                name = log_name(doc["topic"], doc["partition"])
                self._heads.pop(name, None)
                log.warning("partition log position taken; reloading", log=name)
                raise TransientError(f"leaf {doc['_id']} is taken by another record")


class Checkpointer:
    """Signs the heads this process advanced, every `interval` seconds and at shutdown."""

    def __init__(
        self,
        partition_log: PartitionLog,
        key: Ed25519PrivateKey,
        witness: checkpoints.Witness,
        interval: float,
    ) -> None:
        self._log = partition_log
        self._key = key
        self._witness = witness
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start checkpointing in the background."""
        self._task = asyncio.create_task(self._run(), name="archive-log-checkpoints")

    async def stop(self) -> None:
        """Stop, then sign what was advanced since the last checkpoint."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            self.checkpoint()
        except Exception as exc:  # shutdown goes on: the next writer signs what is pending
            metrics.LOG_CHECKPOINT_FAILURES.inc()
            log.error("log checkpoint not written at shutdown", error=type(exc).__name__)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.checkpoint()
            except Exception as exc:  # a full or missing witness disk: said loudly, retried
                metrics.LOG_CHECKPOINT_FAILURES.inc()
                log.error("log checkpoint not written", error=type(exc).__name__)

    def checkpoint(self, now: datetime | None = None) -> list[checkpoints.Checkpoint]:
        """Sign and write the advanced logs now; return the checkpoints written."""
        now = now or datetime.now(UTC)
        states = self._log.take_advanced()
        if not states:
            return []
        signed = [checkpoints.sign(self._key, s.name, s.size, s.root, now) for s in states]
        try:
            path = self._witness.append(signed, now)
        except Exception:
            self._log.put_back(states)  # signed again next time
            raise
        metrics.LOG_CHECKPOINTS.inc(len(signed))
        for checkpoint in signed:
            log.info(
                "log checkpoint",
                log=checkpoint.log,
                size=checkpoint.size,
                root=checkpoint.root,
                at=checkpoint.at,
                key_id=checkpoint.key_id,
                signature=checkpoint.signature,
                witness=path.name,
            )
        return signed
