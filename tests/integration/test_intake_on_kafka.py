"""Intake on the real Kafka: both doors, bad input that never blocks, commits after the acks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from services.intake.apikeys import hash_key
from services.intake.app import build
from services.intake.settings import IntakeSettings
from shared.events import SubmissionAccepted, SubmissionRejected
from shared.settings import KafkaSettings
from tests import infra

KEY = "it-key-istitlaa"


@dataclass(frozen=True)
class Running:
    """A running intake app on unique topics, with an HTTP client bound to it."""

    settings: IntakeSettings
    http: httpx.AsyncClient


def submission(ref: str, **changes: Any) -> bytes:
    return orjson.dumps(
        {
            "channel": "istitlaa",
            "channel_ref": ref,
            "kind": "comment",
            "legislation_ref": "MOJ-DRAFT-2026-003",
            "body": "ملاحظة على المادة الثانية من مشروع النظام.",
            "submitted_at": "2026-11-25T10:00:00+03:00",
            **changes,
        }
    )


async def read(topic: str, count: int, *, within: float = 30.0) -> list[ConsumerRecord[Any, Any]]:
    """Read exactly `count` records from `topic`, then make sure no more arrive."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.KAFKA, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        records: list[ConsumerRecord[Any, Any]] = []
        async with asyncio.timeout(within):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        extra = await consumer.getmany(timeout_ms=500)
        assert not any(extra.values()), "more events than expected"
        return records
    finally:
        await consumer.stop()


async def wait_committed(group: str, topic: str, offset: int, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while await infra.committed(group, topic) != offset:  # noqa: ASYNC110 - state is in Kafka
            await asyncio.sleep(0.2)


@pytest.fixture
async def intake() -> AsyncIterator[Running]:
    settings = IntakeSettings(
        environment="test",
        group_id=infra.unique("it-intake"),
        submissions_topic=infra.unique("it-intake-submissions"),
        accepted_topic=infra.unique("it-intake-accepted"),
        rejected_topic=infra.unique("it-intake-rejected"),
        api_keys={"istitlaa": [hash_key(KEY)]},
        kafka=KafkaSettings(bootstrap_servers=infra.KAFKA, batch_timeout_ms=50, hold_seconds=5),
    )
    await infra.create_topics(
        settings.submissions_topic, settings.accepted_topic, settings.rejected_topic
    )
    app = build(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield Running(settings, client)


async def test_raw_to_accepted_and_garbage_rejected_while_the_messages_behind_it_flow(
    intake: Running,
) -> None:
    settings = intake.settings
    producer = AIOKafkaProducer(bootstrap_servers=infra.KAFKA, acks="all")
    await producer.start()
    try:
        topic = settings.submissions_topic
        await producer.send_and_wait(topic, submission("IT-1"))
        await producer.send_and_wait(topic, b"\xff garbage {")
        # an upstream channel with a binary header: judged on its value like any other record
        binary = [("trace", b"\xff\xfe\x00"), ("null", None)]
        await producer.send_and_wait(topic, b"[1, 2]", headers=binary)
        await producer.send_and_wait(topic, submission("IT-2"), headers=binary)
        await producer.send_and_wait(topic, submission("IT-3"))
    finally:
        await producer.stop()

    accepted = [
        SubmissionAccepted.model_validate_json(r.value)
        for r in await read(settings.accepted_topic, 3)
    ]
    rejected_records = await read(settings.rejected_topic, 2)
    rejected = [SubmissionRejected.model_validate_json(r.value) for r in rejected_records]

    assert [e.payload.submission.channel_ref for e in accepted] == ["IT-1", "IT-2", "IT-3"]
    assert [e.payload.source.offset for e in accepted if e.payload.source] == [0, 3, 4]
    assert [[r.code for r in e.payload.reasons] for e in rejected] == [
        ["invalid_utf8"],
        ["not_an_object"],
    ]
    assert rejected[0].payload.raw.endswith("garbage {")
    assert [r.key.decode() for r in rejected_records] == [e.submission_id for e in rejected]
    await wait_committed(settings.group_id, settings.submissions_topic, 5)


async def test_http_202_puts_the_event_on_the_accepted_topic_and_resubmission_keeps_ids(
    intake: Running,
) -> None:
    settings = intake.settings
    headers = {"Authorization": f"Bearer {KEY}"}
    first = await intake.http.post("/v1/submissions", content=submission("IT-H"), headers=headers)
    again = await intake.http.post(
        "/v1/submissions", content=submission("IT-H", body="نص معدّل"), headers=headers
    )
    bad = await intake.http.post(
        "/v1/submissions", content=submission("IT-H", kind="rant"), headers=headers
    )

    assert first.status_code == 202
    assert again.status_code == 202
    assert first.json() == again.json()
    assert bad.status_code == 422
    assert [r["code"] for r in bad.json()["reasons"]] == ["invalid_value"]

    # already acknowledged by Kafka when the 202 came back: the events are there
    accepted = [
        SubmissionAccepted.model_validate_json(r.value)
        for r in await read(settings.accepted_topic, 2, within=5)
    ]
    assert {(e.submission_id, e.reference) for e in accepted} == {
        (first.json()["submission_id"], first.json()["reference"])
    }
    assert all(e.payload.door == "http" for e in accepted)
    rejected = SubmissionRejected.model_validate_json(
        (await read(settings.rejected_topic, 1, within=5))[0].value
    )
    assert rejected.submission_id == first.json()["submission_id"]

    # the Kafka door gives the same ids for the same channel + channel_ref
    producer = AIOKafkaProducer(bootstrap_servers=infra.KAFKA, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.submissions_topic, submission("IT-H"))
    finally:
        await producer.stop()
    records = await read(settings.accepted_topic, 3)
    via_kafka = SubmissionAccepted.model_validate_json(records[-1].value)
    assert via_kafka.payload.door == "kafka"
    assert via_kafka.submission_id == first.json()["submission_id"]
    assert via_kafka.reference == first.json()["reference"]
