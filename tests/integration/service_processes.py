"""The five services as real `sada serve` processes with a given environment, and one submission.

Used by the tests that start Sada from its deployment files: each process gets only the
environment it is given (plus PATH and the like), so nothing of the test's own shell leaks in.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests import infra
from tests.workload import load_samples

SADA = str(infra.ROOT / ".venv" / "bin" / "sada")
BASE_ENV = ("PATH", "HOME", "LANG", "TZ")
READY_WITHIN = 60.0
SETTLED_WITHIN = 60.0
TERMINAL = {"notified", "notification_failed"}


@dataclass
class Process:
    """One `sada serve SERVICE` process and its log file."""

    service: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Return the base URL of its HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Return what the process wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM, wait for the exit (SIGKILL after the grace period); return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start(service: str, env: Mapping[str, str], log_dir: Path) -> Process:
    """Start `sada serve SERVICE` with exactly `env` (plus the base variables)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{service}.log"
    full = {k: os.environ[k] for k in BASE_ENV if k in os.environ} | dict(env)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [SADA, "serve", service],
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(service, int(full["SADA_HTTP_PORT"]), log_path, process)


async def wait_ready(process: Process, within: float = READY_WITHIN) -> None:
    """Wait until /health answers 200; fail with the log if the process exits first."""
    async with httpx.AsyncClient(timeout=2.0) as client, asyncio.timeout(within):
        while True:
            if process.process.poll() is not None:
                msg = f"{process.service} exited ({process.process.returncode}):\n{process.log()}"
                raise AssertionError(msg)
            try:
                if (await client.get(f"{process.url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


def submission() -> dict[str, Any]:
    """Return a sample submission of the keyed channel with a channel_ref no run used before."""
    raw = next(s for s in load_samples() if s["channel"] == "istitlaa")
    return {**raw, "channel_ref": f"PROD-{uuid.uuid4().hex[:12]}"}


async def submit(intake: Process, key: str) -> str:
    """POST one submission to intake's HTTP door with `key`; return its submission id."""
    async with httpx.AsyncClient(timeout=15.0) as client:
        response = await client.post(
            f"{intake.url}/v1/submissions",
            content=json.dumps(submission()).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    assert response.status_code == 202, response.text
    submission_id: str = response.json()["submission_id"]
    return submission_id


async def settled_status(archive: Process, token: str, submission_id: str) -> str:
    """Poll the archive's API until the submission reaches a terminal status; return it."""
    headers = {"Authorization": f"Bearer {token}"}
    status = "unknown"
    async with httpx.AsyncClient(timeout=5.0, headers=headers) as client:
        try:
            async with asyncio.timeout(SETTLED_WITHIN):
                while status not in TERMINAL:
                    response = await client.get(f"{archive.url}/v1/submissions/{submission_id}")
                    assert response.status_code in {200, 404}, response.text
                    if response.status_code == 200:
                        status = response.json()["submission"]["status"]
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"{submission_id} still {status!r} in the archive") from None
    return status


async def run_one_submission(processes: Mapping[str, Process], key: str, token: str) -> str:
    """Wait until all are ready, send one submission through intake; return its final status."""
    await asyncio.gather(*(wait_ready(p) for p in processes.values()))
    submission_id = await submit(processes["intake"], key)
    return await settled_status(processes["archive"], token, submission_id)
