"""Liveness measures the consume loop (a poll within its limit, the task alive), nothing else."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from faststream.kafka import KafkaBroker

from shared.liveness import LoopState, loop_states, verdict


def _loop(idle: float | None, *, running: bool = True, limit: float = 300.0) -> LoopState:
    return LoopState("feedback.routed.v1", running, idle, limit)


def test_a_loop_that_polled_within_its_limit_is_alive() -> None:
    assert _loop(0.1).alive
    assert _loop(300.0).alive  # the limit itself still counts


def test_a_loop_polling_right_now_is_alive() -> None:
    # aiokafka reports 0 while a poll is under way, e.g. waiting for a broker that is down
    assert _loop(0.0).alive


def test_a_loop_past_its_limit_is_stalled() -> None:
    assert not _loop(300.5).alive


def test_a_finished_consume_task_is_dead_however_recent_its_last_poll() -> None:
    assert not _loop(0.0, running=False).alive


def test_verdict_needs_every_loop_alive_and_reports_each() -> None:
    fine = LoopState("a", True, 1.0, 10.0)
    stuck = LoopState("b", True, 11.0, 10.0)
    alive, report = verdict([fine, stuck])
    assert not alive
    assert report["a"] == {
        "alive": True,
        "running": True,
        "idle_seconds": 1.0,
        "limit_seconds": 10.0,
    }
    assert report["b"]["alive"] is False
    assert verdict([fine]) == (True, {"a": fine.report()})


def _task(*, done: bool) -> Any:
    return SimpleNamespace(done=lambda: done)


def _subscriber(idle: float, *, task_done: bool = False, running: bool = True) -> Any:
    consumer = SimpleNamespace(
        _subscription=SimpleNamespace(fetcher_idle_time=idle), _max_poll_interval_ms=300_000
    )
    return SimpleNamespace(
        topic_names=["feedback.accepted.v1"],
        consumer=consumer,
        tasks=[_task(done=task_done)],
        running=running,
    )


def _broker(*subscribers: Any) -> KafkaBroker:
    return cast("KafkaBroker", SimpleNamespace(subscribers=list(subscribers)))


def test_states_come_from_each_consumer_with_its_max_poll_interval() -> None:
    [state] = loop_states(_broker(_subscriber(2.5)))
    assert state == LoopState("feedback.accepted.v1", True, 2.5, 300.0)
    [tight] = loop_states(_broker(_subscriber(2.5)), limit_seconds=2.0)
    assert not tight.alive


def test_a_crashed_task_or_a_stopped_subscriber_is_not_running() -> None:
    assert not loop_states(_broker(_subscriber(0.0, task_done=True)))[0].running
    assert not loop_states(_broker(_subscriber(0.0, running=False)))[0].running
