"""MongoDB client factory (PyMongo's async API; FerretDB 1.24 locally, MongoDB 7+ in production).

Only features both servers support are used anywhere in Sada: no transactions, no change
streams, no TTL or partial indexes, no `$lookup`/`$facet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shared.retry import TransientError
from shared.settings import MongoSettings

Document = dict[str, Any]
DUPLICATE_KEY: Final = 11000
UPDATES_PER_COMMAND: Final = 20
"""Update statements per `update` command. FerretDB 1.24 keeps each statement's read of an
existing document open until the whole command ends, from a pool of 100 SQLite connections per
database: a command of 100 such statements (or several concurrent ones adding up to it) waits
forever and wedges the database for every client until FerretDB restarts (measured: 99 passed,
100 hung). 20 leaves room for other replicas and reads; MongoDB pays a few round trips."""


def make_client(settings: MongoSettings, *, app_name: str) -> AsyncMongoClient[Document]:
    """Return a lazily-connecting client with bounded timeouts, so an outage fails fast."""
    return AsyncMongoClient(
        settings.uri.get_secret_value(),
        appname=f"sada-{app_name}",
        serverSelectionTimeoutMS=settings.timeout_ms,
        connectTimeoutMS=settings.timeout_ms,
        socketTimeoutMS=settings.timeout_ms * 2,
        retryWrites=True,
        tz_aware=True,
    )


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """Return True when the server answers `ping`."""
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


async def insert_unordered(
    collection: AsyncCollection[Document], docs: Sequence[Document]
) -> set[int]:
    """Insert every document that can be; return the indexes refused for a duplicate key.

    Inserting first and reading only what a unique index refused is how Sada asks "is this
    new?": FerretDB 1.24 answers every query, `_id` lookups included, by scanning the
    collection, while an insert checks its unique indexes directly. Any other write error is a
    property of the data (raised: the batch runner isolates it); a write-concern error is the
    database's (transient).
    """
    if not docs:
        return set()
    try:
        await collection.insert_many(list(docs), ordered=False)
    except BulkWriteError as exc:
        details = exc.details
        if details.get("writeConcernErrors"):
            raise TransientError("write concern not satisfied") from exc
        errors = details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        return {int(error["index"]) for error in errors}
    return set()


async def insert_ordered(collection: AsyncCollection[Document], docs: Sequence[Document]) -> int:
    """Insert `docs` in order up to the first duplicate key; return how many were inserted.

    For appends where each document links to the one before it: nothing after a refusal is
    written. Any other write error is raised; a write-concern error is transient.
    """
    if not docs:
        return 0
    try:
        await collection.insert_many(list(docs), ordered=True)
    except BulkWriteError as exc:
        details = exc.details
        if details.get("writeConcernErrors"):
            raise TransientError("write concern not satisfied") from exc
        errors = details.get("writeErrors", [])
        if not errors or errors[0].get("code") != DUPLICATE_KEY:
            raise
        return int(errors[0]["index"])
    return len(docs)


async def bulk_write_chunked(
    collection: AsyncCollection[Document], requests: Sequence[UpdateOne]
) -> None:
    """Apply update requests unordered, `UPDATES_PER_COMMAND` per command (see there why).

    A duplicate key from an upsert means another writer inserted the same document at the same
    moment (MongoDB retries such an upsert itself; FerretDB may not): transient, since the retry
    finds the document and updates it. A write-concern error is transient too.
    """
    for start in range(0, len(requests), UPDATES_PER_COMMAND):
        chunk = list(requests[start : start + UPDATES_PER_COMMAND])
        try:
            await collection.bulk_write(chunk, ordered=False)
        except BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors", [])
            if details.get("writeConcernErrors"):
                raise TransientError("write concern not satisfied") from exc
            if errors and all(error.get("code") == DUPLICATE_KEY for error in errors):
                raise TransientError("a concurrent upsert inserted the same document") from exc
            raise
