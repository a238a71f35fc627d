"""The Kafka side of `sada deadletter`, on aiokafka directly.

Reading never joins a consumer group and never commits: it assigns every partition of the
topic, reads from the beginning (or from `--since`) to the end offsets taken when it started,
and hands each record on as it comes, so memory stays flat however long the topic is. Records
written after the read began (a redrive's own events among them) are left for the next run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.helpers import create_ssl_context

from shared import events
from shared.deadletters import Original, parse_record
from shared.settings import KafkaSettings

FETCH_TIMEOUT_MS = 1000
STALL_SECONDS = 30.0
"""A read that makes no progress for this long stops with `StalledError` rather than hang."""


Scanned = tuple[events.SourcePosition, events.MessageDeadLettered | events.MessageRedriven | None]
"""A record's position on the dead-letter topic, and its event (None if it is neither)."""


class TopicMissingError(LookupError):
    """The topic does not exist on the cluster."""


class StalledError(TimeoutError):
    """Kafka returned nothing for `STALL_SECONDS` although records remain to be read."""


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Return aiokafka client options for `settings` (as the services connect, SASL_SSL too)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": "sada-deadletter",
    }
    if settings.security_protocol == "SASL_SSL":
        assert settings.sasl_password  # checked by the settings model
        options |= {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
            "ssl_context": create_ssl_context(
                cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
            ),
        }
    return options


def _consumer(settings: KafkaSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,  # no group: nothing is committed, no service's offsets move
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # The public `topics()` fetches this same metadata but keeps only the names, and
    # `partitions_for_topic` reads a cache of the topics already tracked. A metadata request for
    # all topics never auto-creates one, as a request naming a missing topic may.
    cluster = await consumer._client.fetch_all_metadata()
    numbers = cluster.partitions_for_topic(topic)
    if not numbers:
        raise TopicMissingError(topic)
    return [TopicPartition(topic, n) for n in sorted(numbers)]


async def _start_offsets(
    consumer: AIOKafkaConsumer,
    partitions: Sequence[TopicPartition],
    end: dict[TopicPartition, int],
    since: datetime | None,
) -> dict[TopicPartition, int]:
    """Return where to start: the beginning, or the first record stamped at or after `since`.

    A dead letter is stamped by Kafka when it is produced, after its `occurred_at`, so no
    dead letter that occurred at or after `since` lies before that offset.
    """
    if since is None:
        return dict(await consumer.beginning_offsets(list(partitions)))
    stamp = int(since.timestamp() * 1000)
    found = await consumer.offsets_for_times(dict.fromkeys(partitions, stamp))
    return {tp: found[tp].offset if found.get(tp) else end[tp] for tp in partitions}


async def scan(
    settings: KafkaSettings, topic: str, *, since: datetime | None = None
) -> AsyncGenerator[Scanned, None]:
    """Yield (position, event) for each record of `topic` up to its end when the read began.

    In partition order; the event is None for a record that is neither a dead letter nor a
    redrive. Close it (`contextlib.aclosing`) when leaving early, to stop its consumer.
    """
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        end = dict(await consumer.end_offsets(partitions))
        start = await _start_offsets(consumer, partitions, end, since)
        for tp in partitions:
            consumer.seek(tp, start[tp])
        remaining = {tp for tp in partitions if start[tp] < end[tp]}
        idle_since = asyncio.get_running_loop().time()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        break
                    position = events.SourcePosition(
                        topic=tp.topic, partition=tp.partition, offset=record.offset
                    )
                    yield position, parse_record(record.value)
            now = asyncio.get_running_loop().time()
            if batch:
                idle_since = now
            elif now - idle_since > STALL_SECONDS:
                raise StalledError(f"no progress reading {topic} for {STALL_SECONDS:.0f} s")
            remaining = {tp for tp in remaining if await consumer.position(tp) < end[tp]}
    finally:
        await consumer.stop()


class Kafka:
    """Fetches original records by position and publishes redrives (one client each)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._fetcher = _consumer(settings)
        self._producer = AIOKafkaProducer(
            **client_options(settings), acks="all", enable_idempotence=True
        )

    async def start(self) -> None:
        """Connect both clients."""
        await self._fetcher.start()
        try:
            await self._producer.start()
        except BaseException:
            await self._fetcher.stop()
            raise

    async def stop(self) -> None:
        """Flush and close both clients."""
        try:
            await self._producer.stop()
        finally:
            await self._fetcher.stop()

    async def original(self, source: events.SourcePosition) -> Original | None:
        """Return the record still at `source`, or None when retention or compaction removed it."""
        tp = TopicPartition(source.topic, source.partition)
        self._fetcher.assign([tp])
        first = (await self._fetcher.beginning_offsets([tp]))[tp]
        end = (await self._fetcher.end_offsets([tp]))[tp]
        if not first <= source.offset < end:
            return None
        self._fetcher.seek(tp, source.offset)
        deadline = asyncio.get_running_loop().time() + STALL_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            batch = await self._fetcher.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS, max_records=1)
            for record in batch.get(tp, []):
                if record.offset != source.offset or record.value is None:
                    return None  # compacted away, or a tombstone
                return Original(record.value, record.key, tuple(record.headers), "source")
        raise StalledError(f"no answer fetching {source.topic}:{source.partition}")

    async def publish(
        self, topic: str, value: bytes, *, key: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> events.SourcePosition:
        """Produce one record (acks=all, idempotent); return where Kafka wrote it."""
        meta = await self._producer.send_and_wait(topic, value, key=key, headers=list(headers))
        return events.SourcePosition(topic=meta.topic, partition=meta.partition, offset=meta.offset)


@asynccontextmanager
async def connect(settings: KafkaSettings) -> AsyncIterator[Kafka]:
    """Yield a started `Kafka`; stop its clients on the way out."""
    kafka = Kafka(settings)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()
