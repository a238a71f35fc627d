"""The notifier app with digests on, on the real Kafka, FerretDB and SMTP sink."""

from __future__ import annotations

from collections import Counter

from services.notifier.settings import DigestSettings
from shared.events import AnyEvent, NotificationSent
from tests import infra
from tests import notifier_support as support
from tests.integration.notifier_harness import (
    mails_in,
    publish,
    read_events,
    running_notifier,
    settings_for,
)

DIGESTS = DigestSettings(
    threshold=3,
    rate_seconds=60,
    window_seconds=3,
    settle_seconds=0.5,
    poll_seconds=0.3,
    lease_seconds=60,
)


def _sent(found: list[AnyEvent]) -> list[NotificationSent]:
    return [e for e in found if isinstance(e, NotificationSent)]


async def test_a_surge_reaches_the_mailbox_as_three_e_mails_and_one_digest_listing_the_rest() -> (
    None
):
    settings = settings_for(infra.SMTP_PORT, digest=DIGESTS)
    events = [
        support.grouped({**support.ENGLISH_SAMPLE, "channel_ref": infra.unique("it-surge")})
        for _ in range(15)
    ]
    async with running_notifier(settings) as broker:
        await publish(broker, settings.grouped_topic, events)
        found = await read_events(
            settings.notifications_topic, lambda got: len(_sent(got)) >= 15, within=60
        )
    sent = _sent(found)
    assert sorted(e.submission_id for e in sent) == sorted(e.submission_id for e in events)
    by_message = Counter(e.payload.message_id for e in sent)
    digest_id, members = by_message.most_common(1)[0]
    assert members == 12
    assert len(by_message) == 4  # three single e-mails and one digest
    (digest,) = mails_in(infra.MAILDIR, [digest_id])
    assert digest["X-Sada-Digest-Items"] == "12"
    assert digest["X-Sada-Sink-Envelope-To"] == "voc@moj.gov.sa"
    text = digest.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    digested = {e.submission_id for e in sent if e.payload.digest is not None}
    for event in events:
        assert (event.reference in body) == (event.submission_id in digested)
    singles = [mid for mid in by_message if mid != digest_id]
    assert len(mails_in(infra.MAILDIR, singles)) == 3
