"""Each scope's grouping state, persisted in MongoDB so a restart or a rebalance forgets nothing.

The decisions are made in memory (`grouping.MemoryStore`, one per process) by the consumer that
owns a scope's partition; MongoDB holds what that memory is rebuilt from:

- `campaign_scopes`: per scope, how many decisions it has applied (`seq`) and the Kafka position
  of the last one. Written **last** in a batch, conditionally on the `seq` read before it: the
  commit point of a batch, and the fence against two consumers deciding one scope at once.
- `campaign_texts`: per distinct normalised text of a scope, its first member, its campaign's
  first member and, for a near-identical candidate, its shingle hashes and MinHash values.
- `campaign_sizes`: per campaign, its size and the `seq` of its last member.
- `campaign_decisions`: per routed event, the decision published for it, so a batch redelivered
  after a crash publishes the very same decisions rather than deciding again.

A batch that failed half-way leaves texts, sizes or decisions with a `seq` past its scope's: a
reload ignores them (texts) or falls back to the decisions (sizes), and the redone batch writes
the same documents again (duplicate keys and `$max` make that a no-op).

Only features both FerretDB 1.24 and MongoDB 7 support (shared/mongo.py). FerretDB scans a
collection for every query, so the hot path reads only `campaign_scopes` (one document per
scope); the larger collections are read when a scope is (re)loaded, or for a redelivered batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

import numpy as np
from bson import Binary
from datasketch import MinHash
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services.campaigns.grouping import (
    MAX_EXACT,
    NUM_PERM,
    Grouping,
    Indexed,
    Member,
    MemoryStore,
    campaign_id,
    new_minhash,
)
from shared.mongo import Document, bulk_write_chunked, insert_unordered
from shared.retry import TransientError

SCOPES: Final = "campaign_scopes"
TEXTS: Final = "campaign_texts"
SIZES: Final = "campaign_sizes"
DECISIONS: Final = "campaign_decisions"


class ScopeConflictError(TransientError):
    """Another consumer advanced the scope since it was read: reload it and decide again."""


@dataclass(frozen=True, slots=True)
class Position:
    """How far a scope has got: decisions applied, and the Kafka position of the last one."""

    seq: int = 0
    partition: int | None = None
    offset: int = -1

    def covers(self, partition: int, offset: int) -> bool:
        """Return True when the record at `partition`/`offset` was already decided."""
        return partition == self.partition and offset <= self.offset


@dataclass(frozen=True, slots=True)
class Decided:
    """One record's decision, persisted with its scope's sequence number and position."""

    event_id: str
    """The routed event's id: what a redelivery is recognised by."""
    seq: int
    partition: int
    offset: int
    grouping: Grouping


@dataclass(slots=True)
class ScopeChanges:
    """What one batch changed in one scope, to be made durable before anything is published."""

    scope: str
    before: Position
    texts: list[Document] = field(default_factory=list)
    sizes: dict[str, tuple[int, int, datetime]] = field(default_factory=dict)
    """founder id → (size, seq, seen_at of the last member)."""
    decisions: list[Decided] = field(default_factory=list)

    @property
    def after(self) -> Position:
        """The scope's position once these changes are durable."""
        if not self.decisions:
            return self.before
        last = self.decisions[-1]
        return Position(last.seq, last.partition, last.offset)


class CampaignState(Protocol):
    """Where the service persists scopes (MongoDB; a dictionary in component tests)."""

    async def positions(self, scopes: Iterable[str]) -> dict[str, Position]:
        """Return each scope's position (a scope never seen is at `Position()`)."""
        ...

    async def load(self, scope: str, upto: Position, store: MemoryStore) -> int:
        """Rebuild `scope` in `store` as of `upto`; return how many texts were loaded."""
        ...

    async def decided(self, event_ids: Sequence[str]) -> dict[str, Grouping]:
        """Return the decisions already persisted for these routed events."""
        ...

    async def save(self, changes: Sequence[ScopeChanges]) -> None:
        """Make the changes durable; raise `ScopeConflictError` if a scope moved meanwhile."""
        ...

    async def expire(self, scope: str, before: datetime) -> int:
        """Forget a unit scope's texts and campaigns last seen before `before`."""
        ...


