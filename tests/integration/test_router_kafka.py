"""The router on the real Kafka: accepted → routed with the right unit, explanation and ids."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.router.app import build
from services.router.rules import RoutingConfig
from services.router.settings import RouterSettings
from shared import events, ids, topics
from shared.settings import KafkaSettings
from tests import infra
from tests.router_support import EXPECTED, accepted, samples

Received: TypeAlias = tuple[bytes | None, bytes]


async def partitions_of(topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def create_topics(*names: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


@asynccontextmanager
async def running_router(
    accepted_topic: str, routed_topic: str
) -> AsyncIterator[tuple[RoutingConfig, str]]:
    settings = RouterSettings(
        accepted_topic=accepted_topic,
        routed_topic=routed_topic,
        group_id=infra.unique("it-router"),
        kafka=KafkaSettings(bootstrap_servers=infra.KAFKA, batch_timeout_ms=50, hold_seconds=5),
    )
    app = build(settings)
    await app.state.broker.start()
    try:
        yield app.state.routing, settings.group_id
    finally:
        await app.state.broker.stop()


async def publish(topic: str, items: list[tuple[str | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.KAFKA, acks="all")
    await producer.start()
    try:
        for key, value in items:
            await producer.send(topic, value, key=key.encode() if key else None)
        await producer.flush()
    finally:
        await producer.stop()


async def read(
    topic: str,
    count: int = 0,
    *,
    start: dict[TopicPartition, int] | None = None,
    until: Callable[[list[Received]], bool] | None = None,
    within: float = 30,
) -> list[Received]:
    """Read `topic` from `start` offsets (or the beginning) until `count` records or `until`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.KAFKA, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await partitions_of(topic)
        consumer.assign(partitions)
        for tp in partitions:
            if start and tp in start:
                consumer.seek(tp, start[tp])
            else:
                await consumer.seek_to_beginning(tp)
        done = until or (lambda found: len(found) >= count)
        found: list[Received] = []
        deadline = time.monotonic() + within
        while not done(found) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            found.extend((r.key, r.value) for rs in batches.values() for r in rs)
        return found
    finally:
        await consumer.stop()


async def committed(group: str, topic: str) -> int:
    """Return the sum of the group's committed offsets over the topic's partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.KAFKA, group_id=group)
    await consumer.start()
    try:
        offsets = [await consumer.committed(tp) for tp in await partitions_of(topic)]
    finally:
        await consumer.stop()
    return sum(offset or 0 for offset in offsets)


async def end_offsets(topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.KAFKA)
    await consumer.start()
    try:
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(await partitions_of(topic))
        return offsets
    finally:
        await consumer.stop()


async def test_accepted_samples_are_routed_with_unit_explanation_and_ids() -> None:
    source, sink = infra.unique("it-accepted"), infra.unique("it-routed")
    await create_topics(source, sink)
    subs = samples()
    await publish(
        source,
        [
            (s.submission_id, accepted(s, correlation_id=f"corr-{n}").model_dump_json().encode())
            for n, s in enumerate(subs, start=1)
        ],
    )
    async with running_router(source, sink) as (rules, group):
        records = await read(sink, len(subs))
        # The group commits each batch once its routed records were acknowledged.
        for _ in range(100):
            if await committed(group, source) == len(subs):
                break
            await asyncio.sleep(0.1)
    assert len(records) == len(subs)
    assert await committed(group, source) == len(subs)

    by_id = {s.submission_id: (n, s) for n, s in enumerate(subs, start=1)}
    routed_by_line = {}
    for key, value in records:
        routed = events.SubmissionRouted.model_validate_json(value)
        line, sub = by_id[routed.submission_id]
        routed_by_line[line] = routed
        decision = routed.payload.decision
        ref = sub.legislation_ref
        scope = f"legislation:{ref}" if ref else f"unit:{decision.unit}"
        assert key == scope.encode()  # one campaigns consumer owns a scope
        assert (decision.unit, decision.rule_id) == EXPECTED[line]
        assert decision.mailbox == rules.units[decision.unit].mailbox
        assert decision.rules_version == rules.version
        upstream = accepted(sub, correlation_id=f"corr-{line}").event_id
        assert routed.event_id == ids.event_id(
            sub.submission_id, "submission.routed", f"{rules.version}:{upstream}"
        )
        assert routed.correlation_id == f"corr-{line}"
        assert routed.reference == sub.reference
        assert routed.payload.submission == sub
    assert sorted(routed_by_line) == sorted(EXPECTED)

    keyword = routed_by_line[12].payload.decision
    assert keyword.reason == "keyword «مسودة لائحة» in body — the text mentions draft legislation"
    assert [(m.field, m.value) for m in keyword.matched] == [("body", "مسودة لائحة")]
    reference = routed_by_line[1].payload.decision
    assert reference.reason.startswith("legislation_ref MOJ-DRAFT-2026-003 present")
    assert [(m.field, m.value) for m in reference.matched] == [
        ("legislation_ref", "MOJ-DRAFT-2026-003")
    ]


async def test_a_replay_by_another_group_yields_the_same_event_ids() -> None:
    source, sink = infra.unique("it-accepted"), infra.unique("it-routed")
    await create_topics(source, sink)
    subs = samples()[:5]
    await publish(source, [(s.submission_id, accepted(s).model_dump_json().encode()) for s in subs])
    async with running_router(source, sink):
        first = await read(sink, len(subs))
    async with running_router(source, sink):  # a fresh group reads the topic again
        both = await read(sink, 2 * len(subs))

    def ids_of(records: list[Received]) -> list[str]:
        return sorted(orjson.loads(value)["event_id"] for _, value in records)

    assert len(first) == len(subs)
    assert ids_of(both) == sorted(ids_of(first) * 2)


async def test_a_poison_record_is_dead_lettered_and_the_partition_moves_on() -> None:
    source, sink = infra.unique("it-accepted"), infra.unique("it-routed")
    await create_topics(source, sink, partitions=1)
    await create_topics_if_missing(topics.DEADLETTER)
    before = await end_offsets(topics.DEADLETTER)
    good = samples()[3]
    await publish(
        source,
        [
            (None, b"\x00 not an event"),
            (good.submission_id, accepted(good).model_dump_json().encode()),
        ],
    )

    def ours(found: list[Received]) -> list[events.MessageDeadLettered]:
        letters = (events.MessageDeadLettered.model_validate_json(value) for _, value in found)
        return [letter for letter in letters if letter.payload.source.topic == source]

    async with running_router(source, sink):
        routed = await read(sink, 1)
        dead = ours(await read(topics.DEADLETTER, start=before, until=lambda f: bool(ours(f))))
    assert [orjson.loads(v)["submission_id"] for _, v in routed] == [good.submission_id]
    assert len(dead) == 1
    assert dead[0].payload.service == "router"
    assert (dead[0].payload.source.partition, dead[0].payload.source.offset) == (0, 0)
    assert dead[0].payload.error.startswith("ValidationError")


async def create_topics_if_missing(name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await admin.start()
    try:
        if name not in await admin.list_topics():
            await admin.create_topics([NewTopic(name, 3, 1)])
    finally:
        await admin.close()
