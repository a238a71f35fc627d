"""The notifier wired with FastStream's TestKafkaBroker and in-memory mailer and ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosmtplib
from faststream.kafka import KafkaBroker, TestKafkaBroker
from structlog.testing import capture_logs

from services.notifier.app import build
from services.notifier.deferred import DeferredItem
from services.notifier.ledger import LedgerEntry
from services.notifier.mailer import RefusedError, SmtpReply
from services.notifier.messages import Email, message_id
from services.notifier.settings import (
    DeferralSettings,
    DigestSettings,
    NotifierSettings,
    SmtpSettings,
)
from shared import ids, topics
from shared.events import (
    ANY_EVENT,
    AnyEvent,
    MessageDeadLettered,
    NotificationFailed,
    NotificationSent,
    SubmissionGrouped,
)
from shared.settings import KafkaSettings
from tests import notifier_support as support
from tests.component.digest_fakes import MemoryPendingStore, memory_leases

GROUPED, NOTIFICATIONS = "test.grouped", "test.notifications"


@dataclass
class FakeMailer:
    """Accepts every e-mail, except the calls `script` says to fail (by call number, from 1)."""

    script: dict[int, BaseException] = field(default_factory=dict)
    calls: int = 0
    sent: list[Email] = field(default_factory=list)

    async def send(self, email: Email) -> SmtpReply:
        self.calls += 1
        failure = self.script.get(self.calls)
        if failure is not None:
            raise failure
        self.sent.append(email)
        return SmtpReply(250, "2.0.0 queued")

    async def close(self) -> None:
        return None


@dataclass
class FakeLedger:
    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    claims: int = 0

    async def claim(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        self.claims += 1
        before = self.claimed.intersection(keys)
        self.claimed.update(keys)
        return {key: self.entries[key] for key in before if key in self.entries}

    async def claim_keys(self, keys: Sequence[str]) -> set[str]:
        self.claims += 1
        before = self.claimed.intersection(keys)
        self.claimed.update(keys)
        return before

    async def outcomes(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        return {key: self.entries[key] for key in keys if key in self.entries}

    async def record_many(self, entries: Sequence[LedgerEntry]) -> None:
        for entry in entries:
            self.entries.setdefault(entry.key, entry)


@dataclass
class FakeQueue:
    """The deferred queue in memory, with the same one-winner leases as the MongoDB one."""

    items: dict[str, DeferredItem] = field(default_factory=dict)
    leases: set[tuple[str, int, int]] = field(default_factory=set)

    async def park(self, item: DeferredItem) -> None:
        self.items.setdefault(item.key, item)

    async def parked(self, keys: Sequence[str]) -> set[str]:
        return set(keys) & set(self.items)

    async def due(self, now: datetime, limit: int) -> list[DeferredItem]:
        ready = [i for i in self.items.values() if i.next_attempt_at <= now]
        return sorted(ready, key=lambda i: i.next_attempt_at)[:limit]

    async def take(self, key: str, attempt: int, generation: int) -> bool:
        if (key, attempt, generation) in self.leases:
            return False
        self.leases.add((key, attempt, generation))
        return True

    async def reschedule(self, item: DeferredItem) -> None:
        self.items[item.key] = item

    async def remove(self, key: str) -> None:
        self.items.pop(key, None)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Harness:
    broker: Any
    mailer: FakeMailer
    ledger: FakeLedger
    outcomes: list[AnyEvent]
    dead: list[AnyEvent]
    queue: FakeQueue = field(default_factory=FakeQueue)
    app: Any = None

    async def deliver(self, *events: SubmissionGrouped | bytes) -> None:
        bodies = [e if isinstance(e, bytes) else e.model_dump_json().encode() for e in events]
        await self.broker.publish_batch(*bodies, topic=GROUPED)


@dataclass
class SlowMailer(FakeMailer):
    """A `FakeMailer` whose server takes a while to answer, counting the sends in flight."""

    in_flight: int = 0
    most_in_flight: int = 0

    async def send(self, email: Email) -> SmtpReply:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            return await super().send(email)
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def notifier(
    mailer: FakeMailer | None = None,
    *,
    hold_seconds: float = 5.0,
    connections: int = 4,
    ledger: FakeLedger | None = None,
    queue: FakeQueue | None = None,
    clock: Clock | None = None,
    deferral: DeferralSettings | None = None,
    digest: DigestSettings | None = None,
    pending: MemoryPendingStore | None = None,
) -> AsyncIterator[Harness]:
    settings = NotifierSettings(
        digest=digest or DigestSettings(enabled=False),
        kafka=KafkaSettings(hold_seconds=hold_seconds),
        grouped_topic=GROUPED,
        notifications_topic=NOTIFICATIONS,
        smtp=SmtpSettings(connections=connections),
        deferral=deferral or DeferralSettings(),
    )
    harness_mailer = mailer or FakeMailer()
    ledger = ledger or FakeLedger()
    queue = queue or FakeQueue()
    app = build(
        settings,
        mailer=harness_mailer,
        ledger=ledger,
        queue=queue,
        pending=pending or MemoryPendingStore(),
        leases=memory_leases(),
        clock=clock,
    )
    broker: KafkaBroker = app.state.broker
    outcomes: list[AnyEvent] = []
    dead: list[AnyEvent] = []

    @broker.subscriber(NOTIFICATIONS, group_id="collector")
    async def collect(body: dict[str, Any]) -> None:
        outcomes.append(ANY_EVENT.validate_python(body))

    @broker.subscriber(topics.DEADLETTER, group_id="dead")
    async def collect_dead(body: dict[str, Any]) -> None:
        dead.append(ANY_EVENT.validate_python(body))

    async with TestKafkaBroker(broker) as test_broker:
        yield Harness(test_broker, harness_mailer, ledger, outcomes, dead, queue, app)


def _sent(outcomes: list[AnyEvent]) -> list[NotificationSent]:
    return [o for o in outcomes if isinstance(o, NotificationSent)]


async def test_a_grouped_event_delivered_three_times_sends_one_email() -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    async with notifier() as h:
        for _ in range(3):
            await h.deliver(event)
    assert len(h.mailer.sent) == 1
    assert h.mailer.sent[0].recipient == "LegislationsOffice@moj.gov.sa"
    sent = _sent(h.outcomes)
    assert [o.payload.repeat for o in sent] == [False, True, True]
    assert {o.event_id for o in sent} == {sent[0].event_id}  # a replay keeps its event id
    assert {o.payload.message_id for o in sent} == {h.mailer.sent[0].message_id}
    assert sent[0].correlation_id == event.correlation_id
    assert sent[0].payload.smtp_code == 250
    assert sent[0].payload.smtp_reply == "2.0.0 queued"


async def test_the_same_event_three_times_in_one_batch_sends_one_email() -> None:
    event = support.grouped(support.ENGLISH_SAMPLE)
    async with notifier() as h:
        await h.deliver(event, event, event)
    assert len(h.mailer.sent) == 1
    assert [o.payload.repeat for o in _sent(h.outcomes)] == [False, True, True]
    assert h.ledger.claims == 1  # one ledger round trip for the whole batch


async def test_a_batch_is_looked_up_once_and_each_email_recorded_with_its_outcome() -> None:
    events = [
        support.grouped(support.ARABIC_SAMPLE),
        support.grouped(support.ENGLISH_SAMPLE),
        support.grouped({**support.ENGLISH_SAMPLE, "channel_ref": "other"}),
    ]
    async with notifier() as h:
        await h.deliver(*events)
    assert h.ledger.claims == 1
    assert len(h.mailer.sent) == 3
    assert {e.status for e in h.ledger.entries.values()} == {"sent"}
    assert [o.submission_id for o in h.outcomes] == [e.submission_id for e in events]


async def test_a_batch_logs_one_line_with_its_counts_not_a_line_per_email() -> None:
    events = [
        support.grouped(support.ARABIC_SAMPLE),
        support.grouped(support.ENGLISH_SAMPLE),
    ]
    async with notifier() as h:
        with capture_logs() as logs:
            await h.deliver(*events, events[0])
    assert len(h.mailer.sent) == 2
    lines = [line for line in logs if line["log_level"] != "debug"]
    assert [line["event"] for line in lines] == ["notifications sent"]
    assert lines[0]["records"] == 3
    assert (lines[0]["sent"], lines[0]["repeat"]) == (2, 1)


async def test_a_permanent_refusal_publishes_failed_and_a_redelivery_does_not_resend() -> None:
    event = support.grouped(support.ENGLISH_SAMPLE)
    mailer = FakeMailer(script={1: RefusedError(550, "5.1.1 Mailbox unavailable")})
    async with notifier(mailer) as h:
        await h.deliver(event)
        await h.deliver(event)
    assert mailer.calls == 1
    failed = [o for o in h.outcomes if isinstance(o, NotificationFailed)]
    assert len(failed) == 2
    assert failed[0].payload.smtp_code == 550
    assert failed[0].payload.smtp_reply == "5.1.1 Mailbox unavailable"
    assert [f.payload.repeat for f in failed] == [False, True]
    assert not h.dead


async def test_a_transient_failure_is_retried_until_the_email_goes_out_once() -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    mailer = FakeMailer(
        script={
            1: aiosmtplib.SMTPServerDisconnected("lost"),
            2: aiosmtplib.SMTPSenderRefused(451, "4.3.0 try later", "s@x.org"),
        }
    )
    async with notifier(mailer) as h:
        await h.deliver(event)
    assert mailer.calls == 3
    assert len(mailer.sent) == 1
    (sent,) = _sent(h.outcomes)
    assert sent.payload.attempts == 3
    assert not sent.payload.repeat
    assert not h.dead


async def test_a_failure_mid_batch_does_not_resend_what_already_went_out() -> None:
    first, second = support.grouped(support.ARABIC_SAMPLE), support.grouped(support.ENGLISH_SAMPLE)
    mailer = FakeMailer(script={2: ConnectionRefusedError()})
    async with notifier(mailer) as h:
        await h.deliver(first, second)
    assert [e.message_id for e in mailer.sent] == [
        support.composer().compose(first).message_id,
        support.composer().compose(second).message_id,
    ]
    sent = _sent(h.outcomes)
    # The retried batch found the first e-mail in the ledger: reported, not resent.
    assert [(o.submission_id, o.payload.repeat) for o in sent] == [
        (first.submission_id, True),
        (second.submission_id, False),
    ]


async def test_a_malformed_event_is_dead_lettered_and_the_rest_of_the_batch_goes_out() -> None:
    good = support.grouped(support.ENGLISH_SAMPLE)
    accepted_not_grouped = b'{"event_type": "submission.accepted"}'
    routed = support.routed({**support.ENGLISH_SAMPLE, "channel_ref": "R-1"})
    routed_not_grouped = routed.model_dump_json().encode()
    async with notifier() as h:
        await h.deliver(b"{not json", good, accepted_not_grouped, routed_not_grouped)
    assert len(h.mailer.sent) == 1
    assert len(h.dead) == 3
    assert all(isinstance(d, MessageDeadLettered) for d in h.dead)
    assert [o.submission_id for o in _sent(h.outcomes)] == [good.submission_id]


async def test_a_campaign_member_is_mailed_with_its_campaign_and_reported_once() -> None:
    first = {**support.ARABIC_SAMPLE, "channel_ref": "IST-2026-88001"}
    campaign = support.campaign_of(first, size=3, similarity=1.0)
    event = support.grouped(support.ARABIC_SAMPLE, campaign=campaign)
    async with notifier() as h:
        await h.deliver(event, event)
    (email,) = h.mailer.sent
    assert email.message["X-Sada-Campaign"] == campaign.campaign_id
    assert "واحدة من 3 مشاركات متطابقة أو شبه متطابقة (حملة)" in email.text
    assert "One of 3 near-identical submissions (campaign)" in email.html
    assert [o.payload.repeat for o in _sent(h.outcomes)] == [False, True]


async def test_outcome_ids_derive_from_the_grouped_event_and_the_message_id_from_the_unit() -> None:
    routed = support.routed(support.ENGLISH_SAMPLE)
    grouped = support.as_grouped(routed)
    async with notifier() as h:
        await h.deliver(grouped)
    (sent,) = _sent(h.outcomes)
    unit = routed.payload.decision.unit
    assert sent.event_id == ids.event_id(
        grouped.submission_id, "notification.sent", f"{grouped.event_id}:{unit}"
    )
    assert sent.payload.message_id == message_id(routed.submission_id, unit, "sada.notifier")


def _batch(n: int) -> list[SubmissionGrouped]:
    return [support.grouped({**support.ENGLISH_SAMPLE, "channel_ref": f"P-{i}"}) for i in range(n)]


async def test_a_batch_goes_out_over_as_many_connections_as_configured_in_batch_order() -> None:
    events = _batch(12)
    for connections, expected in ((1, 1), (3, 3)):
        mailer = SlowMailer()
        async with notifier(mailer, connections=connections) as h:
            await h.deliver(*events)
        assert mailer.most_in_flight == expected
        assert len(mailer.sent) == 12
        assert [o.submission_id for o in _sent(h.outcomes)] == [e.submission_id for e in events]


async def test_a_transient_failure_among_parallel_sends_resends_nothing_that_went_out() -> None:
    events = _batch(10)
    mailer = SlowMailer(script={4: ConnectionResetError(), 7: TimeoutError()})
    async with notifier(mailer, connections=3) as h:
        await h.deliver(*events)
    ids = [e.message_id for e in mailer.sent]
    assert len(ids) == len(set(ids)) == 10  # every e-mail exactly once, none after a failure
    assert mailer.calls == 12
    sent = _sent(h.outcomes)  # only the attempt that succeeded publishes
    assert [o.submission_id for o in sent] == [e.submission_id for e in events]
    assert 0 < sum(o.payload.repeat for o in sent) < 10  # sent before a failure: from the ledger
    assert len(h.ledger.entries) == 10
