"""The archive's lifecycle knows `notification.deferred`: between routed and the final outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.archive import records
from services.archive.projection import current, snapshot_order
from services.archive.settings import ArchiveTopics
from services.archive.status import RANK, Status
from shared import events
from shared.models import Submission
from tests import archive_samples as samples
from tests.archive_samples import record

TOPICS = ArchiveTopics()


def _deferred(sub: Submission) -> events.NotificationDeferred:
    since = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    return events.build(
        events.NotificationDeferred,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=events.DeferredPayload(
            unit="voice_of_customer",
            mailbox="voc@moj.gov.sa",
            message_id=f"<{sub.reference}@x>",
            smtp_code=452,
            smtp_reply="4.2.2 Mailbox full",
            attempts=4,
            deferred_since=since,
            next_attempt_at=since + timedelta(minutes=5),
            give_up_at=since + timedelta(days=5),
        ),
        discriminator="voice_of_customer",
        producer=samples.PRODUCER,
    )


def test_a_deferred_notification_is_archived_with_its_own_status_and_unit() -> None:
    sub = samples.submission()
    entry = records.read(record(TOPICS.notifications, samples.encode(_deferred(sub))), TOPICS)
    assert entry.event_type == "notification.deferred"
    assert entry.facts.status is Status.NOTIFICATION_DEFERRED
    assert entry.facts.unit == "voice_of_customer"


def test_deferred_ranks_above_routed_and_below_every_final_outcome() -> None:
    deferred = RANK[Status.NOTIFICATION_DEFERRED]
    assert RANK[Status.ROUTED] < deferred < RANK[Status.NOTIFICATION_FAILED]
    assert deferred < RANK[Status.NOTIFIED]


def test_a_snapshot_stored_with_the_old_ranks_is_ordered_by_its_status() -> None:
    # Before `notification_deferred` existed, notified was rank 6 and failed rank 5.
    old_notified = {"status": "notified", "rank": 6, "revision": 3}
    new_failed = {"status": "notification_failed", "rank": RANK[Status.NOTIFICATION_FAILED]}
    new_deferred = {"status": "notification_deferred", "rank": 5, "revision": 5}
    assert snapshot_order(old_notified) > snapshot_order(new_failed)
    chosen = current([new_deferred, old_notified])
    assert chosen is not None
    assert chosen["status"] == "notified"
