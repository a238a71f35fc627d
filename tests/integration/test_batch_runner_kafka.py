"""`BatchRunner` on the real Kafka: an outage while a poison record is isolated loses nothing.

The batch holds a poison record; isolating it meets a store that is down for longer than the
hold window, so the isolation fails with a transient error. The runner must rewind and commit
nothing; later batches must not commit past the unhandled records; once the store is back
every record is handled and the poison one is dead-lettered exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.errors import AutoReconnect

from shared.kafka import BatchRunner, Record, batch_subscriber, make_broker
from shared.settings import KafkaSettings
from tests import infra

POISON = b"poison"


class Store:
    """The work's dependency: down until the test says otherwise."""

    def __init__(self) -> None:
        self.down = True
        self.refusals = 0
        self.handled: list[bytes] = []

    async def work(self, records: Sequence[Record]) -> None:
        if any(r.value == POISON for r in records):
            raise ValueError("not a v1 event")  # found before any write, like the archive
        if self.down:
            self.refusals += 1
            raise AutoReconnect("store down")
        self.handled.extend(r.value or b"" for r in records)


async def _read_all(topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.KAFKA, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        end = (await consumer.end_offsets([TopicPartition(topic, 0)]))[TopicPartition(topic, 0)]
        values: list[bytes] = []
        while len(values) < end:
            batch = await consumer.getmany(timeout_ms=1000)
            values.extend(r.value or b"" for rs in batch.values() for r in rs)
        return values
    finally:
        await consumer.stop()


def _broker(topic: str, deadletter: str, group: str, store: Store) -> KafkaBroker:
    settings = KafkaSettings(bootstrap_servers=infra.KAFKA, batch_timeout_ms=50, max_records=100)
    broker = make_broker(settings, service="runner-test")
    runner = BatchRunner(
        broker, service="runner-test", version="test", hold_seconds=0.5, deadletter_topic=deadletter
    )

    @batch_subscriber(broker, topic, group_id=group, settings=settings)
    async def handle(_bodies: list[bytes], msg: KafkaMessage) -> None:
        await runner.run(msg, store.work)

    return broker


async def test_an_outage_while_isolating_a_poison_record_loses_nothing_on_kafka() -> None:
    topic, deadletter = infra.unique("it-runner"), infra.unique("it-runner-dl")
    group = infra.unique("it-runner-group")
    await infra.create_topics(topic, deadletter)
    first = [POISON if i == 5 else f"first-{i}".encode() for i in range(10)]
    publisher = make_broker(KafkaSettings(bootstrap_servers=infra.KAFKA), service="runner-test")
    await publisher.start()
    for value in first:  # all in the log before the consumer starts: one batch holds them
        await publisher.publish(value, topic)
    store = Store()
    broker = _broker(topic, deadletter, group, store)
    await broker.start()
    try:
        await infra.wait_until(lambda: store.refusals >= 3)  # isolation met the outage, again
        assert await infra.committed(group, topic) is None
        for i in range(5):  # later batches must not commit past the unhandled records
            await publisher.publish(f"second-{i}".encode(), topic)
        await infra.wait_until(lambda: store.refusals >= 6)
        assert await infra.committed(group, topic) is None
        store.down = False
        await infra.wait_until(lambda: len(store.handled) >= 14)
    finally:
        await broker.stop()
        await publisher.stop()
    expected = [v for v in first if v != POISON] + [f"second-{i}".encode() for i in range(5)]
    assert sorted(store.handled) == sorted(expected)
    assert len(store.handled) == len(expected)  # nothing handled twice either
    assert await infra.committed(group, topic) == 15
    dead = await _read_all(deadletter)
    assert len(dead) == 1
    assert b'"offset":5' in dead[0]
