"""The deferred queue: notifications whose recipient refused them for now, with their schedule.

A 4xx to RCPT TO (mailbox full, busy, greylisted) concerns one mailbox; holding the partition
for it would stall every other unit's e-mails behind it. Such a notification is *parked* in the
notifier's own MongoDB collection `deferred` (`_id` = its ledger key) and the grouped event's
offset is committed; a background task of every notifier retries the due ones on a doubling
schedule (`services/notifier/retrier.py`).

Why a collection and not a retry topic: a retry is due at a time, and a topic can only be read
in order, so a consumer of it would sleep on its head item (holding a partition again) or
republish it every turn; a collection is read by due time, survives restarts, and is small
(a document lives only while its notification is pending). It holds the consumed event, which
carries personal data, only for that long: the document is deleted once the e-mail is out.

Two notifiers never attempt the same item at once: an attempt is taken by inserting a lease
document (`deferred_leases`, `_id` = `<key>:<attempt>:<generation>`), an insert that a unique
`_id` lets only one writer win, on FerretDB 1.24 and MongoDB alike. The generation counts
`lease_seconds` periods since the attempt was due, so an attempt whose owner died is taken over
one period later; an owner only proceeds in the first half of its period, which leaves it half
a lease to finish before anyone else may start (`settings.budget_problems` checks that). A
lease left behind (its owner stopped before `remove`) carries `taken_at`, by which the pruner
deletes it after the de-duplication window (`services.notifier.retention`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from services.notifier.messages import without_campaign
from shared.events import SubmissionGrouped, SubmissionRouted
from shared.mongo import Document, insert_unordered

COLLECTION = "deferred"
LEASES = "deferred_leases"


@dataclass(frozen=True, slots=True)
class DeferredItem:
    """A parked notification: the consumed event to e-mail again and where its schedule stands."""

    key: str
    submission_id: str
    reference: str
    unit: str
    event: str
    """The consumed `submission.grouped` event as JSON: what the e-mail is composed from.

    Stored as `event`; an item parked while the notifier consumed routed events holds a
    `submission.routed` under `routed` (`from_document`, `consumed_event`)."""
    first_refused_at: datetime
    next_attempt_at: datetime
    attempts: int
    """Delivery attempts made so far (each refused)."""
    announced: bool
    """True once `notification.deferred` was published."""
    smtp_code: int
    smtp_reply: str


class DeferredQueue(Protocol):
    """Where parked notifications wait for their next attempt."""

    async def park(self, item: DeferredItem) -> None:
        """Store `item`; an item already parked under its key is kept as it is."""
        ...

    async def parked(self, keys: Sequence[str]) -> set[str]:
        """Return which of `keys` are parked."""
        ...

    async def due(self, now: datetime, limit: int) -> list[DeferredItem]:
        """Return up to `limit` items whose next attempt is due at `now`, earliest first."""
        ...

    async def take(self, key: str, attempt: int, generation: int) -> bool:
        """Take attempt `attempt` of `key` for this notifier; False when another took it."""
        ...

    async def reschedule(self, item: DeferredItem) -> None:
        """Replace the stored item with `item` (its new schedule)."""
        ...

    async def remove(self, key: str) -> None:
        """Forget `key` and its leases: its outcome is in the ledger."""
        ...


def wait_after(attempts: int, initial: float, maximum: float) -> timedelta:
    """Return the wait before the next attempt after `attempts` refused ones: doubling, capped."""
    exponent = min(max(attempts - 1, 0), 32)
    return timedelta(seconds=min(maximum, initial * 2.0**exponent))


def generation(item: DeferredItem, now: datetime, lease_seconds: float) -> int | None:
    """Return the lease generation an attempt of `item` may take at `now`, or None.

    None while the attempt is not due, and in the second half of each period: an owner that
    starts then could still be sending when the next generation lets another notifier start.
    """
    late = (now - item.next_attempt_at).total_seconds()
    if late < 0:
        return None
    number = math.floor(late / lease_seconds)
    return number if late - number * lease_seconds < lease_seconds / 2 else None


def to_document(item: DeferredItem) -> Document:
    """Return the MongoDB document for `item`."""
    fields = asdict(item)
    return {"_id": fields.pop("key"), **fields}


def from_document(document: Document) -> DeferredItem:
    """Return the item stored in `document` (one parked before the switch to grouped events too)."""
    fields: dict[str, Any] = {k: v for k, v in document.items() if k != "_id"}
    if "routed" in fields:
        fields["event"] = fields.pop("routed")
    return DeferredItem(key=str(document["_id"]), **fields)


def consumed_event(item: DeferredItem) -> SubmissionGrouped:
    """Return the event `item` e-mails about, or raise when its JSON is not one.

    An item parked before the notifier consumed `submission.grouped` holds the routed event:
    it is read as one that joined no campaign, keeping the routed event's id, from which the
    old notifier derived its outcome events' ids, so its outcome keeps the id it would have had.
    """
    data = orjson.loads(item.event)
    if isinstance(data, dict) and data.get("event_type") == "submission.routed":
        return without_campaign(SubmissionRouted.model_validate(data))
    return SubmissionGrouped.model_validate(data)


class MongoDeferredQueue:
    """The deferred queue in the notifier's own MongoDB database."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._items: AsyncCollection[Document] = client[database][COLLECTION]
        self._leases: AsyncCollection[Document] = client[database][LEASES]

    async def park(self, item: DeferredItem) -> None:
        """Insert `item`; a duplicate key means another delivery parked it first."""
        await insert_unordered(self._items, [to_document(item)])

    async def parked(self, keys: Sequence[str]) -> set[str]:
        """Return which of `keys` are parked (the collection holds only pending items)."""
        if not keys:
            return set()
        cursor = self._items.find({"_id": {"$in": list(keys)}}, {"_id": 1})
        return {str(doc["_id"]) async for doc in cursor}

    async def due(self, now: datetime, limit: int) -> list[DeferredItem]:
        """Return the items due at `now`, earliest first."""
        cursor = (
            self._items.find({"next_attempt_at": {"$lte": now}})
            .sort("next_attempt_at", ASCENDING)
            .limit(limit)
        )
        return [from_document(doc) async for doc in cursor]

    async def take(self, key: str, attempt: int, generation: int) -> bool:
        """Insert the lease of this attempt and generation; only one inserter wins."""
        lease = {"_id": f"{key}:{attempt}:{generation}", "key": key, "taken_at": datetime.now(UTC)}
        return not await insert_unordered(self._leases, [lease])

    async def reschedule(self, item: DeferredItem) -> None:
        """Write the item's new schedule (only the lease owner writes it)."""
        fields = to_document(item)
        await self._items.replace_one({"_id": fields["_id"]}, fields)

    async def remove(self, key: str) -> None:
        """Delete the item, then its leases."""
        await self._items.delete_one({"_id": key})
        await self._leases.delete_many({"key": key})
