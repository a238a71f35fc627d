"""Consumer lag measured from the broker on a timer, so a stuck consumer's lag still grows.

A consumer can only report its own lag while it makes progress: one that is stuck (a handler
that never returns, a batch held on a failing dependency, a group that lost its members)
reports nothing, and its last figure looks flat. So each service asks the broker instead, every
`SADA_KAFKA__LAG_INTERVAL_SECONDS`: the group's committed offsets (one OffsetFetch to the group
coordinator) and the partitions' end offsets (one ListOffsets per partition leader; the list of
partitions is asked for every five minutes), through clients of their own that never join the
group, so measuring never triggers a rebalance. `sada_consumer_committed_offset` is exported
too: a committed offset that stands still while records wait is a stuck consumer, even when so
little comes in that its lag hardly grows (`SadaConsumerLagGrowing` in
deploy/prometheus/alerts.yml).

Every replica of a service measures the same group, so the series of two replicas are
identical: dashboards and alerts aggregate with `max by (service, topic, partition)` before they
sum. A failed measurement (the broker is down, a timeout) is logged and counted in
`sada_consumer_lag_check_failures_total`; the gauges keep their last value and the next tick
tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Counter, Gauge

from shared.logging import get_logger
from shared.settings import KafkaSettings

log = get_logger(__name__)

PARTITIONS_MAX_AGE = 300.0
"""Seconds the list of a group's partitions is reused before the broker is asked again."""

LAG = Gauge(
    "sada_consumer_lag",
    "Records of the partition the consumer group has not committed yet (end offset minus "
    "committed offset), measured from the broker on a timer by every replica: aggregate with "
    "max by (service, topic, partition).",
    ["service", "topic", "partition"],
)
COMMITTED = Gauge(
    "sada_consumer_committed_offset",
    "The consumer group's committed offset (the log start where it has committed none), "
    "measured from the broker: unchanged while records wait means the consumer is stuck.",
    ["service", "topic", "partition"],
)
CHECK_FAILURES = Counter(
    "sada_consumer_lag_check_failures_total",
    "Lag measurements that failed (broker unreachable, timeout); the gauges keep their last value.",
    ["service"],
)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How far a consumer group is behind on one partition."""

    topic: str
    partition: int
    committed: int
    """Where the group resumes: its committed offset, or the log start if it has none."""
    end: int
    """The offset the next record produced to the partition gets."""

    @property
    def lag(self) -> int:
        """Records waiting for the group (never negative)."""
        return max(0, self.end - self.committed)


def without_commit(
    partitions: Iterable[TopicPartition], committed: Mapping[TopicPartition, int]
) -> list[TopicPartition]:
    """Return the partitions on which the group has no committed offset (missing or -1)."""
    return [tp for tp in partitions if committed.get(tp, -1) < 0]


def measure(
    end: Mapping[TopicPartition, int],
    committed: Mapping[TopicPartition, int],
    start: Mapping[TopicPartition, int],
) -> tuple[PartitionLag, ...]:
    """Return the lag of every partition in `end`, sorted by topic and partition.

    `committed` holds the group's offsets (-1 or missing: none); `start` the log start offsets of
    at least the partitions without one. A group with no commit on a partition starts from the
    log start (`auto_offset_reset=earliest`), so that is where its lag counts from; a committed
    offset older than the log start (retention deleted records never read) counts from there too.
    """
    return tuple(
        PartitionLag(tp.topic, tp.partition, max(committed.get(tp, -1), start.get(tp, 0)), end[tp])
        for tp in sorted(end, key=lambda tp: (tp.topic, tp.partition))
    )


class OffsetReader(Protocol):
    """What the monitor asks the broker (a Protocol, so tests can count and fail the calls)."""

    async def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        """Return every partition of `topics` the broker knows (unknown topics are left out)."""
        ...

    async def committed(
        self, group_id: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Return the group's committed offset per partition (-1 where it has none)."""
        ...

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Return each partition's end offset (the next record's offset)."""
        ...

    async def start_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Return each partition's log start offset (the oldest record kept)."""
        ...

    async def close(self) -> None:
        """Drop the connections; the next call opens new ones."""
        ...


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Return the aiokafka connection options (bootstrap servers, SASL_SSL) for `settings`."""
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers}
    if settings.security_protocol == "SASL_SSL":
        assert settings.sasl_username  # both checked by the settings model
        assert settings.sasl_password
        options |= {
            "security_protocol": "SASL_SSL",
            "ssl_context": ssl.create_default_context(
                cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
            ),
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    return options


class KafkaOffsetReader:
    """Reads offsets with an admin client and a consumer that joins no group.

    Both connect on first use and after `close`, so a broker that is down at start-up or goes
    away later costs one failed check, never the service.
    """

    def __init__(self, settings: KafkaSettings, *, client_id: str, timeout: float) -> None:
        self._options = client_options(settings) | {
            "client_id": client_id,
            "request_timeout_ms": int(timeout * 1000),
        }
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._coordinator: int | None = None
        self._partitions: list[TopicPartition] | None = None
        self._refresh_at = 0.0

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            admin = AIOKafkaAdminClient(**self._options)
            consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **self._options)
            self._admin, self._consumer = admin, consumer
            await admin.start()
            await consumer.start()
        return self._admin, self._consumer

    async def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        """Return the partitions of `topics`: one Metadata request, then cached for a while.

        Partitions are only ever added, rarely: the list is asked again every
        `PARTITIONS_MAX_AGE` seconds, and on every check while a topic is still unknown.
        """
        admin, _ = await self._clients()
        now = time.monotonic()
        if self._partitions is None or now >= self._refresh_at:
            described = await admin.describe_topics(list(topics))
            found = [
                TopicPartition(topic["topic"], partition["partition"])
                for topic in described
                if topic["error_code"] == 0
                for partition in topic["partitions"]
            ]
            self._partitions = sorted(found, key=lambda tp: (tp.topic, tp.partition))
            # an unknown topic (not created yet) is asked for again on the next check
            complete = {tp.topic for tp in found} >= set(topics)
            self._refresh_at = now + PARTITIONS_MAX_AGE if complete else now
        return list(self._partitions)

    async def committed(
        self, group_id: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Return the group's committed offsets: one OffsetFetch to its coordinator."""
        admin, _ = await self._clients()
        if self._coordinator is None:
            self._coordinator = await admin.find_coordinator(group_id)
        offsets = await admin.list_consumer_group_offsets(
            group_id, group_coordinator_id=self._coordinator, partitions=list(partitions)
        )
        return {tp: meta.offset for tp, meta in offsets.items()}

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Return the end offsets: one ListOffsets per partition leader."""
        _, consumer = await self._clients()
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(list(partitions))
        return offsets

    async def start_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Return the log start offsets: one ListOffsets per partition leader."""
        _, consumer = await self._clients()
        offsets: dict[TopicPartition, int] = await consumer.beginning_offsets(list(partitions))
        return offsets

    async def close(self) -> None:
        """Close both clients and forget the coordinator (it may have moved)."""
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = self._coordinator = self._partitions = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()


