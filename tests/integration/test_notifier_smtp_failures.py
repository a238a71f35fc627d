"""The notifier when the mail server is down, busy or refusing: nothing lost, nothing doubled.

These tests run their own sink (the local sink's handler on a free port, own Maildir and
control file) so stopping it or injecting faults never disturbs anyone else's tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.notifier.mailer import SmtpMailer, SmtpMailerPool
from services.notifier.settings import SmtpSettings
from shared.events import AnyEvent, NotificationFailed, NotificationSent, SubmissionGrouped
from shared.mongo import make_client
from shared.retry import TransientError
from tests import infra
from tests import notifier_support as support
from tests.integration.notifier_harness import (
    OwnSink,
    publish,
    read_events,
    running_notifier,
    settings_for,
)

OUTAGE_SECONDS = 20.0


def _events(count: int, raw: dict[str, Any] = support.ENGLISH_SAMPLE) -> list[SubmissionGrouped]:
    return [support.grouped({**raw, "channel_ref": infra.unique("it-ref")}) for _ in range(count)]


def _message_ids(events: list[SubmissionGrouped]) -> dict[str, str]:
    compose = support.composer().compose
    return {compose(e).message_id: e.submission_id for e in events}


def _counter(name: str) -> float:
    """Return a counter's total over all its labels (the metric without `_total`)."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == name:
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def _retries() -> float:
    return _counter("sada_notifier_smtp_retries")


def _for(events: list[AnyEvent], submission_id: str) -> list[AnyEvent]:
    return [e for e in events if e.submission_id == submission_id]


async def test_smtp_down_for_20_seconds_then_back_delivers_every_email_exactly_once(
    tmp_path: Path,
) -> None:
    sink = OwnSink(tmp_path)
    await sink.start()
    settings = settings_for(sink.port, hold_seconds=3.0)
    before, during, after = _events(5), _events(10), _events(5)
    ids = _message_ids(before + during + after)
    async with running_notifier(settings) as broker:
        topic = settings.grouped_topic
        await publish(broker, topic, before)
        await infra.wait_until(lambda: len(sink.mails(ids)) == 5, within=30)
        # The outcomes mean every session got the server's reply. A file in the Maildir alone
        # does not: the sink stores the message, then answers 250, and stopping it in between
        # is a crash inside the documented window (docs/notifier.md), not this outage.
        first = {e.submission_id for e in before}
        await read_events(
            settings.notifications_topic, lambda found: {e.submission_id for e in found} >= first
        )

        await sink.stop()
        stopped_at = time.monotonic()
        retries_at_stop = _retries()
        await publish(broker, topic, during[:5])  # grouped events keep flowing during the outage
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        await publish(broker, topic, during[5:])
        await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - stopped_at))
        assert len(sink.mails(ids)) == 5  # nothing got through while it was down
        retries_during_outage = _retries() - retries_at_stop

        await sink.start()  # the same port
        await publish(broker, topic, after)
        await infra.wait_until(lambda: len(sink.mails(ids)) >= 20, within=60)
        await asyncio.sleep(2.0)  # a duplicate would arrive within this window

        outcomes = await read_events(
            settings.notifications_topic,
            lambda found: {e.submission_id for e in found} >= set(ids.values()),
        )
    await sink.stop()

    arrived = Counter(m["Message-ID"] for m in sink.mails(ids))
    assert arrived == dict.fromkeys(ids, 1)
    for submission_id in ids.values():
        mine = _for(outcomes, submission_id)
        assert mine
        assert all(isinstance(e, NotificationSent) for e in mine)
    # Backoff, not a hot loop: a few attempts per hold window, not thousands.
    assert 1 <= retries_during_outage < 100


async def test_a_temporary_refusal_4xx_is_retried_until_the_email_goes_out_once(
    tmp_path: Path,
) -> None:
    sink = OwnSink(tmp_path)
    await sink.start()
    sink.faults(tempfail=True)
    settings = settings_for(sink.port, hold_seconds=2.0)
    events = _events(3)
    ids = _message_ids(events)
    async with running_notifier(settings) as broker:
        await publish(broker, settings.grouped_topic, events)
        await asyncio.sleep(3.0)  # at least one hold window of 451 replies
        assert sink.mails(ids) == []
        sink.faults()
        await infra.wait_until(lambda: len(sink.mails(ids)) >= 3, within=30)
        outcomes = await read_events(
            settings.notifications_topic,
            lambda found: {e.submission_id for e in found} >= set(ids.values()),
        )
    await sink.stop()
    assert Counter(m["Message-ID"] for m in sink.mails(ids)) == dict.fromkeys(ids, 1)
    first = _for(outcomes, events[0].submission_id)
    assert isinstance(first[-1], NotificationSent)
    assert first[-1].payload.attempts > 1


