"""Helpers for the archive's integration tests: private topics, a running archive, polling."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import RecordMetadata
from fastapi import FastAPI
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from services.archive.app import build
from services.archive.clients import ApiClientConfig
from services.archive.settings import ArchiveMongoSettings, ArchiveSettings, ArchiveTopics
from shared.settings import KafkaSettings
from tests import infra

TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READER = {"Authorization": "Bearer integration-reader-token"}
"""A client with the `read` scope only: personal data redacted."""
Document = dict[str, Any]


async def private_topics(partitions: int = 3) -> ArchiveTopics:
    """Create the archive's topics, named so no other test uses them, and return them."""
    prefix = infra.unique("it-archive")
    names = ArchiveTopics(
        submissions=f"{prefix}.submissions",
        accepted=f"{prefix}.accepted",
        rejected=f"{prefix}.rejected",
        routed=f"{prefix}.routed",
        grouped=f"{prefix}.grouped",
        notifications=f"{prefix}.notifications",
        deadletter=f"{prefix}.deadletter",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names.all()])
    finally:
        await admin.close()
    return names


def settings_for(
    names: ArchiveTopics,
    *,
    database: str | None = None,
    mongo_uri: str = infra.MONGO_URI,
    timeout_ms: int = 5000,
    hold_seconds: float = 5,
    group: str | None = None,
) -> ArchiveSettings:
    """Return settings of an archive on private topics, group and database."""
    return ArchiveSettings(
        group_id=group or infra.unique("it-archive-group"),
        topics=names,
        mongo=ArchiveMongoSettings(
            uri=mongo_uri,
            database=database or infra.unique("it_archive"),
            timeout_ms=timeout_ms,
        ),
        kafka=KafkaSettings(
            bootstrap_servers=infra.KAFKA, batch_timeout_ms=50, hold_seconds=hold_seconds
        ),
        api_clients=(
            ApiClientConfig(
                name="it-auditor", token=SecretStr(TOKEN), scopes=("read", "personal_data")
            ),
            ApiClientConfig(
                name="it-reader", token=SecretStr("integration-reader-token"), scopes=("read",)
            ),
        ),
        verify_interval_seconds=0,
    )


@asynccontextmanager
async def running(settings: ArchiveSettings) -> AsyncIterator[httpx.AsyncClient]:
    """Run the archive (consumer and API) and yield an HTTP client on its API."""
    app: FastAPI = build(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://archive") as client:
            yield client


class Producer:
    """Publishes to Kafka with acks=all and reports where each record landed."""

    def __init__(self) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=infra.KAFKA, acks="all")

    async def __aenter__(self) -> Producer:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(self, topic: str, value: bytes, key: str | None = None) -> RecordMetadata:
        """Publish one record and wait for its acknowledgement."""
        sent: RecordMetadata = await self._producer.send_and_wait(
            topic, value, key=key.encode() if key else None
        )
        return sent

    async def send_all(self, items: Sequence[tuple[str, bytes, str | None]]) -> None:
        """Publish many records at once, then wait for every acknowledgement."""
        futures = [
            await self._producer.send(topic, value, key=key.encode() if key else None)
            for topic, value, key in items
        ]
        await asyncio.gather(*futures)


def audit_cli(database: str, *args: str) -> tuple[int, str]:
    """Run `sada audit verify` as an operator would; return its exit code and report."""
    env = {**os.environ, "SADA_MONGO__DATABASE": database, "SADA_MONGO__URI": infra.MONGO_URI}
    done = subprocess.run(
        [sys.executable, "-c", "from shared.cli import main; main()", "audit", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout


def mongo(settings: ArchiveSettings) -> AsyncMongoClient[Document]:
    """Return a client on the archive's database server."""
    return AsyncMongoClient(settings.mongo.uri.get_secret_value(), tz_aware=True)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, every: float = 0.2
) -> None:
    """Poll an async `check` of external state until it holds, or fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            if await check():
                return
        except Exception:  # the database may be down on purpose
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(every)
