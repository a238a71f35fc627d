"""The three probes of every service: liveness ignores the dependencies, readiness reports them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.http import create_app
from shared.kafka import batch_subscriber
from shared.settings import KafkaSettings


class Dependency:
    """A readiness check whose answer the test sets: up, down or not answering at all."""

    def __init__(self) -> None:
        self.state = "up"

    async def __call__(self) -> bool:
        if self.state == "hanging":
            await asyncio.Event().wait()
        return self.state == "up"


@pytest.fixture
def mongo() -> Dependency:
    return Dependency()


@pytest.fixture
async def client(mongo: Dependency) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    broker = KafkaBroker()
    subscriber = batch_subscriber(broker, "probe.topic", group_id="probe", settings=KafkaSettings())

    @subscriber
    async def handle(_body: list[bytes], msg: KafkaMessage) -> None:
        await msg.ack()

    app = create_app(service="probe", version="0", broker=broker, checks={"mongo": mongo})
    transport = httpx.ASGITransport(app=app)
    async with (
        TestKafkaBroker(broker),
        httpx.AsyncClient(transport=transport, base_url="http://probe") as http,
    ):
        yield http, app


async def test_startup_answers_only_once_start_up_finished(
    client: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    http, app = client
    assert (await http.get("/health/startup")).status_code == 503
    async with app.router.lifespan_context(app):
        answer = await http.get("/health/startup")
        assert (answer.status_code, answer.json()["status"]) == (200, "started")
    assert (await http.get("/health/startup")).status_code == 503


@pytest.mark.parametrize("state", ["down", "hanging"])
async def test_a_dependency_outage_fails_readiness_never_liveness(
    client: tuple[httpx.AsyncClient, FastAPI], mongo: Dependency, state: str
) -> None:
    http, app = client
    async with app.router.lifespan_context(app):
        assert (await http.get("/health/ready")).status_code == 200
        mongo.state = state
        for path in ("/health/ready", "/health"):
            ready = await http.get(path)
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"kafka": True, "mongo": False}
        live = await http.get("/health/live")
        assert live.status_code == 200
        assert live.json()["status"] == "alive"
        assert list(live.json()["loops"]) == ["probe.topic"]
