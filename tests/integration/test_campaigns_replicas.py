"""Two campaigns replicas on the real broker, a rebalance and a SIGKILL mid-stream: one answer.

Routed events are keyed by scope, so whichever replica owns a partition owns its scopes; a
scope that moves is rebuilt from MongoDB. The test starts replica A, publishes a third of the
labelled corpus, starts replica B (a rebalance), publishes another third, publishes the rest
and SIGKILLs A while it works: every submission must get the decision one process reading the
corpus in order would give, and both replicas must have decided some of them.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared import events
from tests import campaign_support, infra
from tests.integration.production_configs import free_port
from tests.integration.service_processes import Process, start, wait_ready

PARTITIONS = 4
SETTLED_WITHIN = 120.0


async def create_topics(*names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    finally:
        await admin.close()


class Collected:
    """Every grouped event on the topic, by submission id (a redelivery adds a copy)."""

    def __init__(self) -> None:
        self.by_submission: dict[str, list[events.SubmissionGrouped]] = {}

    async def collect(self, topic: str) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=infra.KAFKA, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
            await consumer.seek_to_beginning()
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        event = events.SubmissionGrouped.model_validate_json(record.value or b"")
                        self.by_submission.setdefault(event.submission_id, []).append(event)
        finally:
            await consumer.stop()

    async def until(self, count: int) -> None:
        await infra.wait_until(lambda: len(self.by_submission) >= count, within=SETTLED_WITHIN)


async def decisions_made(replica: Process) -> float:
    async with httpx.AsyncClient(timeout=5.0) as client:
        text = (await client.get(f"{replica.url}/metrics")).text
    found = re.findall(r"^sada_campaign_decisions_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return sum(float(value) for value in found)


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[dict[str, str], list[Process]]]:
    routed_topic, grouped_topic = infra.unique("it-routed"), infra.unique("it-grouped")
    await create_topics(routed_topic, grouped_topic)
    env = {
        "SADA_KAFKA__BOOTSTRAP_SERVERS": infra.KAFKA,
        "SADA_MONGO__URI": infra.MONGO_URI,
        "SADA_MONGO__DATABASE": infra.unique("it_campaigns_replicas").replace("-", "_"),
        "SADA_ROUTED_TOPIC": routed_topic,
        "SADA_GROUPED_TOPIC": grouped_topic,
        "SADA_GROUP_ID": infra.unique("it-campaigns"),
        "SADA_KAFKA__MAX_RECORDS": "15",
        "SADA_KAFKA__LAG_INTERVAL_SECONDS": "0",
        "SADA_LOG_JSON": "true",
    }
    started: list[Process] = []
    try:
        yield env, started
    finally:
        for process in started:
            process.stop()


def replica(env: dict[str, str], name: str, log_dir: Path) -> Process:
    return start("campaigns", env | {"SADA_HTTP_PORT": str(free_port())}, log_dir / name)


async def test_two_replicas_with_a_rebalance_and_a_crash_group_every_copy_as_one_process(
    replicas: tuple[dict[str, str], list[Process]], tmp_path: Path
) -> None:
    env, started = replicas
    routed = campaign_support.corpus_events()
    expected = campaign_support.expected(routed)
    collected = Collected()
    collector = asyncio.create_task(collected.collect(env["SADA_GROUPED_TOPIC"]))
    producer = AIOKafkaProducer(bootstrap_servers=infra.KAFKA, acks="all", enable_idempotence=True)
    await producer.start()

    async def publish(part: list[events.SubmissionRouted]) -> None:
        for event in part:  # in order: one scope's events keep it on their partition
            await producer.send(
                env["SADA_ROUTED_TOPIC"],
                event.model_dump_json().encode(),
                key=campaign_support.scope_key(event).encode(),
            )
        await producer.flush()

    third = len(routed) // 3
    try:
        a = replica(env, "a", tmp_path)
        started.append(a)
        await wait_ready(a)
        await publish(routed[:third])
        await collected.until(third)
        b = replica(env, "b", tmp_path)  # joining the group: a rebalance
        started.append(b)
        await wait_ready(b)
        await publish(routed[third : 2 * third])
        await collected.until(2 * third)
        decided_by_a = await decisions_made(a)
        await publish(routed[2 * third :])
        a.process.send_signal(signal.SIGKILL)  # mid-stream: B takes its partitions over
        await collected.until(len(routed))
        decided_by_b = await decisions_made(b)
    finally:
        await producer.stop()
        collector.cancel()

    assert decided_by_a > 0, "replica A decided nothing: no rebalance was tested"
    assert decided_by_b > 0, "replica B decided nothing: no rebalance was tested"
    joined = 0
    for event in routed:
        want = expected[event.event_id]
        copies = collected.by_submission[event.submission_id]
        assert {copy.event_id for copy in copies} == {copies[0].event_id}
        for copy in copies:  # a redelivered decision is the same decision
            got = copy.payload.campaign
            assert copy.payload.scope == want.scope
            if want.campaign_id is None:
                assert got is None, event.reference
                continue
            assert got is not None, event.reference
            assert (got.campaign_id, got.size, got.similar_to) == (
                want.campaign_id,
                want.campaign_size,
                want.similar_to,
            ), event.reference
        joined += want.campaign_id is not None
    assert joined > len(routed) // 2
