"""Where digests wait: the notifier's pending submissions, mailbox rates and digest plans.

All in the notifier's own database, written the ways FerretDB 1.24 and MongoDB 7 both make safe
(inserts refused by a unique `_id`, single-writer updates) and read so that FerretDB never
decodes the waiting items to find them: it answers an equality on `_id` from its index, and
decodes every document of the collection for any other filter (an index on another field is
not used; measured in bench/README.md).

- `digest_heads`: one small document per *bucket* (`_id` = the bucket's id, the mailbox, when
  it was set aside, the end of its window, how many items): what the senders scan to find due
  digests, written **before** the bucket.
- `digest_pending`, read only by `_id`: the *bucket* (`_id` = `b:<uuid>`, the batch's items for
  one mailbox) and one *marker* per item (`_id` = `k:<ledger key>`), all inserted in **one**
  `insert_many`: a notifier killed around it leaves either both or neither, so a redelivered
  event is waiting exactly when its marker exists. A head whose bucket never came (the writer
  died between the two writes; its batch is redelivered and set aside again) is dropped after
  `ORPHAN_SECONDS`. Markers stay, like the ledger's claims, until the pruner deletes them by
  `marked_at` after the de-duplication window (`services.notifier.retention`).
- `digest_rates`: how many e-mails each notifier sent (or would have sent) to each inbox per
  rate bucket; each notifier updates only its own documents (`_id` names the writer), so no two
  writers ever update one document.
- `digest_plans`: a digest's members, buckets and state (`planned` → `sent` → `done`), written
  before the e-mail goes out, so a digest sent again after a crash has the same members and
  Message-ID.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pymongo import ASCENDING, AsyncMongoClient, DeleteOne
from pymongo.asynchronous.collection import AsyncCollection

from services.notifier.digests import DigestItem
from shared.mongo import Document, insert_unordered

PENDING = "digest_pending"
HEADS = "digest_heads"
RATES = "digest_rates"
PLANS = "digest_plans"
LEASES = "digest_leases"
BUCKET_ITEMS = 1_000
"""Items per bucket document (a bucket of 1,000 Arabic items stays far below 16 MB)."""
ORPHAN_SECONDS = 300.0
"""A head whose bucket has not come this long after it was written is dropped: the writer
died between its two writes (a write cannot outlive the client's socket timeout)."""
DELETES_PER_COMMAND = 20
LOOKUPS_AT_ONCE = 16

PlanState = Literal["planned", "sent", "done"]


@dataclass(frozen=True, slots=True)
class Head:
    """Where one bucket of waiting items is, and when its digest is due."""

    bucket_id: str
    inbox: str
    unit: str
    mailbox: str
    pended_at: datetime
    closes_at: datetime
    """End of the window it was set aside in: its digest is due then (plus the settle time)."""
    window_seconds: float
    items: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """Items of one batch for one mailbox, and their head."""

    head: Head
    items: tuple[DigestItem, ...]

    @property
    def bucket_id(self) -> str:
        """The bucket's `_id` (its head's too)."""
        return self.head.bucket_id


@dataclass(frozen=True, slots=True)
class Plan:
    """A digest decided: who is in it and how far it got."""

    digest_id: str
    inbox: str
    unit: str
    mailbox: str
    window_end: datetime
    window_seconds: float
    keys: tuple[str, ...]
    buckets: tuple[str, ...]
    """The buckets its members came from, deleted (with their heads) once it is recorded."""
    state: PlanState
    message_id: str
    status: Literal["sent", "failed"] | None = None
    smtp_code: int | None = None
    smtp_reply: str | None = None


class PendingStore(Protocol):
    """Durable state of digests (see the module docstring)."""

    async def pend(self, buckets: Sequence[Bucket]) -> None:
        """Store `buckets`: their heads first, then markers and buckets in one write."""
        ...

    async def waiting(self, keys: Sequence[str]) -> set[str]:
        """Return which of `keys` were set aside for a digest (whether or not it is out yet)."""
        ...

    async def count(self, writer: str, counts: Mapping[tuple[str, datetime], int]) -> None:
        """Add this writer's e-mails per (inbox, rate bucket start)."""
        ...

    async def counts(self, since: datetime) -> list[tuple[str, datetime, int]]:
        """Return every writer's (inbox, bucket start, e-mails) from `since` on."""
        ...

    async def heads(self) -> list[Head]:
        """Return every bucket's head (one small document per waiting bucket)."""
        ...

    async def bucket_items(self, bucket_id: str) -> tuple[DigestItem, ...] | None:
        """Return a bucket's items, or None when it is not (or no longer) stored."""
        ...

    async def remove_buckets(self, bucket_ids: Sequence[str]) -> None:
        """Delete buckets whose digest is recorded, then their heads."""
        ...

    async def remove_heads(self, bucket_ids: Sequence[str]) -> None:
        """Delete heads whose bucket never came."""
        ...

    async def open_plans(self, inbox: str) -> list[Plan]:
        """Return `inbox`'s plans not yet done, oldest first."""
        ...

    async def save_plan(self, plan: Plan) -> Plan:
        """Store `plan`; if it is stored already, return the stored one."""
        ...

    async def mark(self, plan: Plan) -> None:
        """Write `plan`'s new state and outcome (only the inbox's lease holder writes)."""
        ...

    async def prune(self, rates_before: datetime, plans_before: datetime) -> None:
        """Delete rate buckets and finished plans older than these."""
        ...


def item_document(item: DigestItem) -> Document:
    """Return `item` as stored inside a bucket."""
    return asdict(item)


def item_from_document(document: Document) -> DigestItem:
    """Return the item stored as `document`."""
    return DigestItem(**document)


def bucket_documents(buckets: Sequence[Bucket]) -> list[Document]:
    """Return the markers and bucket documents of `buckets`, for one `insert_many`."""
    at = datetime.now(UTC)
    markers: list[Document] = [
        {"_id": f"k:{i.key}", "marked_at": at} for b in buckets for i in b.items
    ]
    return markers + [
        {"_id": b.bucket_id, "items": [item_document(i) for i in b.items]} for b in buckets
    ]


def head_document(head: Head) -> Document:
    """Return the document of `head`."""
    fields = asdict(head)
    return {"_id": fields.pop("bucket_id"), **fields}


def head_from_document(document: Document) -> Head:
    """Return the head stored as `document`."""
    fields = {k: v for k, v in document.items() if k != "_id"}
    return Head(bucket_id=str(document["_id"]), **fields)


def plan_document(plan: Plan) -> Document:
    """Return the document of `plan`."""
    fields = asdict(plan)
    fields["keys"] = list(plan.keys)
    fields["buckets"] = list(plan.buckets)
    return {"_id": fields.pop("digest_id"), **fields}


def plan_from_document(document: Document) -> Plan:
    """Return the plan stored as `document`."""
    fields: dict[str, Any] = {k: v for k, v in document.items() if k not in {"_id", "done_at"}}
    fields["keys"] = tuple(fields.get("keys", ()))
    fields["buckets"] = tuple(fields.get("buckets", ()))
    return Plan(digest_id=str(document["_id"]), **fields)


class MongoPendingStore:
    """`PendingStore` in the notifier's own MongoDB database."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        db = client[database]
        self._pending: AsyncCollection[Document] = db[PENDING]
        self._heads: AsyncCollection[Document] = db[HEADS]
        self._rates: AsyncCollection[Document] = db[RATES]
        self._plans: AsyncCollection[Document] = db[PLANS]
        self.leases: AsyncCollection[Document] = db[LEASES]

    async def pend(self, buckets: Sequence[Bucket]) -> None:
        """Insert the heads, then markers and buckets in one command (duplicates are fine)."""
        if not buckets:
            return
        await insert_unordered(self._heads, [head_document(b.head) for b in buckets])
        await insert_unordered(self._pending, bucket_documents(buckets))

    async def waiting(self, keys: Sequence[str]) -> set[str]:
        """Look each marker up by `_id` (the one filter FerretDB answers without a scan)."""
        gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)

        async def marked(key: str) -> bool:
            async with gate:
                found = await self._pending.find_one({"_id": f"k:{key}"}, {"_id": 1})
            return found is not None

        found = await asyncio.gather(*(marked(k) for k in keys))
        return {k for k, hit in zip(keys, found, strict=True) if hit}

    async def count(self, writer: str, counts: Mapping[tuple[str, datetime], int]) -> None:
        """Increment this writer's own rate documents (no other writer updates them)."""
        for (inbox, bucket), n in counts.items():
            await self._rates.update_one(
                {"_id": f"{inbox}|{bucket.timestamp():.3f}|{writer}"},
                {"$inc": {"n": n}, "$setOnInsert": {"inbox": inbox, "at": bucket}},
                upsert=True,
            )

    async def counts(self, since: datetime) -> list[tuple[str, datetime, int]]:
        """Read the rate documents from `since` on (a small collection)."""
        cursor = self._rates.find({"at": {"$gte": since}})
        return [(str(d["inbox"]), d["at"], int(d["n"])) async for d in cursor]

    async def heads(self) -> list[Head]:
        """Read every head (a small collection: one document per waiting bucket)."""
        return [head_from_document(d) async for d in self._heads.find({})]

    async def bucket_items(self, bucket_id: str) -> tuple[DigestItem, ...] | None:
        """Read one bucket by `_id`."""
        found = await self._pending.find_one({"_id": bucket_id})
        if found is None:
            return None
        return tuple(item_from_document(i) for i in found["items"])

    async def remove_buckets(self, bucket_ids: Sequence[str]) -> None:
        """Delete buckets by `_id`, then their heads (a head without its bucket is harmless)."""
        await _delete_by_id(self._pending, bucket_ids)
        await _delete_by_id(self._heads, bucket_ids)

    async def remove_heads(self, bucket_ids: Sequence[str]) -> None:
        """Delete heads by `_id`."""
        await _delete_by_id(self._heads, bucket_ids)

    async def open_plans(self, inbox: str) -> list[Plan]:
        """Read `inbox`'s plans not yet done."""
        cursor = self._plans.find({"inbox": inbox, "state": {"$ne": "done"}}).sort(
            "window_end", ASCENDING
        )
        return [plan_from_document(d) async for d in cursor]

    async def save_plan(self, plan: Plan) -> Plan:
        """Insert `plan`; a duplicate key returns the plan already stored."""
        if await insert_unordered(self._plans, [plan_document(plan)]):
            stored = await self._plans.find_one({"_id": plan.digest_id})
            if stored is not None:
                return plan_from_document(stored)
        return plan

    async def mark(self, plan: Plan) -> None:
        """Write the plan's state and outcome."""
        fields = plan_document(plan)
        fields.pop("keys")
        update: Document = {"$set": fields}
        if plan.state == "done":  # the members are in the ledger now: keep the plan small
            update["$unset"] = {"keys": ""}
        await self._plans.update_one({"_id": fields.pop("_id")}, update)

    async def prune(self, rates_before: datetime, plans_before: datetime) -> None:
        """Delete old rate buckets and old finished plans."""
        await self._rates.delete_many({"at": {"$lt": rates_before}})
        await self._plans.delete_many({"state": "done", "window_end": {"$lt": plans_before}})


async def _delete_by_id(collection: AsyncCollection[Document], ids: Sequence[str]) -> None:
    for start in range(0, len(ids), DELETES_PER_COMMAND):
        chunk = ids[start : start + DELETES_PER_COMMAND]
        await collection.bulk_write([DeleteOne({"_id": i}) for i in chunk], ordered=False)
