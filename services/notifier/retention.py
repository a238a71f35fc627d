"""How long the notifier keeps its bookkeeping, and what is due for deletion (pure rules).

The ledger and its claims make delivery exactly once: a grouped event delivered again finds
its key and is not e-mailed twice. A key only needs to be remembered while some copy of the
event can still reach the notifier, and Kafka deletes records after `retention.ms`
(`deploy/config/topics.yaml`). The *de-duplication window* is therefore derived from the topic
spec, in days:

    window = Σ retention of the notifier's path (accepted → routed → grouped)
             + retention of the dead-letter topic + margin

- a grouped record the notifier saw is published before its ledger entry or claim is written,
  so it is gone from the topic `retention(grouped)` after that entry at the latest;
- an upstream service that lost its commit may process its input again as long as that input
  is retained, and publish a new grouped record for the same submission (the ledger key is
  `<submission_id>:<unit>`, and submission ids are derived from the content): each hop can add
  its topic's retention, hence the sum over the path;
- an operator may redrive a dead letter to its source topic for as long as the dead-letter topic
  keeps it (one redrive: a redriven record dead-lettered and redriven again starts anew, and is
  not covered);
- the margin covers clock skew between brokers and notifiers and a pruner that ran late.

A setting shorter than the grouped topic's own retention is refused: then even an ordinary
redelivery (a rebalance replaying uncommitted records) could e-mail twice.

*Transient personal data* (parked notifications and digest items hold the submission) must not
outlive the raw submissions topic (`feedback.submissions.v1`), which is the promise the topic
spec makes: a notification still undelivered that long after the submission was received is
given up (`notification.failed`) and its personal data deleted. The default is that retention
minus the margin; longer than the retention is refused.

Nothing here touches a database: `sweeps` says what to delete, `services.notifier.pruner` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from services.notifier import deferred, ledger, pending
from shared import topics
from shared.topic_spec import TopicsFile

DAY_SECONDS: Final = 86_400.0
PATH_TOPICS: Final = (topics.ACCEPTED, topics.ROUTED, topics.GROUPED)
"""The topics a submission passes through, once its id is fixed, before the notifier reads it."""
RAW_TOPIC: Final = topics.SUBMISSIONS


@dataclass(frozen=True, slots=True)
class Limits:
    """Retention limits derived from the topic spec (seconds)."""

    consumed_seconds: float
    """Retention of the topic the notifier consumes: the shortest window allowed."""
    derived_seconds: float
    """The default de-duplication window (see the module docstring)."""
    raw_seconds: float
    """Retention of the raw submissions topic: the longest transient personal data may live."""


def limits(spec: TopicsFile, consumed: str, margin_seconds: float) -> Limits:
    """Return the limits the spec implies for a notifier consuming `consumed`."""
    path = sum(spec.settings(name).retention_ms for name in PATH_TOPICS) / 1000
    redrive = spec.settings(topics.DEADLETTER).retention_ms / 1000
    return Limits(
        consumed_seconds=spec.settings(consumed).retention_ms / 1000,
        derived_seconds=path + redrive + margin_seconds,
        raw_seconds=spec.settings(RAW_TOPIC).retention_ms / 1000,
    )


@dataclass(frozen=True, slots=True)
class Window:
    """The resolved retention: what the pruner and the give-up rules use."""

    ledger_seconds: float
    """Ledger entries, claims and digest markers older than this are deleted."""
    personal_seconds: float
    """A notification undelivered this long after its submission was received is given up."""


def resolve(
    found: Limits, *, ledger_days: float | None, personal_days: float | None, margin_days: float
) -> Window:
    """Return the window from the settings (None: derived), or raise ValueError naming why not."""
    ledger_seconds = found.derived_seconds if ledger_days is None else ledger_days * DAY_SECONDS
    if ledger_seconds < found.consumed_seconds:
        msg = (
            f"SADA_RETENTION__LEDGER_DAYS ({ledger_seconds / DAY_SECONDS:g}) is shorter than the "
            f"retention of the consumed topic ({found.consumed_seconds / DAY_SECONDS:g} days): "
            "a redelivered event could be e-mailed twice"
        )
        raise ValueError(msg)
    personal_seconds = (
        found.raw_seconds - margin_days * DAY_SECONDS
        if personal_days is None
        else personal_days * DAY_SECONDS
    )
    if personal_seconds > found.raw_seconds:
        msg = (
            f"SADA_RETENTION__PERSONAL_DAYS ({personal_seconds / DAY_SECONDS:g}) is longer than "
            f"the retention of {RAW_TOPIC} ({found.raw_seconds / DAY_SECONDS:g} days): parked "
            "personal data would outlive the raw submission"
        )
        raise ValueError(msg)
    if personal_seconds <= 0:
        msg = (
            "SADA_RETENTION__PERSONAL_DAYS leaves no time to deliver: raise it or lower the margin"
        )
        raise ValueError(msg)
    return Window(ledger_seconds=ledger_seconds, personal_seconds=personal_seconds)


@dataclass(frozen=True, slots=True)
class Sweep:
    """One deletion: documents of `collection` whose `field` is before `before`."""

    collection: str
    field: str
    before: datetime

    def filter(self) -> dict[str, object]:
        """Return the MongoDB filter of this sweep (a time range; a scan on FerretDB 1.24)."""
        return {self.field: {"$lt": self.before}}

    def matches(self, document: dict[str, object]) -> bool:
        """Return True when `document` is due for deletion by this sweep (the filter in Python)."""
        value = document.get(self.field)
        return isinstance(value, datetime) and value < self.before


def sweeps(now: datetime, window: Window) -> Sequence[Sweep]:
    """Return what is due for deletion at `now`.

    Every collection of the notifier that grows with traffic is covered here or bounded
    elsewhere (docs/retention.md): the ledger, its claims, digest markers and deferred leases by
    the de-duplication window. Digest heads and buckets are deleted by the digest sender once
    recorded, finished plans and rate buckets by its own prune; parked notifications once
    delivered or given up. A document without the time field (written before the field
    existed) is never matched: it is kept.
    """
    cut = now - timedelta(seconds=window.ledger_seconds)
    return (
        Sweep(ledger.COLLECTION, "recorded_at", cut),
        Sweep(ledger.CLAIMS, "claimed_at", cut),
        Sweep(pending.PENDING, "marked_at", cut),
        Sweep(deferred.LEASES, "taken_at", cut),
    )


def too_old(received_at: datetime, now: datetime, window: Window) -> bool:
    """Return True when a submission received at `received_at` may no longer wait at `now`."""
    return (now - received_at).total_seconds() >= window.personal_seconds
