"""The README's Kafka example, run as an integrator runs it, feeds a real intake on real Kafka."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer

from services.intake.app import build
from services.intake.settings import IntakeSettings
from shared import topics
from shared.events import SubmissionAccepted
from shared.settings import KafkaSettings
from tests import channel_examples as examples
from tests import infra
from tests.integration.test_intake_on_kafka import read


@pytest.fixture
async def intake() -> AsyncIterator[IntakeSettings]:
    settings = IntakeSettings(
        environment="test",
        group_id=infra.unique("it-example"),
        submissions_topic=infra.unique("it-example-submissions"),
        accepted_topic=infra.unique("it-example-accepted"),
        rejected_topic=infra.unique("it-example-rejected"),
        kafka=KafkaSettings(bootstrap_servers=infra.KAFKA, batch_timeout_ms=50, hold_seconds=5),
        api_keys={"istitlaa": ["0" * 64]},
    )
    await infra.create_topics(
        settings.submissions_topic, settings.accepted_topic, settings.rejected_topic
    )
    app = build(settings)
    async with app.router.lifespan_context(app):
        yield settings


async def run_example(bootstrap: str, topic: str) -> None:
    """Run the README's Python example in its own interpreter, pointed at the test's broker."""
    code = examples.block("kafka")
    assert code.count('"127.0.0.1:9092"') == 1
    assert code.count(f'"{topics.SUBMISSIONS}"') == 1
    code = code.replace('"127.0.0.1:9092"', repr(bootstrap))
    code = code.replace(f'"{topics.SUBMISSIONS}"', repr(topic))
    # its own interpreter, while intake keeps consuming in this event loop
    example = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, stderr = await example.communicate()
    assert example.returncode == 0, stderr.decode()


async def test_the_kafka_example_is_accepted_by_intake(intake: IntakeSettings) -> None:
    await run_example(infra.KAFKA, intake.submissions_topic)

    consumer = AIOKafkaConsumer(
        intake.submissions_topic,
        bootstrap_servers=infra.KAFKA,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            raw = await consumer.getone()
    finally:
        await consumer.stop()
    submission = examples.kafka_submission()
    assert raw.key == f"{submission['channel']}/{submission['channel_ref']}".encode()
    assert dict(raw.headers) == {"content-type": b"application/json"}

    (record,) = await read(intake.accepted_topic, 1)
    event = SubmissionAccepted.model_validate_json(record.value)
    assert event.payload.submission.channel_ref == submission["channel_ref"]
    assert event.payload.door == "kafka"
    assert record.key == event.submission_id.encode()
