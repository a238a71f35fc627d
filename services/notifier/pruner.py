"""The pruner: deletes the notifier's bookkeeping once Kafka can no longer redeliver its event.

A background loop of every notifier (the shared `Poller`); every `SADA_RETENTION__POLL_SECONDS`
it asks for the cluster-wide lease `prune` (`shared.lease`, insert-only terms in the notifier's
`leases` collection) with a term of `SADA_RETENTION__EVERY_SECONDS`, so one replica sweeps once
per interval (a day by default) whichever replicas run. The sweep deletes, per collection, the
documents older than the de-duplication window (`services.notifier.retention.sweeps`) with one
`delete_many` each: FerretDB 1.24 scans the collection once to answer it (no index on a time
field is used), which once a day is cheap (docs/notifier.md gives the measured figure); MongoDB
uses no index either (none is needed at that rate).

A failed sweep is retried at the next look once the term has expired: deletion is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from services.notifier import metrics
from services.notifier.poller import Poller
from services.notifier.retention import Sweep, Window, sweeps
from shared.lease import MongoLease
from shared.logging import get_logger
from shared.mongo import Document

log = get_logger(__name__)

Clock = Callable[[], datetime]
LEASES = "leases"
"""The notifier's cluster-wide leases (the pruner's; the digests keep theirs apart)."""
LEASE_NAME = "prune"


def _now() -> datetime:
    return datetime.now(UTC)


class Deleter(Protocol):
    """Deletes what a sweep selects (`MongoDeleter`; a dictionary in tests)."""

    async def delete(self, sweep: Sweep) -> int:
        """Delete the documents `sweep` selects; return how many."""
        ...


class Lease(Protocol):
    """The right to sweep alone for a while (`shared.lease.MongoLease`)."""

    async def acquire(self, now: datetime) -> bool:
        """Return True when this process holds a fresh term."""
        ...


class MongoDeleter:
    """`Deleter` on the notifier's own database."""

    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self._db = client[database]

    async def delete(self, sweep: Sweep) -> int:
        """One `delete_many` with the sweep's time filter (one scan of the collection)."""
        collection: AsyncCollection[Document] = self._db[sweep.collection]
        result = await collection.delete_many(sweep.filter())
        return result.deleted_count


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
            count = await self._deleter.delete(sweep)
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
