"""An isolated Sada installation for end-to-end tests: its own infrastructure and processes.

The e2e suite stops brokers and kills services on purpose, so it never touches the
infrastructure other tests share: `deploy/local/infra.sh` runs a second Kafka, FerretDB and
SMTP sink under `.run/e2e` on their own ports, and the five services run as real processes
(`sada serve <service>`) pointed at them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.local.run import audit_env
from tests.infra import ROOT

E2E_RUN = ROOT / ".run" / "e2e"
KAFKA_PORT, CONTROLLER_PORT, MONGO_PORT, SMTP_PORT = 19092, 19093, 27018, 1026
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
# FerretDB runs with authentication, as MongoDB does in production: every client logs in, and
# the wrong-credentials fault has something real to break.
MONGO_USER, MONGO_PASSWORD = "sada-e2e", "e2e-local-only-password"
MONGO_HOST = f"127.0.0.1:{MONGO_PORT}"
MONGO_URI = f"mongodb://{MONGO_USER}:{MONGO_PASSWORD}@{MONGO_HOST}/"
MAILDIR = E2E_RUN / "mail"
SMTP_CONTROL = E2E_RUN / "smtp-control.json"
INTAKE_URL = "http://127.0.0.1:18001"
ARCHIVE_URL = "http://127.0.0.1:18004"
SADA = str(ROOT / ".venv" / "bin" / "sada")
INFRA = str(ROOT / "deploy" / "local" / "infra.sh")
WITNESS = E2E_RUN / "witness"
"""The archive's signed checkpoints (`deploy.local.run.audit_env`), emptied by `infra reset`."""
DEFERRAL_BUDGET_SECONDS = 20


def infra_env() -> dict[str, str]:
    """Return the environment that points infra.sh at the e2e instance."""
    return {
        **os.environ,
        "SADA_RUN_DIR": str(E2E_RUN),
        "SADA_KAFKA_PORT": str(KAFKA_PORT),
        "SADA_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "SADA_MONGO_PORT": str(MONGO_PORT),
        "SADA_SMTP_PORT": str(SMTP_PORT),
        "SADA_FERRETDB_LOG_LEVEL": "error",
        "SADA_FERRETDB_USERNAME": MONGO_USER,
        "SADA_FERRETDB_PASSWORD": MONGO_PASSWORD,
        # Plain listeners only: the TLS ones `make test` asks for belong to the shared instance.
        "SADA_KAFKA_SASL_PORT": "",
        "SADA_MONGO_TLS_PORT": "",
        "SADA_SMTP_STARTTLS_PORT": "",
    }


def infra(action: str, component: str = "all") -> float:
    """Run `infra.sh ACTION COMPONENT` on the e2e instance; return how long it took."""
    started = time.monotonic()
    subprocess.run([INFRA, action, component], env=infra_env(), check=True, capture_output=True)
    return time.monotonic() - started


def service_env(name: str, port: int) -> dict[str, str]:
    """Return the environment of one service process of the e2e installation."""
    env = {
        **os.environ,
        "SADA_ENVIRONMENT": "local",
        "SADA_HTTP_PORT": str(port),
        "SADA_LOG_JSON": "true",
        "SADA_LOG_LEVEL": "WARNING",
        "SADA_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
        "SADA_KAFKA__HOLD_SECONDS": "10",
        "SADA_MONGO__URI": MONGO_URI,
        "SADA_SMTP__HOST": "127.0.0.1",
        "SADA_SMTP__PORT": str(SMTP_PORT),
        "SADA_SMTP__TIMEOUT": "5",
        # The notifier's retry budget for a refusing mailbox, shortened so the suite stays fast.
        "SADA_DEFERRAL__PARK_AFTER_SECONDS": str(DEFERRAL_BUDGET_SECONDS),
        "SADA_DEFERRAL__RETRY_INITIAL_SECONDS": "2",
        "SADA_DEFERRAL__RETRY_MAX_SECONDS": "5",
        "SADA_DEFERRAL__POLL_SECONDS": "1",
        # One e-mail per submission, as the scenarios written before digests expect; the digest
        # scenarios restart the notifiers with digests on (`Cluster.restart_notifiers`).
        "SADA_DIGEST__ENABLED": "false",
    }
    if name == "archive":  # signed checkpoints, so `sada audit verify --checkpoints` can run
        env |= audit_env(E2E_RUN)
    return env


@dataclass
class Service:
    """One service process; `kill` is SIGKILL, the crash the design must survive."""

    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    overrides: dict[str, str] = field(default_factory=dict)
    """Environment on top of `service_env`, kept across restarts (e.g. digest settings)."""

    @property
    def url(self) -> str:
        """Return the service's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process, appending its output to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [SADA, "serve", self.name],
            env={**service_env(self.name, self.port), **self.overrides},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` and reap the process."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def alive(self) -> bool:
        """Return True while the process runs."""
        return self.process is not None and self.process.poll() is None

    async def wait_healthy(self, within: float = 60.0) -> None:
        """Wait until `/health` answers 200."""
        async with httpx.AsyncClient(timeout=2.0) as client, asyncio.timeout(within):
            while True:
                assert self.alive(), f"{self.name} exited; see {self.log_path}"
                try:
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)


@dataclass
class Cluster:
    """The five services, with two replicas of the router, campaigns and the notifier."""

    services: list[Service] = field(default_factory=list)

    @classmethod
    def build(cls) -> Cluster:
        """Lay out the processes: intake, 2 routers, 2 campaigns, 2 notifiers, archive."""
        logs = E2E_RUN / "logs"
        layout = [
            ("intake", 18001),
            ("router", 18002),
            ("router", 18012),
            ("campaigns", 18005),
            ("campaigns", 18015),
            ("notifier", 18003),
            ("notifier", 18013),
            ("archive", 18004),
        ]
        return cls([Service(name, port, logs / f"{name}-{port}.log") for name, port in layout])

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services)

    def first(self, name: str) -> Service:
        """Return the first process of service `name`."""
        return next(s for s in self.services if s.name == name)

    async def start(self) -> None:
        """Start every process and wait until all are healthy."""
        for service in self.services:
            service.start()
        await asyncio.gather(*(s.wait_healthy() for s in self.services))

    def stop(self) -> None:
        """Stop every process gracefully (SIGTERM)."""
        for service in self.services:
            service.kill(signal.SIGTERM)

    async def restart_notifiers(self, overrides: dict[str, str] | None = None) -> None:
        """Restart both notifiers, one at a time (SIGTERM), with `overrides` on their env.

        `None` (or `{}`) restores the standard environment. Each is healthy before the next
        stops, so the group keeps a consumer throughout.
        """
        for service in (s for s in self.services if s.name == "notifier"):
            await asyncio.to_thread(service.kill, signal.SIGTERM)
            service.overrides = dict(overrides or {})
            service.start()
            await service.wait_healthy()

    def all_alive(self) -> bool:
        """Return True when no process has exited on its own."""
        return all(s.alive() for s in self.services)
