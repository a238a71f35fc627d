"""A real outage of Kafka, then of FerretDB: the archive turns not-ready, and stays live.

Liveness must never depend on a dependency: a probe that fails during an outage restarts every
pod at once, which does not bring Kafka or MongoDB back and makes the recovery slower. The test
runs a private Kafka and FerretDB (deploy/local/infra.sh on free ports, its own data), so the
infrastructure other tests share is never stopped; `sada serve archive` (both dependencies)
runs against it. Each outage lasts OUTAGE_SECONDS; the property is that liveness does not read
the dependencies at all, so it holds for five minutes as it does for twenty seconds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from deploy.local.topics import ensure_topics
from tests import infra

INFRA = infra.ROOT / "deploy" / "local" / "infra.sh"
SADA = infra.ROOT / ".venv" / "bin" / "sada"
OUTAGE_SECONDS = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PrivateInfra:
    """A Kafka and a FerretDB of this module's own, stopped and started by infra.sh."""

    run_dir: Path
    kafka_port: int = field(default_factory=_free_port)
    controller_port: int = field(default_factory=_free_port)
    mongo_port: int = field(default_factory=_free_port)
    smtp_port: int = field(default_factory=_free_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def sh(self, action: str, component: str) -> None:
        env = {
            **os.environ,
            "SADA_RUN_DIR": str(self.run_dir),
            "SADA_KAFKA_PORT": str(self.kafka_port),
            "SADA_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "SADA_MONGO_PORT": str(self.mongo_port),
            "SADA_SMTP_PORT": str(self.smtp_port),
            "SADA_FERRETDB_LOG_LEVEL": "error",
            # Plain listeners only: the TLS ones `make test` asks for belong to the shared stack.
            "SADA_KAFKA_SASL_PORT": "",
            "SADA_MONGO_TLS_PORT": "",
            "SADA_SMTP_STARTTLS_PORT": "",
        }
        subprocess.run([INFRA, action, component], env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def private_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateInfra]:
    stack = PrivateInfra(tmp_path_factory.mktemp("probes-infra"))
    try:
        stack.sh("up", "kafka")
        stack.sh("up", "ferretdb")
        yield stack
    finally:
        stack.sh("down", "all")


@dataclass
class Archive:
    """`sada serve archive` as a process, and its probes."""

    url: str
    process: subprocess.Popen[bytes]

    async def status(self, path: str) -> int:
        async with httpx.AsyncClient(timeout=3.0) as client:
            try:
                return (await client.get(f"{self.url}{path}")).status_code
            except httpx.TransportError:
                return 0  # no answer counts as a failed probe

    async def wait_for(self, path: str, code: int, *, within: float = 90.0) -> None:
        async with asyncio.timeout(within):
            while await self.status(path) != code:
                assert self.process.poll() is None, "the archive exited"
                await asyncio.sleep(0.2)

    async def watch(self, seconds: float) -> tuple[set[int], set[int]]:
        """Probe liveness and readiness for `seconds`; return the codes each answered."""
        live, ready = set(), set()
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            live.add(await self.status("/health/live"))
            ready.add(await self.status("/health/ready"))
            await asyncio.sleep(0.5)
        return live, ready


@pytest.fixture(scope="module")
async def archive(
    private_infra: PrivateInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Archive]:
    await ensure_topics(private_infra.bootstrap, 1, single_node=True)
    port = _free_port()
    env = {
        **os.environ,
        "SADA_ENVIRONMENT": "local",
        "SADA_HTTP_PORT": str(port),
        "SADA_LOG_JSON": "true",
        "SADA_LOG_LEVEL": "WARNING",
        "SADA_KAFKA__BOOTSTRAP_SERVERS": private_infra.bootstrap,
        "SADA_KAFKA__HOLD_SECONDS": "5",
        "SADA_MONGO__URI": f"mongodb://127.0.0.1:{private_infra.mongo_port}/",
        "SADA_MONGO__DATABASE": "sada_probes",
        "SADA_MONGO__TIMEOUT_MS": "2000",
    }
    log = tmp_path_factory.mktemp("probes-archive") / "archive.log"
    process = _spawn(env, log)
    service = Archive(f"http://127.0.0.1:{port}", process)
    try:
        await service.wait_for("/health/startup", 200)
        await service.wait_for("/health/ready", 200)
        yield service
    finally:
        process.terminate()
        process.wait(timeout=60)


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([SADA, "serve", "archive"], env=env, stdout=out, stderr=out)


@pytest.mark.parametrize("component", ["kafka", "ferretdb"])
async def test_an_outage_fails_readiness_and_never_liveness(
    archive: Archive, private_infra: PrivateInfra, component: str
) -> None:
    await archive.wait_for("/health/ready", 200)
    private_infra.sh("down", component)
    try:
        live, ready = await archive.watch(OUTAGE_SECONDS)
    finally:
        private_infra.sh("up", component)
    assert live == {200}, f"liveness answered {live} while {component} was down"
    assert 503 in ready, f"readiness answered {ready} while {component} was down"
    # back: ready again, and it never restarted (the same process throughout)
    await archive.wait_for("/health/ready", 200)
    assert archive.process.poll() is None
    assert await archive.status("/health/live") == 200
