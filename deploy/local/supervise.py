"""Keep one local process running: restart it with backoff when it dies, as Kubernetes would.

`make run` hands its processes to honcho, which stops every process as soon as one exits. That is
right for Ctrl-C, and wrong for a crash: a SIGKILL of the notifier used to take intake, router,
archive and Prometheus down with it. Each Procfile line therefore runs its command under this
supervisor, which honcho sees as one long-lived process:

- the child exits or is killed → restart it after a backoff (1 s, doubling, at most 30 s; back to
  1 s once a run has lasted a minute), and say so on stderr;
- SIGTERM or SIGINT to the supervisor (honcho's Ctrl-C) → passed on to the child, whose exit then
  ends the supervisor.

Usage: `python -m deploy.local.supervise [--name NAME] -- COMMAND [ARG...]`
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0


def next_delay(previous: float, ran_for: float) -> float:
    """Return how long to wait before the next restart, given the last delay and run time."""
    if ran_for >= STABLE_AFTER:
        return FIRST_DELAY
    return min(MAX_DELAY, max(FIRST_DELAY, previous * 2))


def describe(returncode: int) -> str:
    """Return how a child ended, for the restart line: `exit 3` or `SIGKILL`."""
    if returncode < 0:
        return signal.Signals(-returncode).name
    return f"exit {returncode}"


def supervise(command: Sequence[str], name: str) -> int:
    """Run `command` until asked to stop; return the last child's exit code."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = 0.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        returncode = child.wait()
        if stopping.is_set():
            return 0 if returncode in (0, -signal.SIGTERM, -signal.SIGINT) else returncode
        delay = next_delay(delay, time.monotonic() - started)
        print(
            f"supervise: {name} ended ({describe(returncode)}); restarting in {delay:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if stopping.wait(delay):
            return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `[--name NAME] -- COMMAND...` and supervise the command."""
    parser = argparse.ArgumentParser(prog="supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="what to call the process in restart lines")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error("a command to run is required after --")
    return supervise(command, args.name or command[-1])


if __name__ == "__main__":
    sys.exit(main())