def text_document(
    scope: str, seq: int, digest: bytes, member: Member, index: Indexed | None, minhash: MinHash
) -> Document:
    """Return the `campaign_texts` document of a text first seen in `scope`."""
    doc: Document = {
        "_id": f"{scope}|{digest.hex()}",
        "scope": scope,
        "seq": seq,
        "digest": Binary(digest),
        "submission_id": member.submission_id,
        "reference": member.reference,
        "founder_id": member.founder_id,
        "founder_reference": member.founder_reference,
        "seen_at": member.seen_at,
    }
    if index is not None:
        doc["shingles"] = Binary(index.shingles.astype("<u4").tobytes())
        doc["minhash"] = Binary(minhash.hashvalues.astype("<u4").tobytes())
    return doc


def restore_text(store: MemoryStore, doc: Mapping[str, Any]) -> None:
    """Put one `campaign_texts` document back into `store`."""
    member = Member(
        doc["submission_id"],
        doc["reference"],
        doc["founder_id"],
        doc["founder_reference"],
        doc["seen_at"],
    )
    index: Indexed | None = None
    minhash = new_minhash()
    if doc.get("shingles") is not None:
        index = Indexed(member, np.frombuffer(doc["shingles"], dtype="<u4").astype(np.uint32))
        values = np.frombuffer(doc["minhash"], dtype="<u4").astype(np.uint32)
        if len(values) == NUM_PERM:
            minhash.hashvalues = values
    store.remember(doc["scope"], bytes(doc["digest"]), member, index, minhash)


def decision_document(scope: str, decided: Decided) -> Document:
    """Return the `campaign_decisions` document of one record's decision."""
    grouping = decided.grouping
    return {
        "_id": decided.event_id,
        "scope": scope,
        "seq": decided.seq,
        "partition": decided.partition,
        "offset": decided.offset,
        "campaign_id": grouping.campaign_id,
        "size": grouping.campaign_size,
        "similar_to": grouping.similar_to,
        "similarity": grouping.similarity,
        "first_submission_id": grouping.first_submission_id,
        "first_reference": grouping.first_reference,
    }


def grouping_of(doc: Mapping[str, Any]) -> Grouping:
    """Return the decision a `campaign_decisions` document holds."""
    return Grouping(
        doc["scope"],
        doc["campaign_id"],
        doc["size"],
        doc["similar_to"],
        doc["similarity"],
        doc["first_submission_id"],
        doc["first_reference"],
    )


