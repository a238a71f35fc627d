"""One mailbox full (452 to RCPT) on the real sink, Kafka and FerretDB: the other unit is served.

The notifier parks the refused notifications in its database, keeps e-mailing the other unit,
announces `notification.deferred` once the retry budget is spent, and delivers each parked
e-mail exactly once when the mailbox has room again.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.notifier.deferred import COLLECTION
from services.notifier.settings import DeferralSettings
from shared.events import (
    AnyEvent,
    NotificationDeferred,
    NotificationSent,
    SubmissionGrouped,
)
from shared.mongo import make_client
from tests import infra
from tests import notifier_support as support
from tests.integration.notifier_harness import (
    OwnSink,
    publish,
    read_events,
    running_notifier,
    settings_for,
)

VOC_MAILBOX = "voc@moj.gov.sa"


def _events(count: int, raw: dict[str, Any]) -> list[SubmissionGrouped]:
    """Received now: parked items wait within the personal data bound (6 days after receipt)."""
    now = datetime.now(UTC)
    return [
        support.grouped(
            support.submission({**raw, "channel_ref": infra.unique("it-ref")}, received_at=now)
        )
        for _ in range(count)
    ]


def _message_ids(events: list[SubmissionGrouped]) -> dict[str, str]:
    compose = support.composer().compose
    return {compose(e).message_id: e.submission_id for e in events}


def _of(kind: type[AnyEvent], found: list[AnyEvent], ids: dict[str, str]) -> set[str]:
    wanted = set(ids.values())
    return {e.submission_id for e in found if isinstance(e, kind) and e.submission_id in wanted}


async def test_a_full_mailbox_is_parked_the_other_unit_is_served_and_each_email_goes_out_once(
    tmp_path: Path,
) -> None:
    sink = OwnSink(tmp_path)
    await sink.start()
    sink.faults(full_rcpt=[VOC_MAILBOX])
    settings = settings_for(sink.port, hold_seconds=3.0).model_copy(
        update={
            "deferral": DeferralSettings(
                park_after_seconds=4, retry_initial_seconds=1, retry_max_seconds=2, poll_seconds=0.5
            )
        }
    )
    voc = _events(4, support.ENGLISH_SAMPLE)
    lo = _events(4, support.ARABIC_SAMPLE)
    voc_ids, lo_ids = _message_ids(voc), _message_ids(lo)
    async with running_notifier(settings) as broker:
        mixed = [e for pair in zip(voc, lo, strict=True) for e in pair]  # one partition, mixed
        await publish(broker, settings.grouped_topic, mixed)
        # The other unit is e-mailed while the mailbox is still full…
        await infra.wait_until(lambda: len(sink.mails(lo_ids)) == 4, within=30)
        # …and every refused notification is announced once its retry budget is spent.
        deferred_then = await read_events(
            settings.notifications_topic,
            lambda found: _of(NotificationDeferred, found, voc_ids) == set(voc_ids.values()),
            within=60,
        )
        assert sink.mails(voc_ids) == []
        client = make_client(settings.mongo, app_name="it-notifier-check")
        try:
            parked = await client[settings.mongo.database][COLLECTION].count_documents({})
        finally:
            await client.close()
        assert parked == 4

        sink.faults()  # room in the mailbox again
        await infra.wait_until(lambda: len(sink.mails(voc_ids)) >= 4, within=30)
        outcomes = await read_events(
            settings.notifications_topic,
            lambda found: _of(NotificationSent, found, voc_ids) == set(voc_ids.values()),
            within=30,
        )
    await sink.stop()

    arrived = Counter(m["Message-ID"] for m in sink.mails({**voc_ids, **lo_ids}))
    assert arrived == dict.fromkeys({**voc_ids, **lo_ids}, 1)
    assert _of(NotificationSent, deferred_then, lo_ids) == set(lo_ids.values())
    for submission_id in voc_ids.values():
        mine = [e for e in outcomes if e.submission_id == submission_id]
        kinds = Counter(type(e).__name__ for e in mine)
        assert kinds == {"NotificationDeferred": 1, "NotificationSent": 1}, kinds
        sent = next(e for e in mine if isinstance(e, NotificationSent))
        assert not sent.payload.repeat
        assert sent.payload.attempts > 1
