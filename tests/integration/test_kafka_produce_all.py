"""`shared.kafka.produce_all` on the real broker: every record acknowledged, keyed, typed."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from shared.kafka import Outgoing, kafka_producer, make_broker, produce_all
from shared.settings import KafkaSettings
from tests import infra


async def _create(topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()


async def _read_all(topic: str, count: int) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.KAFKA, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: list[tuple[bytes, bytes, dict[str, bytes]]] = []
    try:
        while len(seen) < count:
            batches = await consumer.getmany(timeout_ms=1000)
            assert batches, f"only {len(seen)} of {count} records arrived"
            for records in batches.values():
                seen += [(r.key, r.value, dict(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return seen


async def test_produce_all_returns_once_every_record_is_acknowledged_on_the_safe_producer() -> None:
    topic = infra.unique("it-produce-all")
    await _create(topic)
    broker = make_broker(KafkaSettings(bootstrap_servers=infra.KAFKA), service="it-produce")
    await broker.connect()
    try:
        producer = kafka_producer(broker)
        assert producer is not None
        assert producer._sender._acks == -1  # acks=all
        assert producer._txn_manager is not None  # idempotence
        before = REGISTRY.get_sample_value("sada_produced_records_total", {"topic": topic}) or 0
        outgoing = [Outgoing(topic, f"sub-{i % 7}", f'{{"n": {i}}}'.encode()) for i in range(300)]
        await produce_all(broker, outgoing)
        after = REGISTRY.get_sample_value("sada_produced_records_total", {"topic": topic})
        assert after == before + 300
    finally:
        await broker.stop()
    records = await _read_all(topic, 300)
    assert sorted(v for _, v, _ in records) == sorted(o.value for o in outgoing)
    assert {k for k, _, _ in records} == {f"sub-{i}".encode() for i in range(7)}
    assert all(h == {"content-type": b"application/json"} for _, _, h in records)


async def test_produce_all_needs_a_connected_broker() -> None:
    broker = make_broker(KafkaSettings(bootstrap_servers=infra.KAFKA), service="it-produce")
    assert kafka_producer(broker) is None  # not connected: produce_all falls back to publish