class MongoCampaignState:
    """`CampaignState` on MongoDB (FerretDB locally); see the module docstring."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._db: AsyncDatabase[Document] = client[database]
        self._indexed = False

    async def ensure_indexes(self) -> None:
        """Create the indexes reloads and recounts query by (idempotent).

        Called before the first batch rather than at start-up, so a database that is down
        when the service starts holds the first batch instead of stopping the process.
        """
        await self._db[TEXTS].create_index([("scope", ASCENDING), ("seq", DESCENDING)])
        await self._db[SIZES].create_index([("scope", ASCENDING)])
        await self._db[DECISIONS].create_index([("campaign_id", ASCENDING), ("seq", DESCENDING)])
        self._indexed = True

    async def positions(self, scopes: Iterable[str]) -> dict[str, Position]:
        """Return each scope's position (a scope never seen is at `Position()`)."""
        if not self._indexed:
            await self.ensure_indexes()
        wanted = sorted(set(scopes))
        found = {scope: Position() for scope in wanted}
        async for doc in self._db[SCOPES].find({"_id": {"$in": wanted}}):
            found[doc["_id"]] = Position(doc["seq"], doc["partition"], doc["offset"])
        return found

    async def load(self, scope: str, upto: Position, store: MemoryStore) -> int:
        """Rebuild `scope` as of `upto`: its newest `MAX_EXACT` texts, then its campaigns' sizes.

        Texts and sizes a batch wrote without advancing the scope (it failed before its end)
        are not part of `upto`: texts past it are skipped, sizes past it recounted.
        """
        store.forget(scope)
        if upto.seq == 0:
            return 0
        query: Document = {"scope": scope, "seq": {"$lte": upto.seq}}
        newest = [
            doc
            async for doc in self._db[TEXTS].find(query).sort("seq", DESCENDING).limit(MAX_EXACT)
        ]
        for doc in reversed(newest):
            restore_text(store, doc)
        async for doc in self._db[SIZES].find({"scope": scope}):
            size = doc["size"]
            if doc["seq"] > upto.seq:  # written by a batch that never committed
                size = await self._size_at(doc["_id"], upto.seq)
            store.restore_size(scope, doc["founder_id"], size)
        return len(newest)

    async def _size_at(self, campaign: str, seq: int) -> int:
        latest = (
            self._db[DECISIONS]
            .find({"campaign_id": campaign, "seq": {"$lte": seq}})
            .sort("seq", DESCENDING)
            .limit(1)
        )
        async for doc in latest:
            return int(doc["size"])
        return 1  # only its first member had arrived

    async def decided(self, event_ids: Sequence[str]) -> dict[str, Grouping]:
        """Return the decisions already persisted for these routed events."""
        if not event_ids:
            return {}
        cursor = self._db[DECISIONS].find({"_id": {"$in": list(event_ids)}})
        return {doc["_id"]: grouping_of(doc) async for doc in cursor}

    async def save(self, changes: Sequence[ScopeChanges]) -> None:
        """Write texts, sizes and decisions, then advance each scope (conditionally).

        Raises `ScopeConflictError` when a scope's position is no longer the one the batch
        started from: another consumer decided it meanwhile (a rebalance's overlap).
        """
        changed = [change for change in changes if change.decisions]
        texts = [doc for change in changed for doc in change.texts]
        await insert_unordered(self._db[TEXTS], texts)
        # Insert first, then `$max` only what the unique `_id` refused: on FerretDB 1.24 an
        # update (or upsert) of an `_id` not yet stored scans the collection (16 ms each at
        # 4,000 campaigns), and most campaigns a batch touches are new (bench/README.md).
        sizes = [
            {
                "_id": campaign_id(change.scope, founder),
                "size": size,
                "seq": seq,
                "last_seen": seen_at,
                "scope": change.scope,
                "founder_id": founder,
            }
            for change in changed
            for founder, (size, seq, seen_at) in change.sizes.items()
        ]
        refused = await insert_unordered(self._db[SIZES], sizes)
        await bulk_write_chunked(
            self._db[SIZES],
            [
                UpdateOne(
                    {"_id": doc["_id"]},
                    {
                        "$max": {
                            "size": doc["size"],
                            "seq": doc["seq"],
                            "last_seen": doc["last_seen"],
                        }
                    },
                )
                for doc in (sizes[i] for i in sorted(refused))
            ],
        )
        decisions = [decision_document(c.scope, d) for c in changed for d in c.decisions]
        await insert_unordered(self._db[DECISIONS], decisions)
        for change in changed:
            await self._advance(change)

    async def _advance(self, change: ScopeChanges) -> None:
        after = change.after
        values = {"seq": after.seq, "partition": after.partition, "offset": after.offset}
        if change.before.seq == 0:
            refused = await insert_unordered(self._db[SCOPES], [{"_id": change.scope, **values}])
            if refused:
                raise ScopeConflictError(f"scope {change.scope!r} was started by another consumer")
            return
        result = await self._db[SCOPES].update_one(
            {"_id": change.scope, "seq": change.before.seq}, {"$set": values}
        )
        if result.matched_count != 1:
            raise ScopeConflictError(f"scope {change.scope!r} moved past seq {change.before.seq}")

    async def expire(self, scope: str, before: datetime) -> int:
        """Delete a unit scope's texts and campaigns last seen before `before`; return texts."""
        texts = await self._db[TEXTS].delete_many({"scope": scope, "seen_at": {"$lt": before}})
        await self._db[SIZES].delete_many({"scope": scope, "last_seen": {"$lt": before}})
        return texts.deleted_count
