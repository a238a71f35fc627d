"""The notifier on the real Kafka, FerretDB and the shared SMTP sink (127.0.0.1:1025)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from services.notifier.messages import Composer
from services.notifier.settings import NotifierSettings
from shared.events import AnyEvent, NotificationSent, RoutingDecision, SubmissionGrouped
from tests import infra
from tests import notifier_support as support
from tests.integration.notifier_harness import (
    mails_in,
    publish,
    read_events,
    running_notifier,
    settings_for,
)


@dataclass
class Running:
    settings: NotifierSettings
    broker: KafkaBroker
    composer: Composer

    def event(self, raw: dict[str, Any], **changes: Any) -> SubmissionGrouped:
        """A grouped event for a submission no other test (or run) has."""
        return support.grouped({**raw, "channel_ref": infra.unique("it-ref"), **changes})

    def message_id(self, event: SubmissionGrouped) -> str:
        return self.composer.compose(event).message_id

    async def wait_for_mail(self, *events: SubmissionGrouped) -> list[EmailMessage]:
        ids = [self.message_id(e) for e in events]

        def arrived() -> bool:
            got = {m["Message-ID"] for m in infra_mails(ids)}
            return got >= set(ids)

        await infra.wait_until(arrived, within=30)
        return infra_mails(ids)


def infra_mails(message_ids: list[str]) -> list[EmailMessage]:
    return mails_in(infra.MAILDIR, message_ids)


@pytest.fixture(scope="module")
async def running() -> AsyncIterator[Running]:
    settings = settings_for(infra.SMTP_PORT)
    async with running_notifier(settings) as broker:
        yield Running(settings, broker, support.composer())


def _parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


async def test_email_reaches_the_units_mailbox_with_headers_and_both_parts(
    running: Running,
) -> None:
    event = running.event(support.ARABIC_SAMPLE)
    await publish(running.broker, running.settings.grouped_topic, [event])
    (mail,) = await running.wait_for_mail(event)
    assert mail["X-Sada-Sink-Envelope-To"] == "LegislationsOffice@moj.gov.sa"
    assert mail["To"].addresses[0].addr_spec == "LegislationsOffice@moj.gov.sa"
    assert mail["X-Sada-Sink-Mail-From"] == "sada-notifier@moj.gov.sa"
    assert mail["Message-ID"] == running.message_id(event)
    assert mail["X-Sada-Reference"] == event.reference
    assert mail["X-Sada-Rule"] == "legislation-reference"
    assert str(mail["Subject"]) == (
        f"{event.reference} — رأي — منصة استطلاع — مشروع نظام الإثبات — المادة 12"
    )
    assert mail.get_content_type() == "multipart/alternative"
    parts = _parts(mail)
    assert list(parts) == ["text/plain", "text/html"]
    assert "أرى أن تمديد مدة تقديم البينة" in parts["text/plain"]
    assert "a.harbi@example.sa" in parts["text/plain"]


async def test_an_arabic_submission_arrives_right_to_left_and_an_english_one_left_to_right(
    running: Running,
) -> None:
    arabic, english = running.event(support.ARABIC_SAMPLE), running.event(support.ENGLISH_SAMPLE)
    await publish(running.broker, running.settings.grouped_topic, [arabic, english])
    mails = {m["X-Sada-Reference"]: m for m in await running.wait_for_mail(arabic, english)}
    arabic_html = _parts(mails[arabic.reference])["text/html"]
    english_html = _parts(mails[english.reference])["text/html"]
    assert '<html lang="ar" dir="rtl">' in arabic_html
    assert '<div dir="auto" lang="ar"' in arabic_html
    assert '<html lang="en" dir="ltr">' in english_html
    assert mails[english.reference]["X-Sada-Sink-Envelope-To"] == "voc@moj.gov.sa"


async def test_a_campaign_member_arrives_with_its_campaign_line_and_header(
    running: Running,
) -> None:
    first = {**support.ARABIC_SAMPLE, "channel_ref": infra.unique("it-first")}
    campaign = support.campaign_of(first, size=7, similarity=0.9)
    raw = {**support.ARABIC_SAMPLE, "channel_ref": infra.unique("it-ref")}
    event = support.grouped(raw, campaign=campaign)
    await publish(running.broker, running.settings.grouped_topic, [event])
    (mail,) = await running.wait_for_mail(event)
    assert mail["X-Sada-Campaign"] == campaign.campaign_id
    parts = _parts(mail)
    assert "واحدة من 7 مشاركات متطابقة أو شبه متطابقة (حملة)" in parts["text/plain"]
    assert "One of 7 near-identical submissions (campaign)" in parts["text/plain"]
    assert '<p lang="ar" dir="rtl"' in parts["text/html"]
    assert "similarity 90%" in parts["text/html"]


async def test_a_crlf_subject_and_a_script_body_arrive_neutralised(running: Running) -> None:
    event = running.event(
        support.ENGLISH_SAMPLE,
        subject="Hello\r\nBcc: attacker@example.org\r\nX-Evil: 1",
        body="<script>alert(document.cookie)</script>\r\n<img src=x onerror=alert(1)>",
    )
    await publish(running.broker, running.settings.grouped_topic, [event])
    (mail,) = await running.wait_for_mail(event)
    assert str(mail["Subject"]) == (
        f"{event.reference} — Idea — E-mail — Hello Bcc: attacker@example.org X-Evil: 1"
    )
    assert mail["Bcc"] is None
    assert mail["X-Evil"] is None
    assert mail["X-Sada-Sink-Envelope-To"] == "voc@moj.gov.sa"
    html = _parts(mail)["text/html"]
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in html


async def test_an_internationalised_mailbox_is_reached_over_smtputf8(running: Running) -> None:
    sub = support.submission({**support.ENGLISH_SAMPLE, "channel_ref": infra.unique("it-ref")})
    decision = RoutingDecision(
        unit="voice_of_customer",
        mailbox="صوت-المستفيد@moj.gov.sa",
        rule_id="explicit-topic",
        rules_version="0" * 64,
        reason="test",
    )
    event = support.grouped(sub, decision)
    await publish(running.broker, running.settings.grouped_topic, [event])
    (mail,) = await running.wait_for_mail(event)
    assert mail["X-Sada-Sink-Envelope-To"] == "صوت-المستفيد@moj.gov.sa"  # RCPT TO, SMTPUTF8
    assert str(mail["To"]) == "إدارة صوت المستفيد <صوت-المستفيد@moj.gov.sa>"
    assert str(mail["Subject"]).startswith(f"{event.reference} — Idea — E-mail — ")


async def test_the_same_grouped_event_delivered_three_times_yields_one_email(
    running: Running,
) -> None:
    event = running.event(support.ENGLISH_SAMPLE)
    topic = running.settings.grouped_topic
    await publish(running.broker, topic, [event])
    await running.wait_for_mail(event)
    await publish(running.broker, topic, [event, event])  # a redelivery, twice

    def mine(events: list[AnyEvent]) -> list[AnyEvent]:
        return [o for o in events if o.submission_id == event.submission_id]

    outcomes = await read_events(
        running.settings.notifications_topic, lambda found: len(mine(found)) >= 3
    )
    mine_now = mine(outcomes)
    assert len(mine_now) == 3
    assert all(isinstance(o, NotificationSent) for o in mine_now)
    assert sorted(o.payload.repeat for o in mine_now if isinstance(o, NotificationSent)) == [
        False,
        True,
        True,
    ]
    mails = infra_mails([running.message_id(event)])
    assert Counter(m["Message-ID"] for m in mails) == {running.message_id(event): 1}
