"""Parked notifications and digest items never keep personal data longer than the raw topic.

The notifier with TestKafkaBroker, in-memory stores and a clock the test moves by hand: a mail
server down for days must not keep a submission waiting past `SADA_RETENTION__PERSONAL_DAYS`
(6 days by default: the raw topic's 7 days minus the 1-day margin) after it was received.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from services.notifier.settings import DeferralSettings, DigestSettings
from shared.events import NotificationFailed, NotificationSent, SubmissionGrouped
from tests import notifier_support as support
from tests.component.digest_fakes import MemoryPendingStore
from tests.component.test_notifier_deferral import VOC_MAILBOX, MailboxMailer
from tests.component.test_notifier_service import Clock, notifier

pytestmark = pytest.mark.component

DAY = 86_400.0
PERSONAL = timedelta(days=6)
SCHEDULE = DeferralSettings(
    park_after_seconds=60, retry_initial_seconds=5, retry_max_seconds=20, give_up_seconds=9 * DAY
)
"""A give-up later than the personal bound, so only the bound can end the waiting."""
DIGESTS = DigestSettings(threshold=2, rate_seconds=60, window_seconds=30)


def _voc(ref: str, received_at: datetime) -> SubmissionGrouped:
    raw: dict[str, Any] = {**support.ENGLISH_SAMPLE, "channel_ref": ref}
    return support.grouped(support.submission(raw, received_at=received_at))


async def test_a_parked_notification_is_given_up_at_the_bound_while_the_server_is_down() -> None:
    clock = Clock()
    event = _voc("VOC-old", clock.now - PERSONAL + timedelta(hours=1))
    mailer = MailboxMailer(refusing={VOC_MAILBOX})
    async with notifier(mailer, clock=clock, deferral=SCHEDULE) as h:
        await h.deliver(event)
        assert len(h.queue.items) == 1
        mailer.down = True  # from now on the server is away: each retry is a server-wide failure
        retrier = h.app.state.retrier
        clock.advance(30 * 60)
        await retrier.run_due()
        assert len(h.queue.items) == 1  # within the bound: still waiting
        tries = mailer.tries[VOC_MAILBOX]
        clock.advance(31 * 60)  # the submission is now 6 days and a minute old
        assert await retrier.run_due() == 1
        assert mailer.tries[VOC_MAILBOX] == tries  # given up without another attempt
    assert not h.queue.items  # the parked event, and the personal data in it, are gone
    (entry,) = h.ledger.entries.values()
    assert entry.status == "failed"
    assert entry.smtp_code == 452
    assert "within 6 days of receipt" in (entry.smtp_reply or "")
    (failed,) = [o for o in h.outcomes if isinstance(o, NotificationFailed)]
    assert failed.submission_id == event.submission_id
    assert not [o for o in h.outcomes if isinstance(o, NotificationSent)]


async def test_a_digest_the_server_cannot_take_is_given_up_at_the_bound() -> None:
    clock = Clock()
    received = clock.now - PERSONAL + timedelta(minutes=10)
    events = [_voc(f"VOC-surge-{i}", received) for i in range(5)]
    pending = MemoryPendingStore()
    mailer = MailboxMailer()
    async with notifier(mailer, clock=clock, digest=DIGESTS, pending=pending) as h:
        await h.deliver(*events)
        assert pending.bucket_map  # three past the threshold wait for a digest
        waiting = {i.submission_id for b in pending.bucket_map.values() for i in b}
        mailer.down = True
        clock.advance(DIGESTS.window_seconds + DIGESTS.settle_seconds)
        assert await h.app.state.digests.run_due() == 0  # not sent: retried later
        assert pending.bucket_map
        clock.advance(10 * 60)  # past the bound
        assert await h.app.state.digests.run_due() == 1
    assert not pending.bucket_map
    assert not pending.head_map
    failed = [o for o in h.outcomes if isinstance(o, NotificationFailed)]
    assert {o.submission_id for o in failed} == waiting
    assert all(o.payload.digest is not None for o in failed)
    assert {h.ledger.entries[k].status for k in h.ledger.entries if k.split(":")[0] in waiting} == {
        "failed"
    }