class LagMonitor:
    """Measures a consumer group's lag from the broker every `interval` seconds (0 = never)."""

    def __init__(
        self,
        reader: OffsetReader,
        *,
        service: str,
        group_id: str,
        topics: Sequence[str],
        interval: float,
    ) -> None:
        self._reader = reader
        self._service = service
        self._group_id = group_id
        self._topics = tuple(topics)
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> tuple[PartitionLag, ...]:
        """Measure once and publish the gauges; raise what the broker raised."""
        partitions = await self._reader.partitions(self._topics)
        if not partitions:
            return ()
        committed = await self._reader.committed(self._group_id, partitions)
        end = await self._reader.end_offsets(partitions)
        missing = without_commit(partitions, committed)
        start = await self._reader.start_offsets(missing) if missing else {}
        lags = measure(end, committed, start)
        for item in lags:
            labels = (self._service, item.topic, str(item.partition))
            LAG.labels(*labels).set(item.lag)
            COMMITTED.labels(*labels).set(item.committed)
        return lags

    async def tick(self) -> bool:
        """Measure once within the interval; on failure log, count, reconnect next time."""
        try:
            async with asyncio.timeout(max(self._interval, 10.0)):
                await self.check()
        except Exception as exc:  # the broker is down or slow: the next tick tries again
            CHECK_FAILURES.labels(self._service).inc()
            log.warning(
                "consumer lag not measured",
                group=self._group_id,
                error=type(exc).__name__,
                detail=str(exc)[:300],
            )
            await self._reader.close()
            return False
        return True

    async def start(self) -> None:
        """Start measuring in the background (a no-op when the interval is 0)."""
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self._service}-lag-monitor")

    async def stop(self) -> None:
        """Stop measuring and close the connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._reader.close()

    async def _run(self) -> None:
        while True:
            # Sleep first: at start-up the broker may still be loading the group's coordinator,
            # and a service's first seconds are no time for a warning.
            await asyncio.sleep(self._interval)
            await self.tick()


def lag_monitor(
    settings: KafkaSettings, *, service: str, group_id: str, topics: Sequence[str]
) -> LagMonitor:
    """Return the lag monitor of `service`'s consumer group on `topics`, from its settings."""
    interval = settings.lag_interval_seconds
    reader = KafkaOffsetReader(
        settings, client_id=f"sada-{service}-lag", timeout=max(interval, 10.0)
    )
    return LagMonitor(reader, service=service, group_id=group_id, topics=topics, interval=interval)
