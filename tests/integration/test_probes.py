"""Liveness on the real broker: an idle topic stays live, a wedged consume loop does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka.annotations import KafkaMessage

from deploy.local.topics import ensure_topics
from shared import liveness
from shared.http import create_app
from shared.kafka import batch_subscriber, make_broker
from shared.settings import KafkaSettings
from tests import infra

LIMIT_SECONDS = 2.0


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    """Poll `check` (a probe of a running service) until it holds, or fail."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - the state is another process
            await asyncio.sleep(0.1)


class Wedge:
    """The handler blocks on a record saying `wedge` until the test releases it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()


@pytest.fixture
async def service() -> AsyncIterator[tuple[httpx.AsyncClient, str, Wedge]]:
    topic = infra.unique("probe")
    await ensure_topics(infra.KAFKA, 1, (topic,), single_node=True)
    settings = KafkaSettings(bootstrap_servers=infra.KAFKA)
    broker = make_broker(settings, service="probe")
    wedge = Wedge()
    subscriber = batch_subscriber(broker, topic, group_id=topic, settings=settings)

    @subscriber
    async def handle(body: list[bytes], msg: KafkaMessage) -> None:
        if b"wedge" in body:
            await wedge.release.wait()
        await msg.ack()

    app = create_app(
        service="probe", version="0", broker=broker, liveness_limit_seconds=LIMIT_SECONDS
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://probe") as http,
    ):
        yield http, topic, wedge
        wedge.release.set()


async def test_an_idle_topic_stays_live(service: tuple[httpx.AsyncClient, str, Wedge]) -> None:
    http, _topic, _wedge = service
    samples = []
    # three times the limit with no record at all: the loop polls, so it is live throughout
    ends = time.monotonic() + 3 * LIMIT_SECONDS
    while time.monotonic() < ends:
        samples.append((await http.get("/health/live")).json())
        await asyncio.sleep(0.1)
    assert {s["status"] for s in samples} == {"alive"}
    idle = [loop["idle_seconds"] for s in samples for loop in s["loops"].values()]
    assert max(idle) < LIMIT_SECONDS


async def test_a_wedged_consume_loop_fails_liveness_and_recovers(
    service: tuple[httpx.AsyncClient, str, Wedge],
) -> None:
    http, topic, wedge = service

    async def live() -> bool:
        return (await http.get("/health/live")).status_code == 200

    async def stalled() -> bool:
        return not await live()

    producer = AIOKafkaProducer(bootstrap_servers=infra.KAFKA)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"wedge")
    finally:
        await producer.stop()
    await eventually(stalled)
    answer = await http.get("/health/live")
    assert answer.json()["status"] == "stalled"
    [loop] = answer.json()["loops"].values()
    assert loop["running"] is True
    assert loop["idle_seconds"] > LIMIT_SECONDS
    # readiness is about the dependencies, which are fine
    assert (await http.get("/health/ready")).status_code == 200
    wedge.release.set()
    await eventually(live)


async def test_liveness_holds_while_the_service_stops_on_purpose() -> None:
    # SIGTERM stops the consumers first; a liveness failure then would cut the graceful stop
    topic = infra.unique("probe-stop")
    await ensure_topics(infra.KAFKA, 1, (topic,), single_node=True)
    settings = KafkaSettings(bootstrap_servers=infra.KAFKA)
    broker = make_broker(settings, service="probe")
    subscriber = batch_subscriber(broker, topic, group_id=topic, settings=settings)

    @subscriber
    async def handle(_body: list[bytes], msg: KafkaMessage) -> None:
        await msg.ack()

    seen: list[tuple[bool, int, str]] = []

    async def probe_after_the_consumers_stopped() -> None:
        loops_alive, _ = liveness.verdict(liveness.loop_states(broker))
        answer = await http.get("/health/live")
        seen.append((loops_alive, answer.status_code, answer.json()["status"]))

    app = create_app(
        service="probe", version="0", broker=broker, on_shutdown=[probe_after_the_consumers_stopped]
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe")
    async with http:
        async with app.router.lifespan_context(app):
            assert (await http.get("/health/live")).json()["status"] == "alive"
        # the loops are down (the raw verdict says so) and the probe still answers 200
        assert seen == [(False, 200, "stopping")]
