"""Triage of a batch's fresh notifications: an e-mail each now, or the next digest.

Holds what the decision needs beyond the event (`digests.route`): each unit's policy, and the
mailbox's recent e-mails counted across all notifiers (`pending.PendingStore.counts`). Each
notifier adds its own counts, so a mailbox's rate is the sum over replicas; two replicas deciding
at the same moment may each let a batch's worth through before they see each other's counts,
which is the threshold's precision (docs/digests.md).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from services.notifier import metrics
from services.notifier.digests import (
    DigestItem,
    DigestPolicy,
    inbox_of,
    item_from,
    rate_bucket,
    route,
    window_end,
)
from services.notifier.pending import BUCKET_ITEMS, Bucket, Head, PendingStore
from shared.events import SubmissionGrouped
from shared.lease import holder_name
from shared.logging import get_logger

log = get_logger(__name__)

Clock = Callable[[], datetime]


def now() -> datetime:
    """Return the current time (UTC): the default clock."""
    return datetime.now(UTC)


class Triage:
    """Splits fresh notifications into e-mails now and items set aside for digests."""

    def __init__(
        self,
        *,
        store: PendingStore,
        default: DigestPolicy,
        policies: Mapping[str, DigestPolicy],
        personal: Callable[[str], bool],
        clock: Clock = now,
        writer: str | None = None,
    ) -> None:
        self._store = store
        self._default = default
        self._policies = dict(policies)
        self._personal = personal
        self._clock = clock
        self._writer = writer or holder_name()  # host, process id, a random part
        self._modes: dict[str, bool] = {}  # unit -> digest mode, as this notifier last saw it
        for unit, policy in self._policies.items():
            metrics.DIGEST_WINDOW_SECONDS.labels(unit).set(policy.window_seconds)
            metrics.DIGEST_MODE.labels(unit).set(0)

    def policy(self, unit: str) -> DigestPolicy:
        """Return `unit`'s digest policy (the default for a unit not in units.yaml)."""
        return self._policies.get(unit, self._default)

    @property
    def longest_rate_seconds(self) -> float:
        """The longest trailing window any policy counts over."""
        return max([p.rate_seconds for p in self._policies.values()] + [self._default.rate_seconds])

    async def recent(self, now: datetime) -> Counter[str]:
        """Return each inbox's e-mails within its unit's trailing window, all notifiers summed."""
        since = now - timedelta(seconds=self.longest_rate_seconds)
        totals: Counter[str] = Counter()
        for inbox, at, n in await self._store.counts(since):
            unit = inbox.split("|", 1)[0]
            if at >= now - timedelta(seconds=self.policy(unit).rate_seconds):
                totals[inbox] += n
        return totals

    async def waiting(self, keys: Sequence[str]) -> set[str]:
        """Return which of `keys` were set aside for a digest before (redeliveries)."""
        return await self._store.waiting(keys) if keys else set()

    async def split(
        self, fresh: Mapping[str, SubmissionGrouped]
    ) -> tuple[dict[str, SubmissionGrouped], list[DigestItem]]:
        """Return the notifications to e-mail now, and store the rest for their digests.

        In the batch's order, each would-be e-mail counts towards its mailbox's rate, so a
        calm mailbox hit by one large batch gets its threshold's worth of e-mails and a digest.
        Campaign copies folded into the digest do not count: they were never going out alone.
        """
        if not any(self.policy(e.payload.decision.unit).enabled for e in fresh.values()):
            return dict(fresh), []  # digests off: no rate to keep, no database round trip
        now = self._clock()
        recent = await self.recent(now)
        added: Counter[tuple[str, datetime]] = Counter()
        now_alone: dict[str, SubmissionGrouped] = {}
        aside: list[DigestItem] = []
        for key, event in fresh.items():
            decision = event.payload.decision
            policy = self.policy(decision.unit)
            inbox = inbox_of(decision.unit, decision.mailbox)
            why = route(event, policy, recent[inbox] + 1)
            if not policy.enabled:
                now_alone[key] = event
                continue
            if why != "campaign":
                recent[inbox] += 1
                added[(inbox, rate_bucket(now, policy.rate_seconds))] += 1
            if why == "individual":
                now_alone[key] = event
                continue
            personal = self._personal(decision.unit)
            aside.append(item_from(event, personal=personal, why=why, at=now))
            metrics.DIGEST_PENDING.labels(decision.unit, why).inc()
        if aside:
            await self._store.pend(self._buckets(aside, now))
        if added:
            await self._store.count(self._writer, added)
        self._note_modes(recent)
        return now_alone, aside

    def _buckets(self, items: Sequence[DigestItem], now: datetime) -> list[Bucket]:
        """Return `items` in buckets: one per mailbox (at most `BUCKET_ITEMS` each), with heads."""
        by_inbox: dict[str, list[DigestItem]] = {}
        for item in items:
            by_inbox.setdefault(item.inbox, []).append(item)
        buckets = []
        for group in by_inbox.values():
            first = group[0]
            policy = self.policy(first.unit)
            for start in range(0, len(group), BUCKET_ITEMS):
                part = tuple(group[start : start + BUCKET_ITEMS])
                head = Head(
                    bucket_id=f"b:{uuid.uuid4().hex}",
                    inbox=first.inbox,
                    unit=first.unit,
                    mailbox=first.mailbox,
                    pended_at=now,
                    closes_at=window_end(now, policy.window_seconds),
                    window_seconds=policy.window_seconds,
                    items=len(part),
                )
                buckets.append(Bucket(head, part))
        return buckets

    async def refresh_modes(self) -> None:
        """Read the rates again and note mode changes (a mailbox calms down with no traffic)."""
        if self._default.enabled or any(p.enabled for p in self._policies.values()):
            self._note_modes(await self.recent(self._clock()), everyone=True)

    def _note_modes(self, recent: Mapping[str, int], *, everyone: bool = False) -> None:
        units: dict[str, int] = {}
        for inbox, n in recent.items():
            unit = inbox.split("|", 1)[0]
            units[unit] = max(units.get(unit, 0), n)
        if everyone:
            for unit in self._modes:
                units.setdefault(unit, 0)
        for unit, n in units.items():
            policy = self.policy(unit)
            digest = policy.enabled and n > policy.threshold
            if self._modes.get(unit, False) == digest:
                self._modes.setdefault(unit, digest)
                continue
            self._modes[unit] = digest
            mode = "digest" if digest else "individual"
            metrics.DIGEST_MODE.labels(unit).set(1 if digest else 0)
            metrics.DIGEST_MODE_CHANGES.labels(unit, mode).inc()
            log.info(
                "mailbox mode changed",
                unit=unit,
                mode=mode,
                recent=n,
                threshold=policy.threshold,
                rate_seconds=policy.rate_seconds,
            )
