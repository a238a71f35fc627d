"""The notification ledger: which unit was e-mailed about which submission, and how it went.

One document per (submission, unit), `_id = "<submission_id>:<unit>"`, written right after the
mail server accepted (or permanently refused) the e-mail. A redelivered routed event finds its
entry and the notifier republishes the outcome instead of sending again. The `_id` makes the key
unique by construction, so the ledger needs no index, transaction or TTL (FerretDB 1.24 and
MongoDB 7 alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shared.mongo import Document

Status = Literal["sent", "failed"]
COLLECTION = "ledger"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The outcome of one notification (no personal data: ids, mailbox, SMTP reply)."""

    key: str
    submission_id: str
    reference: str
    unit: str
    mailbox: str
    status: Status
    message_id: str
    smtp_code: int | None
    smtp_reply: str | None
    attempts: int
    recorded_at: datetime


class Ledger(Protocol):
    """Remembers every notification's outcome."""

    async def find(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return the entries that exist among `keys`, by key (one round trip)."""
        ...

    async def record_many(self, entries: Sequence[LedgerEntry]) -> None:
        """Store `entries`; an entry already stored under its key is kept as it is."""
        ...


def to_document(entry: LedgerEntry) -> Document:
    """Return the MongoDB document for `entry`."""
    fields = asdict(entry)
    return {"_id": fields.pop("key"), **fields}


def from_document(document: Document) -> LedgerEntry:
    """Return the entry stored in `document`."""
    fields: dict[str, Any] = {k: v for k, v in document.items() if k != "_id"}
    return LedgerEntry(key=str(document["_id"]), **fields)


DUPLICATE_KEY = 11000


class MongoLedger:
    """The ledger in the notifier's own MongoDB database."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._collection: AsyncCollection[Document] = client[database][COLLECTION]

    async def find(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return the stored entries among `keys`."""
        if not keys:
            return {}
        cursor = self._collection.find({"_id": {"$in": list(keys)}})
        return {str(doc["_id"]): from_document(doc) async for doc in cursor}

    async def record_many(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert `entries` in one round trip; a duplicate key means another delivery was first."""
        if not entries:
            return
        try:
            await self._collection.insert_many([to_document(e) for e in entries], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
