"""The notification ledger: which unit was e-mailed about which submission, and how it went.

Two collections, both keyed `_id = "<submission_id>:<unit>"`, both insert-only:

- `ledger_claims`: one document per key, inserted before the e-mail is first tried. A batch
  claims all its keys in one `insert_many`; the unique `_id` refuses the keys claimed before,
  and only those are looked up in the ledger. Why claim rather than just look up: FerretDB 1.24
  answers every query, `_id` lookups included, by scanning the collection, so one `find` per
  batch grew with the ledger (0.6 s per batch at 10,000 entries, and worse each hour a local
  stack runs), while an insert checks its unique index directly. New keys, nearly every key,
  are thus never read. On MongoDB both ways are indexed; this one costs an insert per e-mail.
- `ledger`: the outcome, written right after the mail server accepted (or permanently refused)
  the e-mail. A redelivered routed event whose key was claimed finds its outcome here and the
  notifier republishes it instead of sending again; a claim without an outcome (a crash or a
  transient failure before the server answered) is sent again, with the same Message-ID.

The `_id` makes each key unique by construction, so neither collection needs an index,
transaction or TTL (FerretDB 1.24 and MongoDB 7 alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from shared.mongo import Document, insert_unordered

Status = Literal["sent", "failed"]
COLLECTION = "ledger"
CLAIMS = "ledger_claims"


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
    digest_id: str | None = None
    """The digest that carried it (`message_id` is then the digest's); None for its own e-mail."""


class Ledger(Protocol):
    """Remembers every notification's outcome."""

    async def claim(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Claim `keys` (distinct) for sending; return the outcomes recorded among them, by key."""
        ...

    async def claim_keys(self, keys: Sequence[str]) -> set[str]:
        """Claim `keys` (distinct); return those claimed before (redeliveries)."""
        ...

    async def outcomes(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return the outcomes recorded for `keys`, by key."""
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


class MongoLedger:
    """The ledger in the notifier's own MongoDB database."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._collection: AsyncCollection[Document] = client[database][COLLECTION]
        self._claims: AsyncCollection[Document] = client[database][CLAIMS]

    async def claim(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Insert a claim per key; read outcomes only for the keys claimed before (redeliveries)."""
        return await self.outcomes(sorted(await self.claim_keys(keys)))

    async def claim_keys(self, keys: Sequence[str]) -> set[str]:
        """Insert a claim per key in one write; return the keys the unique `_id` refused."""
        if not keys:
            return set()
        at = datetime.now(UTC)
        refused = await insert_unordered(self._claims, [{"_id": k, "claimed_at": at} for k in keys])
        return {keys[i] for i in refused}

    async def outcomes(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return the outcomes recorded for `keys` (one query; a scan on FerretDB: keep it rare)."""
        if not keys:
            return {}
        cursor = self._collection.find({"_id": {"$in": list(keys)}})
        return {str(doc["_id"]): from_document(doc) async for doc in cursor}

    async def record_many(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert `entries` in one round trip; a duplicate key means another delivery was first."""
        await insert_unordered(self._collection, [to_document(e) for e in entries])
