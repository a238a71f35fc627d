"""The notifier's retention rules: the window the topic spec implies, what is due for pruning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from services.notifier import deferred, ledger, metrics, pending
from services.notifier.pruner import Pruner
from services.notifier.retention import (
    DAY_SECONDS,
    Limits,
    Sweep,
    Window,
    limits,
    resolve,
    sweeps,
    too_old,
)
from services.notifier.settings import NotifierSettings, RetentionSettings
from shared import topic_spec, topics

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SPEC_LIMITS = Limits(
    consumed_seconds=7 * DAY_SECONDS, derived_seconds=52 * DAY_SECONDS, raw_seconds=7 * DAY_SECONDS
)


def test_the_shipped_spec_gives_a_52_day_window_and_a_6_day_personal_bound() -> None:
    spec = topic_spec.load()
    found = limits(spec, topics.GROUPED, DAY_SECONDS)
    assert found == SPEC_LIMITS  # 3 x 7 days on the path + 30 days dead-letter + 1 day margin
    window = resolve(found, ledger_days=None, personal_days=None, margin_days=1)
    assert window == Window(ledger_seconds=52 * DAY_SECONDS, personal_seconds=6 * DAY_SECONDS)


def test_the_window_follows_the_spec_when_a_topic_keeps_records_longer(tmp_path: Path) -> None:
    data = yaml.safe_load(topic_spec.SPEC_PATH.read_text())
    for entry in data["topics"]:
        if entry["name"] == topics.GROUPED:
            entry["retention_ms"] = 14 * 86_400_000
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(data))
    settings = RetentionSettings(topics_path=path)
    assert settings.window(topics.GROUPED).ledger_seconds == 59 * DAY_SECONDS


def test_a_ledger_window_shorter_than_the_consumed_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than the retention of the consumed topic"):
        resolve(SPEC_LIMITS, ledger_days=6.9, personal_days=None, margin_days=1)
    assert resolve(
        SPEC_LIMITS, ledger_days=7, personal_days=None, margin_days=1
    ).ledger_seconds == (7 * DAY_SECONDS)


def test_a_personal_bound_longer_than_the_raw_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="outlive the raw submission"):
        resolve(SPEC_LIMITS, ledger_days=None, personal_days=7.5, margin_days=1)
    with pytest.raises(ValueError, match="leaves no time"):
        resolve(SPEC_LIMITS, ledger_days=None, personal_days=None, margin_days=7)


def test_notifier_settings_refuse_a_short_ledger_window_at_start() -> None:
    with pytest.raises(ValidationError, match="SADA_RETENTION__LEDGER_DAYS"):
        NotifierSettings(retention=RetentionSettings(ledger_days=3))


def test_sweeps_cover_the_growing_collections_by_their_time_fields() -> None:
    window = Window(ledger_seconds=52 * DAY_SECONDS, personal_seconds=6 * DAY_SECONDS)
    found = {s.collection: s.field for s in sweeps(NOW, window)}
    assert found == {
        ledger.COLLECTION: "recorded_at",
        ledger.CLAIMS: "claimed_at",
        pending.PENDING: "marked_at",
        deferred.LEASES: "taken_at",
    }
    assert {s.before for s in sweeps(NOW, window)} == {NOW - 52 * DAY}


def test_a_sweep_matches_only_documents_older_than_its_cut() -> None:
    sweep = Sweep(ledger.COLLECTION, "recorded_at", NOW - 52 * DAY)
    assert sweep.matches({"recorded_at": NOW - 53 * DAY})
    assert not sweep.matches({"recorded_at": NOW - 52 * DAY})  # exactly at the cut: kept
    assert not sweep.matches({"recorded_at": NOW - 10 * DAY})
    assert not sweep.matches({"_id": "k:old"})  # written before the field existed: kept
    assert not sweep.matches({"_id": "b:1", "items": []})  # a digest bucket: never by time
    assert sweep.filter() == {"recorded_at": {"$lt": NOW - 52 * DAY}}


def test_a_submission_is_too_old_to_wait_from_the_personal_bound_on() -> None:
    window = Window(ledger_seconds=52 * DAY_SECONDS, personal_seconds=6 * DAY_SECONDS)
    assert not too_old(NOW - 6 * DAY + timedelta(seconds=1), NOW, window)
    assert too_old(NOW - 6 * DAY, NOW, window)


@dataclass
class FakeLease:
    wins: list[bool]
    asked: list[datetime] = field(default_factory=list)

    async def acquire(self, now: datetime) -> bool:
        self.asked.append(now)
        return self.wins.pop(0)


@dataclass
class FakeDeleter:
    counts: dict[str, int]
    done: list[Sweep] = field(default_factory=list)

    async def delete(self, sweep: Sweep, *, stopping: Callable[[], bool]) -> int:
        self.done.append(sweep)
        return self.counts.get(sweep.collection, 0)


async def test_the_pruner_sweeps_only_when_it_wins_the_lease_and_counts_per_collection() -> None:
    deleter = FakeDeleter({ledger.COLLECTION: 7, ledger.CLAIMS: 9})
    lease = FakeLease([False, True])
    window = Window(ledger_seconds=52 * DAY_SECONDS, personal_seconds=6 * DAY_SECONDS)
    pruner = Pruner(deleter=deleter, lease=lease, window=window, poll_seconds=60, clock=lambda: NOW)
    before = metrics.PRUNED.labels(ledger.CLAIMS)._value.get()
    assert await pruner.run_due() == 0  # another replica holds this interval's term
    assert not deleter.done
    assert await pruner.run_due() == 16
    assert [s.collection for s in deleter.done] == [s.collection for s in sweeps(NOW, window)]
    assert metrics.PRUNED.labels(ledger.CLAIMS)._value.get() == before + 9
