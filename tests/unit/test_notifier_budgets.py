"""The notifier's time budgets agree with each other, with Kafka's and with the platform's."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.notifier.deferred import DeferredItem, generation, wait_after
from services.notifier.settings import (
    DeferralSettings,
    NotifierSettings,
    SmtpSettings,
    attempt_seconds,
    budget_problems,
    shutdown_seconds,
)
from shared.settings import KafkaSettings
from tests.infra import ROOT

MARGIN_SECONDS = 10.0
"""What the platform's grace period must leave beyond the notifier's longest graceful stop."""


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _grace_periods() -> dict[str, int]:
    """Return each k8s Deployment's terminationGracePeriodSeconds, pod defaults applied."""
    base = ROOT / "deploy" / "k8s" / "base"
    (defaults,) = _documents(base / "pod-defaults.yaml")
    default = defaults["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    found = {}
    for path in sorted(base.glob("*.yaml")):
        for doc in _documents(path):
            if doc.get("kind") == "Deployment" and path.name != "pod-defaults.yaml":
                own = doc["spec"]["template"]["spec"].get("terminationGracePeriodSeconds")
                found[doc["metadata"]["name"]] = own if own is not None else default
    return found


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, duration
    assert match, duration
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def test_the_default_budgets_are_consistent() -> None:
    settings = NotifierSettings()
    assert budget_problems(settings) == []
    kafka = settings.kafka
    # The ledger write of sent e-mails, after a whole hold, ends before the group evicts us.
    assert kafka.hold_seconds + settings.ledger_write_seconds < kafka.max_poll_interval_seconds
    # A retry's owner finishes in half its lease, before another notifier may take it over.
    assert attempt_seconds(settings) <= settings.deferral.lease_seconds / 2


def test_every_deployment_outlives_the_notifiers_graceful_stop_with_margin() -> None:
    needed = shutdown_seconds(NotifierSettings()) + MARGIN_SECONDS
    periods = _grace_periods()
    assert "sada-notifier" in periods
    assert {name: p for name, p in periods.items() if p < needed} == {}


def test_compose_waits_as_long_as_kubernetes_before_killing_a_service() -> None:
    (compose,) = _documents(ROOT / "docker-compose.yml")
    needed = shutdown_seconds(NotifierSettings()) + MARGIN_SECONDS
    for name in ("intake", "router", "campaigns", "notifier", "archive"):
        assert _seconds(compose["services"][name]["stop_grace_period"]) >= needed, name


def test_a_ledger_write_longer_than_the_poll_interval_allows_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"max\.poll\.interval"):
        NotifierSettings(ledger_write_seconds=600)  # the old hold_seconds x 10


def test_a_lease_shorter_than_two_attempts_is_refused() -> None:
    with pytest.raises(ValidationError, match="LEASE_SECONDS"):
        NotifierSettings(
            smtp=SmtpSettings(timeout=60), deferral=DeferralSettings(lease_seconds=600)
        )


def test_the_poll_interval_grows_with_a_long_hold() -> None:
    assert KafkaSettings(hold_seconds=10).max_poll_interval_seconds == 300
    assert KafkaSettings(hold_seconds=200).max_poll_interval_seconds == 600


def test_the_retry_wait_doubles_up_to_its_cap() -> None:
    waits = [wait_after(n, 5, 60).total_seconds() for n in range(1, 7)]
    assert waits == [5, 10, 20, 40, 60, 60]


def _item(due: datetime) -> DeferredItem:
    return DeferredItem(
        key="s:voice_of_customer",
        submission_id="s",
        reference="SADA-0000-0000",
        unit="voice_of_customer",
        event="{}",
        first_refused_at=due,
        next_attempt_at=due,
        attempts=1,
        announced=False,
        smtp_code=452,
        smtp_reply="4.2.2 Mailbox full",
    )


@pytest.mark.parametrize(
    ("late", "expected"),
    [(-1, None), (0, 0), (299, 0), (300, None), (599, None), (600, 1), (899, 1), (900, None)],
)
def test_a_lease_generation_is_offered_only_in_the_first_half_of_its_period(
    late: float, expected: int | None
) -> None:
    due = datetime(2026, 12, 1, tzinfo=UTC)
    assert generation(_item(due), due + timedelta(seconds=late), 600) == expected
