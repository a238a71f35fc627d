"""Liveness of a service: whether its consume loops are still turning.

A Kubernetes liveness probe restarts the pod when it fails, so it must fail only for what a
restart fixes: a consume loop that died or stopped polling (a wedged handler, a crashed task).
It must not fail because Kafka or MongoDB is away: a restart does not bring them back, and a
fleet restarting in step during an outage makes the outage worse (every member rejoins the group,
every restart reconnects at once). Those belong to readiness (`/health/ready`).

What is measured is the loop, not the traffic: an idle topic still polls every
`batch_timeout_ms`, so it stays live. Each subscriber's aiokafka consumer already tracks the time
since its last `getmany` ended (it is 0 while a poll is under way, e.g. waiting for a broker that
is down), the measure aiokafka itself uses for `max.poll.interval.ms`: a loop that has not polled
for that long has already been dropped from its group, so that is also where liveness fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker


@dataclass(frozen=True, slots=True)
class LoopState:
    """One subscriber's consume loop, as seen now."""

    name: str
    running: bool
    """The consume task exists and has not finished (a finished task never polls again)."""
    idle_seconds: float | None
    """Seconds since the last poll ended (0 while polling); None when there is no consumer."""
    limit_seconds: float
    """Longer than this without a poll means the loop is stuck."""

    @property
    def alive(self) -> bool:
        """Running, and polled within its limit."""
        return self.running and (
            self.idle_seconds is None or self.idle_seconds <= self.limit_seconds
        )

    def report(self) -> dict[str, Any]:
        """Return the loop's state for the probe's JSON body."""
        idle = None if self.idle_seconds is None else round(self.idle_seconds, 3)
        return {
            "alive": self.alive,
            "running": self.running,
            "idle_seconds": idle,
            "limit_seconds": self.limit_seconds,
        }


def verdict(loops: Sequence[LoopState]) -> tuple[bool, dict[str, Any]]:
    """Return whether every loop is alive, and the per-loop report."""
    return all(loop.alive for loop in loops), {loop.name: loop.report() for loop in loops}


def loop_states(broker: KafkaBroker, *, limit_seconds: float | None = None) -> list[LoopState]:
    """Read the consume loops of every subscriber of a started broker.

    `limit_seconds` defaults to each consumer's `max.poll.interval.ms`. FastStream 0.7 keeps the
    aiokafka consumer at `subscriber.consumer` and the loop task in `subscriber.tasks`; aiokafka
    keeps the idle time at `consumer._subscription.fetcher_idle_time` (both versions are pinned
    in pyproject.toml; tests/integration/test_probes.py exercises this on the real broker).
    """
    return [_state(sub, limit_seconds) for sub in broker.subscribers]


def _state(subscriber: Any, limit_seconds: float | None) -> LoopState:
    name = ",".join(subscriber.topic_names)
    consumer = getattr(subscriber, "consumer", None)
    if consumer is None:  # the in-memory test broker: no loop to watch
        return LoopState(name, bool(subscriber.running), None, limit_seconds or 0.0)
    tasks: Iterable[Any] = subscriber.tasks
    running = bool(subscriber.running) and any(not task.done() for task in tasks)
    idle = float(consumer._subscription.fetcher_idle_time)
    limit = limit_seconds if limit_seconds is not None else consumer._max_poll_interval_ms / 1000
    return LoopState(name, running, idle, float(limit))
