"""Who read what: every read of the API is archived as an `archive.accessed` event on a chain.

Where: the archive writes access events into its own `events` collection, on hash chains of
their own (`access:<UTC day>:<client>:<writer>`), so `verify` and the background sweep check
them like every other chain and `/v1/export` carries them. Not through Kafka: the archive owns
this data, a round trip through a topic would add a second copy with its own retention and a
dependency (an access could be answered while Kafka is down and then be lost with the process),
and the reads need the database anyway.

When: a read is answered only once its access event is stored, so a crash can never lose the
record of a read that was served. It stays cheap by group commit: reads wait on a bounded queue,
one writer stores everything waiting in one ordered `insert_many` (up to `batch_size`), and
every read in the batch is released together. A full queue, or a write slower than `timeout`,
refuses the read with 503: nothing is served unrecorded. At shutdown the writer drains the
queue before the process exits.

Each archive process writes its own chains (`writer` = host name and a random suffix), so
replicas never race for a chain position; a position taken anyway (a retry whose first attempt
was stored) is resolved from the store, as the archiver does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from services.archive import metrics
from services.archive.chain import EMPTY, Head, seal_direct
from services.archive.records import canonical_json
from services.archive.store import ArchiveStore
from shared import ids
from shared.events import AccessPayload, ArchiveAccessed, Producer
from shared.logging import get_logger
from shared.retry import TransientError, is_transient

log = get_logger(__name__)

EVENT_TYPE: Final = "archive.accessed"
CHAIN_PREFIX: Final = "access:"
MAX_ROUNDS: Final = 20
RETRY_SECONDS: Final = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to store a batch while the database is unreachable (then 5 s)."""

Document = dict[str, Any]


class AccessLogUnavailableError(Exception):
    """The read cannot be recorded now (queue full, store too slow, or shutting down)."""


@dataclass(frozen=True, slots=True)
class Access:
    """One read, as the API describes it (identifiers and validated parameters only)."""

    client: str
    endpoint: str
    status: int
    personal_data: bool
    submission_id: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)


def writer_id() -> str:
    """Return this process's writer id: its host name (made an identifier) and a random suffix."""
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")[:40] or "host"
    return f"{host}-{uuid.uuid4().hex[:8]}"


def chain_of(client: str, day: str, writer: str) -> str:
    """Return the access chain of `client` on `day` (YYYY-MM-DD, UTC) written by `writer`."""
    return f"{CHAIN_PREFIX}{day}:{client}:{writer}"


def access_event(access: Access, *, writer: str, producer: Producer) -> ArchiveAccessed:
    """Return the `archive.accessed` event of one read."""
    now = datetime.now(UTC)
    chain = chain_of(access.client, now.date().isoformat(), writer)
    request_id = uuid.uuid4().hex
    return ArchiveAccessed(
        event_id=ids.event_id(chain, EVENT_TYPE, request_id),
        submission_id=chain,
        occurred_at=now,
        producer=producer,
        payload=AccessPayload(
            client=access.client,
            endpoint=access.endpoint,
            status=access.status,
            submission_id=access.submission_id,
            query=dict(access.query),
            personal_data=access.personal_data,
            request_id=request_id,
        ),
    )


def seal_access(event: ArchiveAccessed, head: Head, archived_at: datetime) -> Document:
    """Return the `events` document of an access event appended after `head`."""
    canonical = canonical_json(event.model_dump(mode="json"))
    doc = seal_direct(
        event.event_id,
        event.submission_id,
        event.event_type,
        canonical,
        head,
        event.occurred_at,
        archived_at,
    )
    doc["client"] = event.payload.client  # for queries; `event` (hashed) is what counts
    doc["accessed"] = event.payload.submission_id
    return doc


Waiting = tuple[ArchiveAccessed, "asyncio.Future[None]"]


