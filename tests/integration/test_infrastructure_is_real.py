"""Proof that the local infrastructure is the real thing and our safe defaults hold on it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from email.message import EmailMessage

import aiosmtplib
import pytest
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.errors import DuplicateKeyError

from shared.kafka import BatchRunner, Record, batch_subscriber, make_broker
from shared.mongo import make_client
from shared.settings import KafkaSettings, MongoSettings
from tests import infra


def _consuming_broker(topic: str, group: str, seen: list[bytes]) -> KafkaBroker:
    settings = KafkaSettings(bootstrap_servers=infra.KAFKA, batch_timeout_ms=50)
    broker = make_broker(settings, service="infra-test")
    runner = BatchRunner(broker, service="infra-test", version="test", hold_seconds=5)

    async def work(records: Sequence[Record]) -> None:
        seen.extend(record.value for record in records)

    @batch_subscriber(broker, topic, group_id=group, settings=settings)
    async def handle(_bodies: list[bytes], msg: KafkaMessage) -> None:
        await runner.run(msg, work)

    return broker


async def test_broker_is_safe_by_default() -> None:
    broker = make_broker(KafkaSettings(bootstrap_servers=infra.KAFKA), service="infra-test")
    await broker.connect()
    try:
        producer = broker.config.producer._producer.producer  # type: ignore[attr-defined]
        # idempotence gives the producer a transaction manager (producer id + sequence numbers)
        assert producer._txn_manager is not None
        assert producer._sender._acks == -1
    finally:
        await broker.stop()


async def test_group_commits_after_handling_and_a_restart_resumes_from_the_commit() -> None:
    topic, group = infra.unique("it-commit"), infra.unique("it-group")
    await infra.create_topics(topic)
    seen: list[bytes] = []
    broker = _consuming_broker(topic, group, seen)
    await broker.start()
    for i in range(10):
        await broker.publish(f"first-{i}".encode(), topic)
    await infra.wait_until(lambda: len(seen) == 10)
    await broker.stop()
    assert await infra.committed(group, topic) == 10

    publisher = make_broker(KafkaSettings(bootstrap_servers=infra.KAFKA), service="infra-test")
    await publisher.start()
    for i in range(5):
        await publisher.publish(f"second-{i}".encode(), topic)
    await publisher.stop()

    resumed: list[bytes] = []
    broker = _consuming_broker(topic, group, resumed)
    await broker.start()
    await infra.wait_until(lambda: len(resumed) >= 5)
    await asyncio.sleep(1.0)  # anything re-handled would arrive within this window
    await broker.stop()
    assert resumed == [f"second-{i}".encode() for i in range(5)]
    assert seen == [f"first-{i}".encode() for i in range(10)]
    assert await infra.committed(group, topic) == 15


async def test_ferretdb_stores_documents_and_a_unique_index_rejects_a_duplicate() -> None:
    client = make_client(MongoSettings(uri=infra.MONGO_URI), app_name="infra-test")
    collection = client[infra.unique("it-db")]["things"]
    try:
        await collection.create_index([("natural_key", 1)], unique=True)
        await collection.insert_one({"_id": "a", "natural_key": 1, "text": "مرحبا"})
        with pytest.raises(DuplicateKeyError):
            await collection.insert_one({"_id": "a", "natural_key": 2})
        with pytest.raises(DuplicateKeyError):
            await collection.insert_one({"_id": "b", "natural_key": 1})
        stored = await collection.find_one({"_id": "a"})
        assert stored is not None
        assert stored["text"] == "مرحبا"
    finally:
        await client.drop_database(collection.database.name)
        await client.close()


async def test_email_sent_with_aiosmtplib_arrives_in_the_sink() -> None:
    marker = infra.unique("it-mail")
    message = EmailMessage()
    message["From"] = "sada@example.org"
    message["To"] = "voc@example.org"
    message["Subject"] = f"{marker} اختبار"
    message.set_content("نص عربي للتجربة")
    await aiosmtplib.send(message, hostname=infra.SMTP_HOST, port=infra.SMTP_PORT)

    def arrived() -> list[EmailMessage]:
        return [m for m in infra.sink_messages() if marker in str(m["Subject"])]

    await infra.wait_until(lambda: len(arrived()) == 1, within=10)
    received = arrived()[0]
    assert received["X-Sada-Sink-Envelope-To"] == "voc@example.org"
