"""Kafka helpers for the benchmark: topics, fast pre-filling, and watching a group's commits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from deploy.local.topics import ensure_topics
from shared.kafka import Outgoing
from shared.settings import KafkaSettings

PARTITIONS = 3
"""Partitions of every benchmark topic: what `make run` creates (deploy/local/topics.py)."""


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a watcher's background task and wait until it has stopped (None: nothing to do)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class TailReader:
    """Reads every partition of some topics from their current ends, in a background task.

    The benchmarks' readers watch only what a run produces; `position` is awaited in `start` so
    the end is fixed then, before the run sends anything, not at the first fetch. A subclass
    says what it does with the records in `_read`, polling `self._consumer`.
    """

    def __init__(self, bootstrap: str, names: Sequence[str], partitions: int) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
        )
        self._parts = [TopicPartition(t, p) for t in names for p in range(partitions)]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Assign every partition, positioned at its end, and start reading."""
        await self._consumer.start()
        self._consumer.assign(self._parts)
        await self._consumer.seek_to_end(*self._parts)
        for tp in self._parts:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop reading."""
        await cancel(self._task)
        await self._consumer.stop()


def producer(bootstrap: str, **extra: object) -> AIOKafkaProducer:
    """Return a producer with the services' delivery settings (acks=all, idempotent)."""
    defaults = KafkaSettings()
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=defaults.linger_ms,
        max_batch_size=defaults.max_batch_size,
        **extra,
    )


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int = PARTITIONS) -> None:
    """Create `names` (missing ones only) with `partitions` partitions each."""
    await ensure_topics(bootstrap, partitions, tuple(names), single_node=True)


async def fill(bootstrap: str, records: Iterable[Outgoing], chunk: int = 5000) -> int:
    """Produce `records` (acks=all), waiting for every acknowledgement; return the count."""
    sent = 0
    client = producer(bootstrap)
    await client.start()
    try:
        pending: list[asyncio.Future[object]] = []
        for item in records:
            pending.append(await client.send(item.topic, item.value, key=item.key.encode()))
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending.clear()
        await asyncio.gather(*pending)
        sent += len(pending)
    finally:
        await client.stop()
    return sent


async def ready_for_groups(bootstrap: str, within: float = 60.0) -> None:
    """Wait until the broker has a group coordinator (a fresh one creates it on first use)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="sada-bench")
    await admin.start()
    deadline = time.monotonic() + within
    try:
        while True:
            try:
                await admin.find_coordinator("sada-bench-warm-up")
                return
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()


@dataclass
class Progress:
    """How far a consumer group got: (monotonic time, committed records, this process's CPU
    time) at the first commit seen and at the last."""

    first: tuple[float, int, float] | None = None
    last: tuple[float, int, float] | None = None

    def rate(self) -> float:
        """Return records/s between the first commit seen and the last one."""
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return float("nan")
        return (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])

    def cpu_us_per_record(self) -> float:
        """Return this process's CPU time per record over the same window, in microseconds.

        Meaningful when the consumer runs in this process: unlike the rate, it hardly moves
        when other work competes for the cores.
        """
        if self.first is None or self.last is None or self.last[1] <= self.first[1]:
            return float("nan")
        return 1e6 * (self.last[2] - self.first[2]) / (self.last[1] - self.first[1])


async def watch_commits(
    bootstrap: str, group: str, target: int, *, within: float, every: float = 0.02
) -> Progress:
    """Poll `group`'s committed offsets until they add up to `target`; time the progress.

    The clock starts at the first commit seen, not at start-up, so the consumer's connection
    and group join (identical work for every contender) are not counted: the figure is the
    steady-state rate of consume → produce → acknowledge → commit.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="sada-bench-watch")
    await admin.start()
    progress = Progress()
    deadline = time.monotonic() + within
    try:
        while True:
            try:
                offsets = await admin.list_consumer_group_offsets(group)
            except KafkaError as exc:
                # A fresh broker creates its offsets topic (the group coordinator) on first use.
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            committed = sum(max(0, meta.offset) for meta in offsets.values())
            now = time.monotonic()
            if committed > 0:
                if progress.first is None:
                    progress.first = (now, committed, time.process_time())
                progress.last = (now, committed, time.process_time())
            if committed >= target:
                return progress
            if now > deadline:
                msg = f"group {group} committed {committed} of {target} within {within:.0f} s"
                raise TimeoutError(msg)
            await asyncio.sleep(every)
    finally:
        await admin.close()