class AccessLog:
    """Stores access events in batches; `record` returns once the read's event is stored."""

    def __init__(
        self,
        store: ArchiveStore,
        *,
        producer: Producer,
        queue_size: int,
        batch_size: int,
        timeout: float,
        writer: str | None = None,
    ) -> None:
        self._store = store
        self._producer = producer
        self._writer = writer or writer_id()
        self._batch_size = batch_size
        self._timeout = timeout
        self._queue: asyncio.Queue[Waiting] = asyncio.Queue(queue_size)
        self._heads: dict[str, Head] = {}
        self._task: asyncio.Task[None] | None = None
        self._open = False

    async def start(self) -> None:
        """Start the writer; reads are accepted from now on."""
        self._task = asyncio.create_task(self._run(), name="archive-access-log")
        self._open = True

    async def stop(self) -> None:
        """Refuse new reads, store every waiting access event (within `timeout`), then stop."""
        self._open = False
        if self._task is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._queue.join()
        except TimeoutError:
            log.error("access events not stored at shutdown", waiting=self._queue.qsize())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def record(self, access: Access) -> None:
        """Return once the access event of this read is stored; raise when it cannot be."""
        if not self._open:
            raise AccessLogUnavailableError("the access log is not running")
        event = access_event(access, writer=self._writer, producer=self._producer)
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((event, stored))
        except asyncio.QueueFull:
            metrics.ACCESSES.labels("refused").inc()
            raise AccessLogUnavailableError("the access log is full") from None
        metrics.ACCESS_QUEUE.set(self._queue.qsize())
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(stored)  # on timeout the event is still stored later
        except TimeoutError:
            metrics.ACCESSES.labels("refused").inc()
            stored.add_done_callback(_settled)  # nobody waits for it any more
            raise AccessLogUnavailableError("the access log is too slow") from None

    async def _run(self) -> None:
        """Store whatever is waiting, in batches, and release each read once its event is in."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                error = await self._store_batch([event for event, _ in batch])
                for _, stored in batch:
                    if stored.done():
                        continue  # its read gave up waiting (503); the event is stored anyway
                    if error is None:
                        stored.set_result(None)
                    else:
                        stored.set_exception(error)
                metrics.ACCESSES.labels("stored" if error is None else "failed").inc(len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
                metrics.ACCESS_QUEUE.set(self._queue.qsize())

    async def _store_batch(self, events: Sequence[ArchiveAccessed]) -> Exception | None:
        """Store `events`, retrying while the database is unreachable; return a lasting error."""
        attempt = 0
        while True:
            try:
                await self._append(events)
            except Exception as exc:
                if not is_transient(exc):
                    log.error("access events could not be stored", error=type(exc).__name__)
                    return AccessLogUnavailableError("the access could not be recorded")
                log.warning("access events not stored yet", error=type(exc).__name__)
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
            else:
                return None

    async def _append(self, events: Sequence[ArchiveAccessed]) -> None:
        """Append `events` to their chains in order; heads advance only on what was stored."""
        pending = list(events)
        for _ in range(MAX_ROUNDS):
            now = datetime.now(UTC)
            heads = dict(self._heads)
            docs = []
            for event in pending:
                doc = seal_access(event, heads.get(event.submission_id, EMPTY), now)
                heads[event.submission_id] = Head(doc["seq"], doc["hash"])
                docs.append(doc)
            inserted = await self._store.append_events(docs)
            for doc in docs[:inserted]:
                self._heads[doc["submission_id"]] = Head(doc["seq"], doc["hash"])
            if inserted == len(docs):
                return
            pending = await self._resolve(pending[inserted:], docs[inserted])
            if not pending:
                return
        raise TransientError(f"access events did not settle in {MAX_ROUNDS} rounds")

    async def _resolve(
        self, pending: list[ArchiveAccessed], refused: Document
    ) -> list[ArchiveAccessed]:
        """Return what is still to store after `refused` was refused; fix the heads."""
        found = await self._store.find_events([event.event_id for event in pending])
        if refused["_id"] not in found:  # its position is taken: read the chain's real head
            chain = refused["submission_id"]
            metrics.CHAIN_CONFLICTS.inc()
            docs = await self._store.chain_events([chain], brief=True)
            top = max(docs, key=lambda doc: doc["seq"], default=None)
            self._heads[chain] = Head(top["seq"], top["hash"]) if top else EMPTY
            return pending
        for doc in sorted(found.values(), key=lambda doc: doc["seq"]):  # stored by an earlier try
            self._heads[doc["submission_id"]] = Head(doc["seq"], doc["hash"])
        return [event for event in pending if event.event_id not in found]


def _settled(future: asyncio.Future[None]) -> None:
    """Retrieve the outcome of a write no read waits for (so asyncio does not report it)."""
    if not future.cancelled():
        future.exception()
