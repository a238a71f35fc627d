"""A cluster-wide lease in MongoDB: one replica at a time does a job.

The archive's verification sweep and the notifier's digest of one mailbox use it.

FerretDB 1.24 has no atomic read-modify-write: its `findAndModify` and `update` read the
matching documents and then write them back by `_id` (FerretDB issue #2168), so two replicas
could both see an expired lease and both "take" it. The one write both servers make atomic is
an insert refused by a unique index. So a lease is a series of terms, one insert-only document
each, `_id` = `<name>:<term>`:

1. read the latest term of `name` (a tiny collection: the scan FerretDB does is cheap);
2. while it runs (`expires_at` in the future), whoever holds it, do nothing;
3. once it has expired, insert term + 1 (`holder`, `taken_at`, `expires_at`): of all the
   replicas that try, exactly one insert succeeds; the others get a duplicate key and stand down.

A lease is not renewed: it is the right to run one sweep for `ttl` seconds, which makes the sweep
run once per interval cluster-wide. A holder done early may `release` its term (it sets its own
term's `expires_at` to now: only the holder writes its term, so no two writers race), which lets
the next term be taken at once (the notifier's digests do, the sweep does not). A holder that
dies loses only its own turn: the lease expires and the next replica to ask takes the next
term. Terms older than `keep` are deleted (this collection is bookkeeping, not archive data:
it is no part of the hash chains).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]

LEASES: Final = "leases"
"""The collection of lease terms, in the archive's database."""

SWEEP_LEASE: Final = "verify-sweep"
"""The lease of the archive's full verification sweep."""

KEEP_TERMS: Final = 168
"""Past terms kept for operators to read (a week of hourly sweeps)."""


class Lease(Protocol):
    """The right to do something alone in the cluster for a while."""

    async def acquire(self, now: datetime) -> bool:
        """Return True when this process holds a fresh term from `now` on."""
        ...


def holder_name() -> str:
    """Return this process's name as a lease holder: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Term:
    """One term of a lease, as stored."""

    name: str
    term: int
    holder: str
    taken_at: datetime
    expires_at: datetime

    def document(self) -> Document:
        """Return the document that claims this term."""
        return {
            "_id": f"{self.name}:{self.term}",
            "name": self.name,
            "term": self.term,
            "holder": self.holder,
            "taken_at": self.taken_at,
            "expires_at": self.expires_at,
        }


def next_term(
    latest: Document | None, name: str, holder: str, now: datetime, ttl: float
) -> Term | None:
    """Return the term to claim after `latest`, or None while `latest` runs (whoever holds it).

    The holder's own running term counts too: it has had its turn until the term expires.
    """
    number = 0
    if latest is not None:
        expires, term = latest.get("expires_at"), latest.get("term")
        if isinstance(expires, datetime) and expires > now:
            return None
        number = term + 1 if isinstance(term, int) else 0
    return Term(name, number, holder, now, now + timedelta(seconds=ttl))


class MongoLease:
    """`Lease` on MongoDB or FerretDB: insert-only terms in a small collection."""

    def __init__(
        self, collection: AsyncCollection[Document], name: str, *, ttl: float, holder: str
    ) -> None:
        self._collection = collection
        self._name = name
        self._ttl = ttl
        self.holder = holder
        self._held: int | None = None

    async def latest(self) -> Document | None:
        """Return the latest term of this lease, if any."""
        cursor = self._collection.find({"name": self._name}).sort("term", DESCENDING).limit(1)
        return next(iter(await cursor.to_list()), None)

    async def acquire(self, now: datetime) -> bool:
        """Return True when this process won a fresh term (see the module docstring)."""
        term = next_term(await self.latest(), self._name, self.holder, now, self._ttl)
        if term is None:
            return False
        try:
            await self._collection.insert_one(term.document())
        except DuplicateKeyError:  # another replica claimed this term first
            return False
        self._held = term.term
        if term.term >= KEEP_TERMS:
            await self._collection.delete_many(
                {"name": self._name, "term": {"$lte": term.term - KEEP_TERMS}}
            )
        return True

    async def release(self, now: datetime) -> None:
        """End the term this process holds (if any) at `now`, so the next may start."""
        if self._held is None:
            return
        held, self._held = self._held, None
        await self._collection.update_one(
            {"_id": f"{self._name}:{held}", "holder": self.holder}, {"$set": {"expires_at": now}}
        )
