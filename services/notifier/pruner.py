"""The pruner: deletes the notifier's bookkeeping once Kafka can no longer redeliver its event.

A background loop of every notifier (the shared `Poller`); every `SADA_RETENTION__POLL_SECONDS`
it asks for the cluster-wide lease `prune` (`shared.lease`, insert-only terms in the notifier's
`leases` collection) with a term of `SADA_RETENTION__EVERY_SECONDS`, so one replica sweeps once
per interval (a day by default) whichever replicas run. The sweep deletes, per collection, the
documents older than the de-duplication window (`services.notifier.retention.sweeps`), in
chunks (`MongoDeleter`): FerretDB 1.24 scans the collection to answer a time filter (no index on
a time field is used), which once a day is cheap (docs/notifier.md gives the measured figure);
MongoDB uses no index either (none is needed at that rate).

A failed sweep is retried at the next look once the term has expired: deletion is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from services.notifier import metrics
from services.notifier.retention import Sweep, Window, sweeps
from shared.lease import MongoLease
from shared.logging import get_logger
from shared.mongo import Document
from shared.poller import Poller

log = get_logger(__name__)

Clock = Callable[[], datetime]
LEASES = "leases"
"""The notifier's cluster-wide leases (the pruner's; the digests keep theirs apart)."""
LEASE_NAME = "prune"
CHUNK = 10_000
"""Most documents one delete command removes: well below SQLite's 32,766 variables."""


def _now() -> datetime:
    return datetime.now(UTC)


class Deleter(Protocol):
    """Deletes what a sweep selects (`MongoDeleter`; a dictionary in tests)."""

    async def delete(self, sweep: Sweep, *, stopping: Callable[[], bool]) -> int:
        """Delete the documents `sweep` selects; return how many (stop early if `stopping`)."""
        ...


class Lease(Protocol):
    """The right to sweep alone for a while (`shared.lease.MongoLease`)."""

    async def acquire(self, now: datetime) -> bool:
        """Return True when this process holds a fresh term."""
        ...


class MongoDeleter:
    """`Deleter` on the notifier's own database, in time slices of at most `chunk` documents.

    Why slices: FerretDB 1.24 on SQLite refuses a `delete_many` that matches more documents
    than SQLite takes variables ("too many SQL variables", seen at 50,000), which the first sweep
    after an upgrade, or after the pruner was stopped a while, would meet. So a sweep first
    reads the time of the `chunk`-th oldest due document (a sorted scan of that one field): if
    there is none, fewer than `chunk` are due and one `delete_many` with the sweep's filter takes
    them all (the daily case: two scans); else it deletes the documents older than that time
    (a range, which FerretDB deletes far faster than an `$in` of `_id`s: 1.4 s against 15 s for
    5,000 of 100,000) and looks again.
    """

    def __init__(
        self, client: AsyncMongoClient[Document], database: str, *, chunk: int = CHUNK
    ) -> None:
        self._db = client[database]
        self._chunk = chunk

    async def delete(self, sweep: Sweep, *, stopping: Callable[[], bool] = lambda: False) -> int:
        """Delete what `sweep` selects, a slice at a time, until none is left or `stopping`."""
        collection: AsyncCollection[Document] = self._db[sweep.collection]
        deleted = 0
        while not stopping():
            cursor = (
                collection.find(sweep.filter(), {sweep.field: 1, "_id": 0})
                .sort(sweep.field, ASCENDING)
                .skip(self._chunk - 1)
                .limit(1)
            )
            found = await cursor.to_list()
            if not found:
                result = await collection.delete_many(sweep.filter())
                return deleted + result.deleted_count
            edge = found[0][sweep.field]
            result = await collection.delete_many({sweep.field: {"$lt": edge}})
            if result.deleted_count == 0:  # the oldest chunk shares one time (a batch's claims)
                tied = collection.find({sweep.field: edge}, {"_id": 1}).limit(self._chunk)
                ids = [doc["_id"] async for doc in tied]
                result = await collection.delete_many({"_id": {"$in": ids}})
            deleted += result.deleted_count
        return deleted


def mongo_lease(
    client: AsyncMongoClient[Document], database: str, *, every_seconds: float, holder: str
) -> MongoLease:
    """Return the pruner's lease: one term per sweep interval, cluster-wide."""
    return MongoLease(client[database][LEASES], LEASE_NAME, ttl=every_seconds, holder=holder)


class Pruner(Poller):
    """Deletes what the retention window lets go, on one replica per interval."""

    task_name = "sada-notifier-pruner"
    postponed = "pruning postponed"

    def __init__(
        self,
        *,
        deleter: Deleter,
        lease: Lease,
        window: Window,
        poll_seconds: float,
        clock: Clock = _now,
    ) -> None:
        super().__init__(poll_seconds)
        self._deleter = deleter
        self._lease = lease
        self._window = window
        self._clock = clock

    async def run_due(self) -> int:
        """Sweep when this replica wins the interval's term; return the documents deleted."""
        now = self._clock()
        if not await self._lease.acquire(now):
            return 0
        deleted = 0
        for sweep in sweeps(now, self._window):
            if self.stopping:
                break
            started = self._clock()
            count = await self._deleter.delete(sweep, stopping=lambda: self.stopping)
            deleted += count
            metrics.PRUNED.labels(sweep.collection).inc(count)
            log.info(
                "pruned",
                collection=sweep.collection,
                deleted=count,
                before=sweep.before.isoformat(),
                seconds=round((self._clock() - started).total_seconds(), 3),
            )
        return deleted
