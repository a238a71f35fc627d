"""One mailbox refusing for now (4xx to RCPT) is parked and retried; the other unit never waits.

The notifier with TestKafkaBroker, in-memory mailer, ledger and deferred queue, and a clock the
test moves by hand, so the retry schedule is exercised without waiting for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiosmtplib

from services.notifier.deferred import from_document
from services.notifier.mailer import DeferredError, SmtpReply
from services.notifier.messages import Email, notification_key
from services.notifier.retrier import Retrier
from services.notifier.settings import DeferralSettings
from shared import ids
from shared.events import (
    NotificationDeferred,
    NotificationFailed,
    NotificationSent,
    SubmissionGrouped,
)
from tests import notifier_support as support
from tests.component.test_notifier_service import (
    Clock,
    FakeLedger,
    FakeMailer,
    FakeQueue,
    notifier,
)

RECEIVED = datetime.now(UTC)
"""Received now: the schedule runs within the personal data bound (tested on its own below)."""
VOC_MAILBOX = "voc@moj.gov.sa"
FULL = DeferredError(452, "4.2.2 Mailbox full")
SCHEDULE = DeferralSettings(
    park_after_seconds=60, retry_initial_seconds=5, retry_max_seconds=20, give_up_seconds=3600
)


@dataclass
class MailboxMailer(FakeMailer):
    """Accepts every e-mail except those to `refusing` (452), or none while `down`."""

    refusing: set[str] = field(default_factory=set)
    down: bool = False
    tries: dict[str, int] = field(default_factory=dict)

    async def send(self, email: Email) -> SmtpReply:
        self.tries[email.recipient] = self.tries.get(email.recipient, 0) + 1
        await asyncio.sleep(0)  # let concurrent senders interleave, as a real server would
        if self.down:
            raise aiosmtplib.SMTPServerDisconnected("connection lost")
        if email.recipient in self.refusing:
            raise FULL
        return await super().send(email)


def _voc(i: int) -> SubmissionGrouped:
    raw = {**support.ENGLISH_SAMPLE, "channel_ref": f"VOC-{i}"}
    return support.grouped(support.submission(raw, received_at=RECEIVED))


def _lo(i: int) -> SubmissionGrouped:
    raw = {**support.ARABIC_SAMPLE, "channel_ref": f"LO-{i}"}
    return support.grouped(support.submission(raw, received_at=RECEIVED))


def _retrier(app: object) -> Retrier:
    retrier = app.state.retrier  # type: ignore[attr-defined]
    assert isinstance(retrier, Retrier)
    return retrier


async def test_a_mailbox_refusing_for_now_is_parked_and_the_other_unit_is_emailed_at_once() -> None:
    batch = [_voc(0), _lo(0), _voc(1), _lo(1)]
    mailer = MailboxMailer(refusing={VOC_MAILBOX})
    async with notifier(mailer, hold_seconds=30) as h:
        await h.deliver(*batch)
    # Each VoC e-mail was tried once: the batch was not held and retried for them.
    assert mailer.tries == {VOC_MAILBOX: 2, "LegislationsOffice@moj.gov.sa": 2}
    assert sorted(e.recipient for e in mailer.sent) == ["LegislationsOffice@moj.gov.sa"] * 2
    assert {o.submission_id for o in h.outcomes} == {_lo(0).submission_id, _lo(1).submission_id}
    assert all(isinstance(o, NotificationSent) for o in h.outcomes)
    parked = sorted(h.queue.items.values(), key=lambda i: i.reference)
    assert [p.submission_id for p in parked] == sorted(
        (_voc(0).submission_id, _voc(1).submission_id),
        key=lambda s: next(e.reference for e in batch if e.submission_id == s),
    )
    assert {(p.attempts, p.smtp_code, p.announced) for p in parked} == {(1, 452, False)}
    assert not h.dead
    assert not h.ledger.entries.keys() & h.queue.items.keys()


async def test_a_redelivered_grouped_event_of_a_parked_notification_sends_nothing() -> None:
    mailer = MailboxMailer(refusing={VOC_MAILBOX})
    async with notifier(mailer) as h:
        await h.deliver(_voc(0))
        await h.deliver(_voc(0))
    assert mailer.tries == {VOC_MAILBOX: 1}
    assert not h.outcomes
    assert len(h.queue.items) == 1


async def test_a_parked_notification_is_announced_after_the_budget_then_sent_exactly_once() -> None:
    clock = Clock()
    mailer = MailboxMailer(refusing={VOC_MAILBOX})
    event = _voc(0)
    async with notifier(mailer, clock=clock, deferral=SCHEDULE) as h:
        await h.deliver(event)
        retrier = _retrier(h.app)
        assert await retrier.run_due() == 0  # not due yet
        for _ in range(6):  # 5 s, then 10, 20, 20…: past the 60 s budget
            clock.advance(20)
            await retrier.run_due()
        deferred = [o for o in h.outcomes if isinstance(o, NotificationDeferred)]
        assert len(deferred) == 1  # announced once, however many refusals follow
        (announced,) = deferred
        assert announced.payload.smtp_code == 452
        assert announced.payload.unit == "voice_of_customer"
        assert announced.payload.next_attempt_at > announced.payload.deferred_since
        assert not [o for o in h.outcomes if isinstance(o, NotificationSent)]
        refusals = mailer.tries[VOC_MAILBOX]

        mailer.refusing.clear()  # the mailbox has room again
        clock.advance(20)
        assert await retrier.run_due() == 1
        clock.advance(3600)
        assert await retrier.run_due() == 0  # nothing left
        await h.deliver(event)  # a late redelivery of the grouped event
    assert [e.recipient for e in mailer.sent] == [VOC_MAILBOX]
    sent = [o for o in h.outcomes if isinstance(o, NotificationSent)]
    assert [s.payload.repeat for s in sent] == [False, True]
    assert sent[0].payload.attempts == refusals + 1
    assert sent[0].event_id == sent[1].event_id
    assert not h.queue.items
    (entry,) = h.ledger.entries.values()
    assert entry.status == "sent"


async def test_two_notifiers_sharing_queue_and_ledger_send_a_due_notification_once() -> None:
    clock = Clock()
    ledger, queue = FakeLedger(), FakeQueue()
    mailer = MailboxMailer(refusing={VOC_MAILBOX})
    kwargs = {"ledger": ledger, "queue": queue, "clock": clock, "deferral": SCHEDULE}
    async with notifier(mailer, **kwargs) as one, notifier(mailer, **kwargs) as two:  # type: ignore[arg-type]
        await one.deliver(_voc(0), _voc(1), _voc(2))
        mailer.refusing.clear()
        clock.advance(10)
        counts = await asyncio.gather(_retrier(one.app).run_due(), _retrier(two.app).run_due())
    assert sum(counts) == 3
    assert sorted(e.recipient for e in mailer.sent) == [VOC_MAILBOX] * 3
    assert len({e.message_id for e in mailer.sent}) == 3
    assert not queue.items


async def test_a_notification_refused_past_the_give_up_time_fails_for_good() -> None:
    clock = Clock()
    mailer = MailboxMailer(refusing={VOC_MAILBOX})
    schedule = SCHEDULE.model_copy(update={"give_up_seconds": 100.0})
    async with notifier(mailer, clock=clock, deferral=schedule) as h:
        await h.deliver(_voc(0))
        for _ in range(8):
            clock.advance(20)
            await _retrier(h.app).run_due()
        await h.deliver(_voc(0))
    failed = [o for o in h.outcomes if isinstance(o, NotificationFailed)]
    assert [f.payload.repeat for f in failed] == [False, True]
    assert (failed[0].payload.smtp_code, failed[0].payload.smtp_reply) == (452, FULL.reply)
    assert not h.queue.items
    assert not mailer.sent


async def test_a_server_wide_failure_during_a_retry_keeps_the_notification_parked() -> None:
    clock = Clock()
    mailer = MailboxMailer(refusing={VOC_MAILBOX})
    async with notifier(mailer, clock=clock, deferral=SCHEDULE) as h:
        await h.deliver(_voc(0))
        mailer.down = True
        clock.advance(10)
        assert await _retrier(h.app).run_due() == 1
        (item,) = h.queue.items.values()
        assert item.attempts == 2
        assert item.next_attempt_at > clock.now
        mailer.down = False
        mailer.refusing.clear()
        clock.advance(20)
        await _retrier(h.app).run_due()
    assert [e.recipient for e in mailer.sent] == [VOC_MAILBOX]
    assert not h.queue.items


async def test_a_server_wide_4xx_in_a_batch_still_holds_it_and_parks_nothing() -> None:
    mailer = FakeMailer(script={1: aiosmtplib.SMTPSenderRefused(451, "4.3.0 later", "s@x.org")})
    async with notifier(mailer) as h:
        await h.deliver(_voc(0))
    assert mailer.calls == 2
    assert [e.recipient for e in mailer.sent] == [VOC_MAILBOX]
    assert not h.queue.items


async def test_a_campaign_member_parked_is_retried_with_its_campaign_line() -> None:
    clock = Clock()
    mailer = MailboxMailer(refusing={VOC_MAILBOX})
    first = {**support.ENGLISH_SAMPLE, "channel_ref": "VOC-first"}
    campaign = support.campaign_of(first, size=5)
    member = support.submission(
        {**support.ENGLISH_SAMPLE, "channel_ref": "VOC-5"}, received_at=RECEIVED
    )
    event = support.grouped(member, campaign=campaign)
    async with notifier(mailer, clock=clock, deferral=SCHEDULE) as h:
        await h.deliver(event)
        (item,) = h.queue.items.values()
        assert SubmissionGrouped.model_validate_json(item.event) == event
        mailer.refusing.clear()
        clock.advance(10)
        assert await _retrier(h.app).run_due() == 1
    (email,) = mailer.sent
    assert email.message["X-Sada-Campaign"] == campaign.campaign_id
    assert "One of 5 near-identical submissions (campaign)" in email.text


async def test_a_notification_parked_before_the_switch_to_grouped_events_is_sent_once() -> None:
    """A document parked by a notifier that consumed routed events: field `routed`, a routed
    event. It is sent without a campaign line, and its outcome keeps the id derived from the
    routed event, as the notifier that parked it would have published it."""
    clock = Clock()
    raw = {**support.ENGLISH_SAMPLE, "channel_ref": "VOC-old"}
    routed = support.routed(support.submission(raw, received_at=RECEIVED))
    key = notification_key(routed.submission_id, "voice_of_customer")
    legacy = {
        "_id": key,
        "submission_id": routed.submission_id,
        "reference": routed.reference,
        "unit": "voice_of_customer",
        "routed": routed.model_dump_json(),
        "first_refused_at": clock.now,
        "next_attempt_at": clock.now,
        "attempts": 1,
        "announced": False,
        "smtp_code": 452,
        "smtp_reply": "4.2.2 Mailbox full",
    }
    queue = FakeQueue(items={key: from_document(legacy)})
    mailer = MailboxMailer()
    async with notifier(mailer, clock=clock, queue=queue, deferral=SCHEDULE) as h:
        assert await _retrier(h.app).run_due() == 1
        await h.deliver(support.as_grouped(routed))  # its grouped event, after the switch
    (email,) = mailer.sent
    assert email.recipient == VOC_MAILBOX
    assert "X-Sada-Campaign" not in email.message
    assert "near-identical" not in email.text
    sent = [o for o in h.outcomes if isinstance(o, NotificationSent)]
    assert [s.payload.repeat for s in sent] == [False, True]
    assert sent[0].event_id == ids.event_id(
        routed.submission_id, "notification.sent", f"{routed.event_id}:voice_of_customer"
    )
    assert not queue.items
