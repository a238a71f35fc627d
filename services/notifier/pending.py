"""Where digests wait: the notifier's pending submissions, mailbox rates and digest plans.

All in the notifier's own database, written the ways FerretDB 1.24 and MongoDB 7 both make safe
(inserts refused by a unique `_id`, single-writer updates, equality reads on an index):

- `digest_pending` holds, for each batch and inbox, one *bucket* document with the batch's items
  for that inbox (`_id` = `b:<uuid>`, `inbox`, `items`), and one *marker* per item
  (`_id` = `k:<ledger key>`), all inserted in **one** `insert_many`: a notifier killed around it
  leaves either both or neither, so a redelivered event is pending exactly when its marker
  exists. Buckets are read by `inbox` (an indexed equality: FerretDB answers it without a scan)
  and deleted by `_id` once their digest is recorded; markers stay, like the ledger's claims.
- `digest_windows`: one small document per inbox and window that has pending items, so the
  senders find due digests without reading the items.
- `digest_rates`: how many e-mails each notifier sent (or would have sent) to each inbox per
  rate bucket; each notifier updates only its own documents (`_id` names the writer), so no two
  writers ever update one document.
- `digest_plans`: a digest's members and state (`planned` → `sent` → `done`), written before
  the e-mail goes out, so a digest sent again after a crash has the same members and Message-ID.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pymongo import ASCENDING, AsyncMongoClient, DeleteOne
from pymongo.asynchronous.collection import AsyncCollection

from services.notifier.digests import DigestItem
from shared.mongo import Document, insert_unordered

PENDING = "digest_pending"
WINDOWS = "digest_windows"
RATES = "digest_rates"
PLANS = "digest_plans"
LEASES = "digest_leases"
BUCKET_ITEMS = 1_000
"""Items per bucket document (a bucket of 1,000 Arabic items stays far below 16 MB)."""
DELETES_PER_COMMAND = 20
LOOKUPS_AT_ONCE = 16

PlanState = Literal["planned", "sent", "done"]


@dataclass(frozen=True, slots=True)
class Window:
    """An inbox has items waiting in the window that ends at `closes_at`."""

    window_id: str
    inbox: str
    unit: str
    mailbox: str
    closes_at: datetime
    first_at: datetime
    window_seconds: float


@dataclass(frozen=True, slots=True)
class Bucket:
    """Items of one batch for one inbox, as stored."""

    bucket_id: str
    inbox: str
    pended_at: datetime
    items: tuple[DigestItem, ...]


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
    state: PlanState
    message_id: str
    status: Literal["sent", "failed"] | None = None
    smtp_code: int | None = None
    smtp_reply: str | None = None


class PendingStore(Protocol):
    """Durable state of digests (see the module docstring)."""

    async def pend(self, items: Sequence[DigestItem], windows: Sequence[Window]) -> None:
        """Store `items` (and their markers) in one write, then their windows."""
        ...

    async def add_windows(self, windows: Sequence[Window]) -> None:
        """Store `windows` (one already stored is kept)."""
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

    async def windows(self) -> list[Window]:
        """Return every window with items waiting (a small collection)."""
        ...

    async def buckets(self, inbox: str) -> list[Bucket]:
        """Return the buckets waiting for `inbox`, oldest first."""
        ...

    async def remove_buckets(self, bucket_ids: Sequence[str]) -> None:
        """Delete buckets whose digest is recorded."""
        ...

    async def remove_windows(self, window_ids: Sequence[str]) -> None:
        """Delete windows whose items are all out."""
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


def bucket_documents(items: Sequence[DigestItem]) -> list[Document]:
    """Return the markers and bucket documents of `items`, for one `insert_many`.

    Markers come first, then one bucket per inbox (at most `BUCKET_ITEMS` items each).
    """
    markers: list[Document] = [{"_id": f"k:{item.key}"} for item in items]
    by_inbox: dict[str, list[DigestItem]] = {}
    for item in items:
        by_inbox.setdefault(item.inbox, []).append(item)
    buckets: list[Document] = []
    for inbox, group in by_inbox.items():
        for start in range(0, len(group), BUCKET_ITEMS):
            part = group[start : start + BUCKET_ITEMS]
            buckets.append(
                {
                    "_id": f"b:{uuid.uuid4().hex}",
                    "inbox": inbox,
                    "pended_at": part[0].pended_at,
                    "items": [item_document(i) for i in part],
                }
            )
    return markers + buckets


def window_document(window: Window) -> Document:
    """Return the document of `window`."""
    fields = asdict(window)
    return {"_id": fields.pop("window_id"), **fields}


def plan_document(plan: Plan) -> Document:
    """Return the document of `plan`."""
    fields = asdict(plan)
    fields["keys"] = list(plan.keys)
    return {"_id": fields.pop("digest_id"), **fields}


def plan_from_document(document: Document) -> Plan:
    """Return the plan stored as `document`."""
    fields: dict[str, Any] = {k: v for k, v in document.items() if k not in {"_id", "done_at"}}
    fields["keys"] = tuple(fields.get("keys", ()))
    return Plan(digest_id=str(document["_id"]), **fields)


class MongoPendingStore:
    """`PendingStore` in the notifier's own MongoDB database."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        db = client[database]
        self._pending: AsyncCollection[Document] = db[PENDING]
        self._windows: AsyncCollection[Document] = db[WINDOWS]
        self._rates: AsyncCollection[Document] = db[RATES]
        self._plans: AsyncCollection[Document] = db[PLANS]
        self.leases: AsyncCollection[Document] = db[LEASES]
        self._indexed = False

    async def ensure_indexes(self) -> None:
        """Create the index the senders read buckets by (idempotent)."""
        if not self._indexed:
            await self._pending.create_index([("inbox", ASCENDING)])
            await self._plans.create_index([("inbox", ASCENDING)])
            self._indexed = True

    async def pend(self, items: Sequence[DigestItem], windows: Sequence[Window]) -> None:
        """Insert markers and buckets in one command, then the windows (duplicates are fine)."""
        if not items:
            return
        await self.ensure_indexes()
        await insert_unordered(self._pending, bucket_documents(items))
        await self.add_windows(windows)

    async def add_windows(self, windows: Sequence[Window]) -> None:
        """Insert `windows`; a duplicate key means the window is named already."""
        await insert_unordered(self._windows, [window_document(w) for w in windows])

    async def waiting(self, keys: Sequence[str]) -> set[str]:
        """Look each marker up by `_id` (an equality FerretDB answers without a scan)."""
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

    async def windows(self) -> list[Window]:
        """Read every window (a small collection)."""
        cursor = self._windows.find({})
        return [Window(window_id=str(d.pop("_id")), **d) async for d in cursor]

    async def buckets(self, inbox: str) -> list[Bucket]:
        """Read `inbox`'s buckets by the indexed `inbox` field, oldest first."""
        await self.ensure_indexes()
        cursor = self._pending.find({"inbox": inbox}).sort("pended_at", ASCENDING)
        return [
            Bucket(
                bucket_id=str(d["_id"]),
                inbox=inbox,
                pended_at=d["pended_at"],
                items=tuple(item_from_document(i) for i in d["items"]),
            )
            async for d in cursor
        ]

    async def remove_buckets(self, bucket_ids: Sequence[str]) -> None:
        """Delete buckets by `_id`, a few statements per command."""
        await _delete_by_id(self._pending, bucket_ids)

    async def remove_windows(self, window_ids: Sequence[str]) -> None:
        """Delete windows by `_id`."""
        await _delete_by_id(self._windows, window_ids)

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


def keep_after(now: datetime, seconds: float) -> datetime:
    """Return the moment `seconds` before `now` (what pruning keeps)."""
    return now - timedelta(seconds=seconds)
