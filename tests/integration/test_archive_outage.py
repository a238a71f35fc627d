"""FerretDB stopped for 20 s mid-stream: the archive holds, retries, resumes, loses nothing.

The shared FerretDB is never stopped: this test runs its own on a free port with its own data
directory, stops it with SIGTERM, and starts it again on the same data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.archive import audit
from services.archive.store import MongoArchiveStore
from shared.models import Submission
from tests import archive_samples as samples
from tests import infra
from tests.integration.archive_support import (
    AUTH,
    Producer,
    eventually,
    mongo,
    private_topics,
    running,
    settings_for,
)

FERRETDB = Path(os.environ.get("SADA_CACHE_DIR", infra.ROOT / ".cache")) / "bin" / "ferretdb"
OUTAGE_SECONDS = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateFerretDB:
    """A FerretDB process of this test's own, stoppable and restartable on the same data."""

    def __init__(self, data: Path) -> None:
        self.port = _free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        self._data = data
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        (self._data / "db").mkdir(parents=True, exist_ok=True)
        (self._data / "state").mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            str(FERRETDB),
            "--handler=sqlite",
            f"--sqlite-url=file:{self._data / 'db'}/",
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--state-dir={self._data / 'state'}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=error",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await eventually(listening, within=20, every=0.1)

    async def stop(self) -> None:
        """SIGTERM, and wait until the process is gone (SIGKILL after 15 s)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def private_ferretdb(data: Path) -> AsyncIterator[PrivateFerretDB]:
    server = PrivateFerretDB(data)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.timeout(180)
async def test_ferretdb_down_for_20_seconds_mid_stream_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    assert FERRETDB.exists(), f"{FERRETDB} missing: run `deploy/local/infra.sh up` first"
    names = await private_topics()
    async with private_ferretdb(tmp_path) as ferretdb:
        settings = settings_for(names, mongo_uri=ferretdb.uri, timeout_ms=1000, hold_seconds=2)
        client = mongo(settings)
        db = client[settings.mongo.database]
        subs = [samples.submission() for _ in range(60)]
        published: list[str] = []

        async def stream(producer: Producer, batch: list[Submission]) -> None:
            for sub in batch:  # one lifecycle every 0.1 s, spread over three topics
                key = sub.submission_id
                await producer.send_all(
                    [
                        (names.accepted, samples.encode(samples.accepted(sub)), key),
                        (names.routed, samples.encode(samples.routed(sub)), key),
                        (names.notifications, samples.encode(samples.notified(sub)), key),
                    ]
                )
                published.append(key)
                await asyncio.sleep(0.1)

        retries = _retries()
        async with running(settings) as api, Producer() as kafka:
            streaming = asyncio.create_task(stream(kafka, subs[:50]))

            async def some() -> bool:
                return await db.events.count_documents({}) >= 30

            await eventually(some)
            before_outage = await db.events.count_documents({})
            await ferretdb.stop()  # mid-stream: the producer keeps going
            await asyncio.sleep(OUTAGE_SECONDS)
            await streaming
            assert before_outage < len(published) * 3 == 150  # the outage cut into the stream
            await ferretdb.start()
            await stream(kafka, subs[50:])  # and more after the database came back

            async def all_archived() -> bool:
                return await db.events.count_documents({}) >= 180

            await eventually(all_archived, within=60)
            await asyncio.sleep(2)  # anything archived twice would show up by now
            page = await api.get("/v1/submissions?status=notified&limit=200", headers=AUTH)
            assert len(page.json()["items"]) == 60

        kafka_events = {"event_type": {"$ne": "archive.accessed"}}  # the API read is one more
        docs = await db.events.find(kafka_events, {"submission_id": 1, "seq": 1}).to_list()
        assert len(docs) == 180
        assert len({d["_id"] for d in docs}) == 180
        for sub in subs:
            seqs = sorted(d["seq"] for d in docs if d["submission_id"] == sub.submission_id)
            assert seqs == [0, 1, 2]
        summary = await audit.verify_all(MongoArchiveStore(client, settings.mongo.database))
        assert (summary.chains, summary.events, summary.breaks) == (61, 181, [])  # + the access
        assert _retries() > retries  # the archive did hold batches during the outage
        await client.close()


def _retries() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "sada_transient_retries":
            total += sum(s.value for s in metric.samples if s.labels.get("service") == "archive")
    return total