async def test_an_unknown_mailbox_5xx_publishes_failed_once_and_a_redelivery_sends_nothing(
    tmp_path: Path,
) -> None:
    sink = OwnSink(tmp_path)
    await sink.start()
    sink.faults(reject_rcpt=["nobody@moj.gov.sa"])
    settings = settings_for(sink.port)
    (good,) = _events(1)
    (bad,) = _events(1)
    decision = bad.payload.decision.model_copy(update={"mailbox": "nobody@moj.gov.sa"})
    bad = support.grouped(bad.payload.submission, decision)
    ids = _message_ids([good, bad])
    async with running_notifier(settings) as broker:
        await publish(broker, settings.grouped_topic, [bad, good, bad])
        outcomes = await read_events(
            settings.notifications_topic,
            lambda found: (
                len(_for(found, bad.submission_id)) >= 2
                and len(_for(found, good.submission_id)) >= 1
            ),
        )
        client = make_client(settings.mongo, app_name="it-notifier")
        ledger = client[settings.mongo.database]["ledger"]
        stored = await ledger.find_one({"_id": f"{bad.submission_id}:voice_of_customer"})
        await client.close()
    await sink.stop()

    failed = [e for e in _for(outcomes, bad.submission_id) if isinstance(e, NotificationFailed)]
    assert len(failed) == len(_for(outcomes, bad.submission_id)) == 2
    assert [e.payload.repeat for e in failed] == [False, True]
    assert failed[0].payload.smtp_code == 550
    assert failed[0].payload.smtp_reply == "5.1.1 Mailbox unavailable"
    assert stored is not None
    assert stored["status"] == "failed"
    assert stored["smtp_code"] == 550
    # The good one behind it went out; the refused one never reached a mailbox.
    assert Counter(m["Message-ID"] for m in sink.mails(ids)) == {
        support.composer().compose(good).message_id: 1
    }


async def test_one_connection_carries_many_emails_and_a_dropped_one_is_replaced_quietly(
    tmp_path: Path,
) -> None:
    sink = OwnSink(tmp_path)
    await sink.start()
    mailer = SmtpMailer(SmtpSettings(host=infra.SMTP_HOST, port=sink.port, timeout=5.0))
    compose = support.composer().compose
    emails = [compose(e) for e in _events(4)]
    opened = _counter("sada_notifier_smtp_connections")
    try:
        for composed in emails[:3]:
            reply = await mailer.send(composed)
            assert reply.code == 250
        assert _counter("sada_notifier_smtp_connections") == opened + 1  # reused, not reopened
        await sink.stop()  # the server drops the idle session…
        await sink.start()
        await asyncio.sleep(0.2)
        await mailer.send(emails[3])  # …and the next e-mail simply opens a new one
        assert _counter("sada_notifier_smtp_connections") == opened + 2
    finally:
        await mailer.close()
        await sink.stop()
    assert Counter(m["Message-ID"] for m in sink.mails(e.message_id for e in emails)) == {
        e.message_id: 1 for e in emails
    }


async def test_a_pool_sends_side_by_side_over_at_most_its_connections_each_email_once(
    tmp_path: Path,
) -> None:
    sink = OwnSink(tmp_path)
    await sink.start()
    pool = SmtpMailerPool(
        SmtpSettings(host=infra.SMTP_HOST, port=sink.port, timeout=5.0, connections=3)
    )
    compose = support.composer().compose
    emails = [compose(e) for e in _events(12)]
    opened = _counter("sada_notifier_smtp_connections")
    try:
        await pool.send(emails[0])
        assert _counter("sada_notifier_smtp_connections") == opened + 1  # one, while alone
        replies = await asyncio.gather(*(pool.send(e) for e in emails[1:]))
        assert {r.code for r in replies} == {250}
        assert _counter("sada_notifier_smtp_connections") == opened + 3  # never more than 3
    finally:
        await pool.close()
        await sink.stop()
    assert Counter(m["Message-ID"] for m in sink.mails(e.message_id for e in emails)) == {
        e.message_id: 1 for e in emails
    }


async def test_a_server_without_the_configured_starttls_is_an_outage_not_a_poison_message(
    tmp_path: Path,
) -> None:
    sink = OwnSink(tmp_path)  # offers no STARTTLS
    await sink.start()
    mailer = SmtpMailer(SmtpSettings(host=infra.SMTP_HOST, port=sink.port, starttls=True))
    (event,) = _events(1)
    try:
        with pytest.raises(TransientError, match="cannot open an SMTP session"):
            await mailer.send(support.composer().compose(event))
    finally:
        await mailer.close()
        await sink.stop()
    assert sink.mails([support.composer().compose(event).message_id]) == []
