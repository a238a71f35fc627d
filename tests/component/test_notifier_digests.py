"""The notifier app with digests on: a surge becomes a threshold of e-mails and one digest."""

from __future__ import annotations

import email
from email import policy

import pytest

from services.notifier.settings import DigestSettings
from shared.events import NotificationSent
from tests import notifier_support as support
from tests.component.test_notifier_service import Clock, _sent, notifier
from tests.integration.digest_support import surge

pytestmark = pytest.mark.component

DIGESTS = DigestSettings(threshold=4, rate_seconds=60, window_seconds=30, list_limit=10)


async def test_a_surge_gets_the_threshold_alone_and_the_rest_in_one_digest_with_outcomes() -> None:
    clock = Clock()
    events = surge(9)
    async with notifier(clock=clock, digest=DIGESTS) as h:
        await h.deliver(*events)
        assert len(h.mailer.sent) == 4
        assert len(_sent(h.outcomes)) == 4  # the rest wait: no outcome yet
        clock.advance(DIGESTS.window_seconds + DIGESTS.settle_seconds)
        assert await h.app.state.digests.run_due() == 1
        await h.deliver(*events)  # redelivered after its digest: repeats only
    digest = h.mailer.sent[-1]
    assert len(h.mailer.sent) == 5
    assert digest.message_id.startswith("<digest-")
    parsed = email.message_from_bytes(digest.data, policy=policy.default)
    assert parsed["X-Sada-Digest-Items"] == "5"
    for event in events[4:]:
        assert event.reference in digest.text
    sent = _sent(h.outcomes)
    digested = [o for o in sent if o.payload.digest is not None]
    assert sorted(o.submission_id for o in digested if not o.payload.repeat) == sorted(
        e.submission_id for e in events[4:]
    )
    assert {o.payload.message_id for o in digested} == {digest.message_id}
    assert all(isinstance(o, NotificationSent) for o in sent)
    assert len([o for o in sent if o.payload.repeat]) == 9


async def test_a_digest_past_its_list_limit_attaches_the_full_list() -> None:
    clock = Clock()
    events = surge(20)
    async with notifier(clock=clock, digest=DIGESTS) as h:
        await h.deliver(*events)
        clock.advance(DIGESTS.window_seconds + DIGESTS.settle_seconds)
        await h.app.state.digests.run_due()
    parsed = email.message_from_bytes(h.mailer.sent[-1].data, policy=policy.default)
    attachments = list(parsed.iter_attachments())
    assert len(attachments) == 1
    data = attachments[0].get_payload(decode=True)
    assert isinstance(data, bytes)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, so Excel shows Arabic
    assert data.decode("utf-8-sig").count("\n") == 16 + 1  # a header and one row each


async def test_campaign_copies_are_folded_while_the_mailbox_is_calm() -> None:
    clock = Clock()
    sample = {**support.ENGLISH_SAMPLE, "channel_ref": "FOUNDER"}
    copies = [
        support.grouped(
            {**sample, "channel_ref": f"COPY-{n}"}, campaign=support.campaign_of(sample, size=n)
        )
        for n in range(2, 7)
    ]
    async with notifier(clock=clock, digest=DigestSettings(threshold=30)) as h:
        await h.deliver(support.grouped(sample), *copies)
        assert len(h.mailer.sent) == 3  # the founder and members 2 and 3
        clock.advance(300 + 2)
        await h.app.state.digests.run_due()
    assert len(h.mailer.sent) == 4
    assert [o.payload.digest.why for o in _sent(h.outcomes) if o.payload.digest] == [
        "campaign",
        "campaign",
        "campaign",
    ]
