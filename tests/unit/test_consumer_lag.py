"""Consumer lag from broker offsets (`shared.lag`): the arithmetic and the monitor's resilience."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from shared.lag import LagMonitor, PartitionLag, measure, without_commit

T = "feedback.routed.v1"
P0, P1, P2 = (TopicPartition(T, n) for n in range(3))


def test_lag_is_the_end_offset_minus_the_committed_offset_per_partition() -> None:
    lags = measure({P1: 40, P0: 10}, {P0: 7, P1: 40}, {})
    assert lags == (PartitionLag(T, 0, 7, 10), PartitionLag(T, 1, 40, 40))
    assert [lag.lag for lag in lags] == [3, 0]


def test_a_partition_without_a_commit_counts_from_the_log_start() -> None:
    committed = {P0: 5, P1: -1}  # P2 missing: the group never committed there either
    assert without_commit([P0, P1, P2], committed) == [P1, P2]
    lags = measure({P0: 9, P1: 30, P2: 4}, committed, {P1: 10, P2: 0})
    assert [(lag.committed, lag.lag) for lag in lags] == [(5, 4), (10, 20), (0, 4)]


def test_a_commit_behind_the_log_start_counts_from_the_log_start() -> None:
    # retention deleted records the group never read: it resumes at the log start
    (lag,) = measure({P0: 100}, {P0: 3}, {P0: 60})
    assert (lag.committed, lag.lag) == (60, 40)


def test_lag_is_never_negative() -> None:
    # a commit past the end (a topic recreated under the same name) is not negative lag
    (lag,) = measure({P0: 2}, {P0: 50}, {})
    assert lag.lag == 0


class FakeReader:
    """Offsets held in memory; `down` makes every call fail like an unreachable broker."""

    def __init__(self) -> None:
        self.end = {P0: 10, P1: 4}
        self.commits = {P0: 10, P1: -1}
        self.down = False
        self.closed = 0
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]")

    async def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        self._call("partitions")
        return [tp for tp in self.end if tp.topic in topics]

    async def committed(
        self, group_id: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self._call("committed")
        return {tp: self.commits.get(tp, -1) for tp in partitions}

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        self._call("end_offsets")
        return {tp: self.end[tp] for tp in partitions}

    async def start_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self._call("start_offsets")
        return dict.fromkeys(partitions, 0)

    async def close(self) -> None:
        self.closed += 1


def _gauge(name: str, service: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        name, {"service": service, "topic": T, "partition": str(partition)}
    )


def _failures(service: str) -> float:
    value = REGISTRY.get_sample_value(
        "sada_consumer_lag_check_failures_total", {"service": service}
    )
    return value or 0.0


async def test_a_stuck_group_shows_growing_lag_and_an_unchanged_commit() -> None:
    reader = FakeReader()
    monitor = LagMonitor(reader, service="unit-stuck", group_id="g", topics=[T], interval=15)
    assert await monitor.tick()
    assert _gauge("sada_consumer_lag", "unit-stuck", 0) == 0
    assert _gauge("sada_consumer_lag", "unit-stuck", 1) == 4
    reader.end = {P0: 25, P1: 9}  # records keep coming, the group commits nothing
    assert await monitor.tick()
    assert _gauge("sada_consumer_lag", "unit-stuck", 0) == 15
    assert _gauge("sada_consumer_lag", "unit-stuck", 1) == 9
    assert _gauge("sada_consumer_committed_offset", "unit-stuck", 0) == 10
    assert _gauge("sada_consumer_committed_offset", "unit-stuck", 1) == 0


async def test_a_check_asks_each_offset_once_and_the_log_start_only_without_a_commit() -> None:
    reader = FakeReader()
    monitor = LagMonitor(reader, service="unit-calls", group_id="g", topics=[T], interval=15)
    await monitor.check()
    assert reader.calls == ["partitions", "committed", "end_offsets", "start_offsets"]
    reader.commits[P1] = 4
    reader.calls.clear()
    await monitor.check()
    assert reader.calls == ["partitions", "committed", "end_offsets"]


async def test_a_broker_outage_is_counted_and_the_monitor_recovers() -> None:
    reader = FakeReader()
    monitor = LagMonitor(reader, service="unit-outage", group_id="g", topics=[T], interval=15)
    assert await monitor.tick()
    reader.down = True
    assert not await monitor.tick()
    assert not await monitor.tick()
    assert _failures("unit-outage") == 2
    assert reader.closed == 2  # reconnects from scratch next time
    assert _gauge("sada_consumer_lag", "unit-outage", 1) == 4  # the last measurement stays
    reader.down = False
    reader.end = {P0: 12, P1: 4}
    assert await monitor.tick()
    assert _gauge("sada_consumer_lag", "unit-outage", 0) == 2
    assert _failures("unit-outage") == 2


async def test_the_background_task_survives_failures_and_stops_cleanly() -> None:
    reader = FakeReader()
    reader.down = True
    monitor = LagMonitor(reader, service="unit-task", group_id="g", topics=[T], interval=0.01)
    await monitor.start()
    async with asyncio.timeout(30):  # a bound on a hang, not a timed assertion
        while _failures("unit-task") < 3:  # noqa: ASYNC110 - the task's progress is the counter
            await asyncio.sleep(0.01)
        reader.down = False
        while _gauge("sada_consumer_lag", "unit-task", 1) != 4:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await monitor.stop()
    assert reader.closed >= 4  # after each failure, and at stop


async def test_an_interval_of_zero_never_measures() -> None:
    reader = FakeReader()
    monitor = LagMonitor(reader, service="unit-off", group_id="g", topics=[T], interval=0)
    await monitor.start()
    await monitor.stop()
    assert _gauge("sada_consumer_lag", "unit-off", 0) is None
