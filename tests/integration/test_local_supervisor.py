"""`make run`'s supervisor on real processes: a SIGKILLed service comes back; Ctrl-C ends all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.infra import ROOT

CHILD = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(600)"


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _wait_for(predicate: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_child_is_restarted_and_a_sigterm_stops_both(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy.local.supervise",
            "--name",
            "child",
            "--",
            sys.executable,
            "-c",
            CHILD,
            str(pids),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: len(_pids(pids)) == 1)
        first = _pids(pids)[0]
        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: len(_pids(pids)) == 2)
        second = _pids(pids)[1]
        assert second != first
        assert supervisor.poll() is None, "the supervisor must outlive its child"
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=20) == 0
        _wait_for(lambda: not _alive(second))
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.stderr is not None
    assert "child ended (SIGKILL); restarting in 1 s" in supervisor.stderr.read()
