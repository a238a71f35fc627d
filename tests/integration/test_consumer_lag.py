"""Consumer lag measured from the real broker: committed vs end offsets, and an unreachable one."""

from __future__ import annotations

import socket

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from shared.lag import lag_monitor
from shared.settings import KafkaSettings
from tests import infra


async def _create(topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def _produce(topic: str, per_partition: dict[int, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.KAFKA, acks="all")
    await producer.start()
    try:
        for partition, count in per_partition.items():
            for n in range(count):
                await producer.send_and_wait(topic, f"r{n}".encode(), partition=partition)
    finally:
        await producer.stop()


async def _commit(group: str, offsets: dict[TopicPartition, int]) -> None:
    # A consumer of the group with manual assignment: it commits without joining the group.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=infra.KAFKA, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


def _gauges(name: str, service: str, topic: str) -> dict[int, float | None]:
    return {
        p: REGISTRY.get_sample_value(
            name, {"service": service, "topic": topic, "partition": str(p)}
        )
        for p in range(3)
    }


async def test_lag_is_end_minus_committed_per_partition_and_grows_while_nothing_commits() -> None:
    topic, group, service = infra.unique("it-lag"), infra.unique("it-lag-group"), "it-lag"
    await _create(topic, 3)
    await _produce(topic, {0: 10, 1: 6})
    await _commit(group, {TopicPartition(topic, 0): 4, TopicPartition(topic, 1): 6})
    monitor = lag_monitor(
        KafkaSettings(bootstrap_servers=infra.KAFKA, lag_interval_seconds=15),
        service=service,
        group_id=group,
        topics=[topic],
    )
    try:
        assert await monitor.tick()
        # partition 2: no record and no commit, so nothing waits
        assert _gauges("sada_consumer_lag", service, topic) == {0: 6, 1: 0, 2: 0}
        await _produce(topic, {1: 5, 2: 3})  # the group is stuck: it commits nothing
        assert await monitor.tick()
        assert _gauges("sada_consumer_lag", service, topic) == {0: 6, 1: 5, 2: 3}
        committed = _gauges("sada_consumer_committed_offset", service, topic)
        assert committed == {0: 4, 1: 6, 2: 0}  # partition 2 counts from its log start
        await _commit(group, {TopicPartition(topic, 0): 10})
        assert await monitor.tick()
        assert _gauges("sada_consumer_lag", service, topic)[0] == 0
    finally:
        await monitor.stop()


async def test_a_topic_created_after_the_first_check_is_measured_on_the_next() -> None:
    first, later = infra.unique("it-lag-first"), infra.unique("it-lag-later")
    group, service = infra.unique("it-lag-group"), "it-lag-later"
    await _create(first, 1)
    monitor = lag_monitor(
        KafkaSettings(bootstrap_servers=infra.KAFKA),
        service=service,
        group_id=group,
        topics=[first, later],
    )
    try:
        assert await monitor.tick()
        assert _gauges("sada_consumer_lag", service, later)[0] is None
        await _create(later, 1)
        await _produce(later, {0: 2})
        assert await monitor.tick()
        assert _gauges("sada_consumer_lag", service, later)[0] == 2
    finally:
        await monitor.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


async def test_an_unreachable_broker_is_counted_not_raised() -> None:
    service = infra.unique("it-lag-down")
    monitor = lag_monitor(
        KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}"),
        service=service,
        group_id="sada-router",
        topics=["feedback.accepted.v1"],
    )
    try:
        assert not await monitor.tick()
        assert not await monitor.tick()
    finally:
        await monitor.stop()
    failures = REGISTRY.get_sample_value(
        "sada_consumer_lag_check_failures_total", {"service": service}
    )
    assert failures == 2
