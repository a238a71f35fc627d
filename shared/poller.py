"""A background loop: the notifier's retrier, digest sender and pruner, the archive's privacy task.

Each look (`run_due`) is retried on the next one when it fails (MongoDB or Kafka away: what it
would have done waits, durably). Stopping lets the look under way finish within a bound, then
cancels it: a send cut off there is the documented crash window of each.
"""

from __future__ import annotations

import asyncio
import contextlib

from shared.logging import get_logger

log = get_logger(__name__)


class Poller:
    """Calls `run_due` every `poll_seconds` in the background, from `start` until `stop`."""

    task_name = "sada-poller"
    postponed = "background work postponed"
    """Logged (with the error's type) when a look fails."""

    def __init__(self, poll_seconds: float) -> None:
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        """True once `stop` was called: a look in progress should end early."""
        return self._stopping.is_set()

    async def run_due(self) -> int:
        """Do what is due now; return how much was done."""
        raise NotImplementedError

    async def run(self) -> None:
        """Look every `poll_seconds` until stopped; a failed look is retried at the next."""
        while not self._stopping.is_set():
            try:
                await self.run_due()
            except Exception as exc:
                log.warning(self.postponed, error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll)

    async def start(self) -> None:
        """Start looking in the background (app start-up)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name=self.task_name)

    async def stop(self, seconds: float = 5.0) -> None:
        """Stop looking (app shutdown); the look under way may finish within `seconds`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        _done, pending = await asyncio.wait({task}, timeout=seconds)
        for late in pending:
            late.cancel()
        await asyncio.gather(task, return_exceptions=True)
