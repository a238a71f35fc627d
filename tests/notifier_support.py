"""Grouped events for the notifier's tests and docs, built without intake, router or campaigns.

The notifier's contract is the `submission.grouped` event: a `submission.routed` one with the
campaign it joined. Building both here (with the shared id functions, a small stand-in for the
default routing table and a wrapper standing in for the campaigns service) keeps its tests
independent of the other services, and makes the e-mails in docs/ reproducible.

Regenerate the checked-in e-mails and digests with `.venv/bin/python -m tests.notifier_support
docs` (add `--png` to redraw docs/digest-ar.png with headless Chromium).
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from services.notifier.digest_messages import DigestComposer
from services.notifier.digests import Digest, DigestItem, Route, item_from
from services.notifier.messages import Composer
from shared import events, ids
from shared.directory import load_channels, load_units
from shared.events import (
    CampaignMembership,
    GroupedPayload,
    Match,
    RoutedPayload,
    RoutingDecision,
    SubmissionGrouped,
    SubmissionRouted,
)
from shared.models import ConsultationMark, Submission
from shared.scopes import campaign_scope

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RULES_VERSION = "9f2c4e1a7b3d5f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8"
PRODUCER = events.Producer(service="router", version="test")
CAMPAIGNS = events.Producer(service="campaigns", version="test")
ARCHIVE_URL = "http://127.0.0.1:8004/v1/submissions/"
CAMPAIGN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sada:campaign").bytes

# Two submissions from the shared samples, embedded so the docs never depend on that file.
ARABIC_SAMPLE: dict[str, Any] = {
    "channel": "istitlaa",
    "channel_ref": "IST-2026-88121",
    "kind": "opinion",
    "legislation_ref": "MOJ-DRAFT-2026-003",
    "language": "ar",
    "subject": "مشروع نظام الإثبات — المادة 12",
    "body": (
        "أرى أن تمديد مدة تقديم البينة إلى ثلاثين يوماً يحقق العدالة للأطراف البعيدين عن مقر"
        " المحكمة.\nكما أقترح قبول التوقيع الإلكتروني عبر منصة Najiz دون توثيق إضافي."
    ),
    "submitter": {"name": "عبدالله الحربي (Abdullah Alharbi)", "email": "a.harbi@example.sa"},
    "attachments": [
        {
            "filename": "ملاحظات-المادة-12.pdf",
            "content_type": "application/pdf",
            "size_bytes": 248_331,
            "url": "https://istitlaa.example.sa/files/88121/1",
        }
    ],
    "submitted_at": "2026-11-25T10:00:00+03:00",
}
ENGLISH_SAMPLE: dict[str, Any] = {
    "channel": "email",
    "channel_ref": "<CAF12@mail.example.com>",
    "kind": "idea",
    "language": "en",
    "topic": "courts",
    "subject": "Idea: appointment reminders",
    "body": (
        "Courts could send calendar invites for hearing appointments, with a map link.\n"
        "For example: «محكمة الرياض العامة» — hall 4."
    ),
    "submitter": {
        "name": "Noura Al-Qahtani (نورة القحطاني)",
        "email": "noura.q@example.com",
        "phone": "+966500000002",
    },
    "submitted_at": "2026-11-25T10:07:00+03:00",
}


def _has_arabic(text: str) -> bool:
    return any("\u0600" <= char <= "\u06ff" for char in text)


def submission(raw: dict[str, Any], *, received_at: datetime | None = None) -> Submission:
    """Return the `Submission` intake would make of `raw` (ids derived the shared way)."""
    content = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    sid = ids.submission_id(raw["channel"], raw.get("channel_ref"), ids.digest(content))
    submitted = datetime.fromisoformat(raw["submitted_at"])
    text = " ".join(
        [raw.get("subject") or "", raw.get("body") or ""]
        + [a["answer"] for a in raw.get("answers", ())]
    )
    language = raw.get("language") or ("ar" if _has_arabic(text) else "en")
    return Submission.model_validate(
        {
            **raw,
            "submission_id": sid,
            "reference": ids.reference(sid),
            "language": language,
            "received_at": received_at or (submitted.astimezone(UTC) + timedelta(seconds=2)),
        }
    )


def decide(sub: Submission) -> RoutingDecision:
    """A stand-in for the router's default table (docs/design.md, "Routing"), enough for samples."""
    units = load_units()

    def to(unit: str, rule: str, reason: str, *matched: Match) -> RoutingDecision:
        return RoutingDecision(
            unit=unit,
            mailbox=units[unit].mailbox,
            rule_id=rule,
            rules_version=RULES_VERSION,
            reason=reason,
            matched=matched,
        )

    if sub.legislation_ref:
        return to(
            "legislations_office",
            "legislation-reference",
            f"legislation_ref {sub.legislation_ref} present",
            Match(field="legislation_ref", value=sub.legislation_ref),
        )
    if sub.channel in {"istitlaa", "legislation_questionnaire"}:
        return to(
            "legislations_office",
            "consultation-channel",
            f"channel {sub.channel} is a consultation channel",
            Match(field="channel", value=sub.channel),
        )
    if sub.topic:
        return to(
            "voice_of_customer",
            "explicit-topic",
            f"topic {sub.topic} belongs to Voice of the Customer",
            Match(field="topic", value=sub.topic),
        )
    return to("voice_of_customer", "default", "no other rule matched")


def routed(
    raw: dict[str, Any] | Submission,
    decision: RoutingDecision | None = None,
    *,
    occurred_at: datetime | None = None,
) -> SubmissionRouted:
    """Return the `submission.routed` event for `raw` (a raw dict or a built `Submission`)."""
    sub = raw if isinstance(raw, Submission) else submission(raw)
    event = events.build(
        SubmissionRouted,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=RoutedPayload(submission=sub, decision=decision or decide(sub)),
        discriminator="",
        producer=PRODUCER,
    )
    moment = occurred_at or (sub.received_at + timedelta(milliseconds=40))
    return event.model_copy(update={"occurred_at": moment})


def as_grouped(
    event: SubmissionRouted, campaign: CampaignMembership | None = None
) -> SubmissionGrouped:
    """Return `event` grouped as the campaigns service publishes it, joined to `campaign`.

    A stand-in for that service (test-only): its id derives from the routed event's id, so a
    redelivered or replayed routed event is grouped with the same id; decided 20 ms later.
    """
    payload = event.payload
    grouped_event = events.build(
        SubmissionGrouped,
        submission_id=event.submission_id,
        reference=event.reference,
        payload=GroupedPayload(
            submission=payload.submission,
            decision=payload.decision,
            scope=campaign_scope(payload.submission.legislation_ref, payload.decision.unit),
            campaign=campaign,
        ),
        discriminator=event.event_id,
        producer=CAMPAIGNS,
        correlation_id=event.correlation_id,
    )
    return grouped_event.model_copy(
        update={"occurred_at": event.occurred_at + timedelta(milliseconds=20)}
    )


def grouped(
    raw: dict[str, Any] | Submission,
    decision: RoutingDecision | None = None,
    *,
    campaign: CampaignMembership | None = None,
    occurred_at: datetime | None = None,
) -> SubmissionGrouped:
    """Return the `submission.grouped` event for `raw`: routed, then joined to `campaign`."""
    return as_grouped(routed(raw, decision, occurred_at=occurred_at), campaign)


def campaign_of(
    first: dict[str, Any],
    *,
    size: int = 412,
    similar_to: dict[str, Any] | None = None,
    similarity: float = 0.8731,
) -> CampaignMembership:
    """Return a membership of the campaign that `first` (a raw submission) founded."""
    founder = submission(first)
    closest = submission(similar_to) if similar_to is not None else founder
    scope = campaign_scope(founder.legislation_ref, decide(founder).unit)
    return CampaignMembership(
        # As docs/campaigns.md defines it: the UUIDv5 of the scope and the founder's id.
        campaign_id=ids.uuid5(CAMPAIGN_NAMESPACE, f"{scope}\x1f{founder.submission_id}"),
        size=size,
        first_reference=founder.reference,
        first_submission_id=founder.submission_id,
        similar_to=closest.reference,
        similarity=similarity,
    )


def composer(**overrides: Any) -> Composer:
    """Return a composer over the real directory files."""
    settings: dict[str, Any] = {
        "units": load_units(),
        "channels": load_channels(),
        "sender": "Sada <sada-notifier@moj.gov.sa>",
        "archive_url": ARCHIVE_URL,
        "message_id_domain": "sada.notifier",
    }
    return Composer(**{**settings, **overrides})


def digest_composer(**overrides: Any) -> DigestComposer:
    """Return a digest composer over the real directory files (the same settings as `composer`)."""
    settings: dict[str, Any] = {
        "units": load_units(),
        "channels": load_channels(),
        "sender": "Sada <sada-notifier@moj.gov.sa>",
        "archive_url": ARCHIVE_URL,
        "message_id_domain": "sada.notifier",
    }
    return DigestComposer(**{**settings, **overrides})


DIGEST_END = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
"""The sample digests' window end: 10:05 in Riyadh (a window of 10:00–10:05)."""


def digest_item(
    raw: dict[str, Any] | Submission,
    *,
    campaign: CampaignMembership | None = None,
    why: Route = "surge",
    personal: bool = True,
    received_at: datetime | None = None,
) -> DigestItem:
    """Return the digest item the notifier would keep for `raw` (routed, grouped, pended)."""
    sub = raw if isinstance(raw, Submission) else submission(raw, received_at=received_at)
    event = grouped(sub, campaign=campaign)
    return item_from(event, personal=personal, why=why, at=sub.received_at)


def _at(minute: int, second: int = 0) -> datetime:
    return DIGEST_END.replace(minute=minute, second=second)


def sample_digest(*, personal: bool = True) -> Digest:
    """The Legislations Office's digest of 10:00–10:05 (Riyadh) under a surge.

    MOJ-DRAFT-2026-003: five copies of a campaign of 412 (the office had the first three by
    themselves), and two single views, one in English; MOJ-DRAFT-2026-007: a late view; and a
    questionnaire answer on no draft law left over from the window before.
    """
    first = {**ARABIC_SAMPLE, "channel_ref": "IST-2026-88001"}
    copies = []
    for n in range(5):
        copy = {
            **ARABIC_SAMPLE,
            "channel_ref": f"IST-2026-884{n:02d}",
            "subject": "نرفض تعديل المادة 12 من مشروع نظام الإثبات",
            "body": "نطالب بإبقاء مدة تقديم البينة كما هي (15 يوماً) حفاظاً على سرعة الفصل.",
        }
        membership = campaign_of(first, size=408 + n)
        copies.append(
            digest_item(
                copy,
                campaign=membership,
                why="campaign",
                personal=personal,
                received_at=_at(1, 10 * n + 5),
            )
        )
    english = {
        **ENGLISH_SAMPLE,
        "channel": "istitlaa",
        "channel_ref": "IST-2026-88502",
        "kind": "comment",
        "topic": None,
        "legislation_ref": "MOJ-DRAFT-2026-003",
        "subject": "Article 12: allow e-signatures via Najiz (نافذ)",
    }
    late = late_example()
    questionnaire = {
        "channel": "legislation_questionnaire",
        "channel_ref": "LQ-551-42",
        "kind": "consultation_response",
        "language": "ar",
        "subject": "استبانة: الصياغة العامة",
        "answers": [{"question_id": "q1", "answer": "موافق مع ملاحظات"}],
        "submitted_at": "2026-11-25T09:58:30+03:00",
    }
    items = (
        *copies,
        digest_item(
            {**ARABIC_SAMPLE, "channel_ref": "IST-2026-88501"},
            personal=personal,
            received_at=_at(2, 41),
        ),
        digest_item(english, personal=personal, received_at=_at(3, 12)),
        digest_item(late.model_copy(update={"received_at": _at(4, 2)}), personal=personal),
        digest_item(
            questionnaire, personal=personal, received_at=_at(3, 30) - timedelta(minutes=5)
        ),
    )
    return Digest(
        inbox=items[0].inbox,
        unit=items[0].unit,
        mailbox=items[0].mailbox,
        window_end=DIGEST_END,
        window_seconds=300.0,
        items=items,
    )


def mixed_digest() -> Digest:
    """Voice of the Customer's digest: English and Arabic submissions, a campaign, no draft law."""
    app_crash = {
        "channel": "najiz_mobile",
        "channel_ref": "NJZ-APP-60001",
        "kind": "problem",
        "topic": "najiz-services",
        "language": "ar",
        "body": "التطبيق يغلق تلقائياً عند رفع صورة الهوية في خدمة الصكوك (الإصدار 4.2).",
        "submitted_at": "2026-11-25T10:00:40+03:00",
    }
    campaign = campaign_of(app_crash, size=37)
    crashes = [
        digest_item(
            {**app_crash, "channel_ref": f"NJZ-APP-6{n:04d}"},
            campaign=campaign,
            why="campaign",
            received_at=_at(0, 40 + 3 * n),
        )
        for n in range(2, 6)
    ]
    reminders = {**ENGLISH_SAMPLE, "channel_ref": "<CAF99@mail.example.com>"}
    sms = {
        "channel": "najiz_portal",
        "channel_ref": "NJZ-WEB-100977",
        "kind": "suggestion",
        "topic": "najiz-services",
        "language": "ar",
        "subject": "إشعار SMS عند تحديث حالة طلب الوكالة",
        "body": "أقترح إضافة إشعار عبر الرسائل النصية.",
        "submitted_at": "2026-11-25T10:02:00+03:00",
    }
    items = (
        *crashes,
        digest_item(reminders, received_at=_at(1, 20)),
        digest_item(sms, received_at=_at(2, 2)),
    )
    return Digest(
        inbox=items[0].inbox,
        unit=items[0].unit,
        mailbox=items[0].mailbox,
        window_end=DIGEST_END,
        window_seconds=300.0,
        items=items,
    )


def doc_digests() -> dict[Path, str]:
    """Return the checked-in example digests (HTML parts) by path."""
    compose = digest_composer().compose
    return {
        DOCS / "digest-ar.html": compose(sample_digest()).html,
        DOCS / "digest-mixed.html": compose(mixed_digest()).html,
        # past its list_limit: counts in the body, the list attached as CSV
        DOCS / "digest-ar-counted.html": compose(sample_digest(), list_limit=5).html,
    }


def write_digest_png(out: Path = DOCS) -> Path:
    """Write the rendered picture of docs/digest-ar.html (headless Chromium, tests/browser.py)."""
    from PIL import Image

    from tests import browser

    page = out / "digest-ar.html"
    png = out / "digest-ar.png"
    browser.screenshot(page, png, width=760, height=browser.page_height(page, width=760))
    # 256 colours: a third of the bytes, no visible loss on text (as the report pictures)
    with Image.open(png) as shot:
        small = shot.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    small.save(png, optimize=True)
    return png


def doc_emails() -> dict[Path, str]:
    """Return the checked-in example e-mails by path, rendered from the two samples."""
    compose = composer().compose
    member = {**ARABIC_SAMPLE, "channel_ref": "IST-2026-88412"}
    first = {**ARABIC_SAMPLE, "channel_ref": "IST-2026-88001"}
    closest = {**ARABIC_SAMPLE, "channel_ref": "IST-2026-88007"}
    campaign = campaign_of(first, size=412, similar_to=closest, similarity=0.8731)
    return {
        DOCS / "email-ar.html": compose(grouped(ARABIC_SAMPLE)).html,
        DOCS / "email-en.html": compose(grouped(ENGLISH_SAMPLE)).html,
        DOCS / "email-ar-campaign.html": compose(grouped(member, campaign=campaign)).html,
        DOCS / "email-ar-late.html": compose(grouped(late_example())).html,
    }


def late_example() -> Submission:
    """The Arabic sample, sent to the closed MOJ-DRAFT-2026-007 a day after it closed."""
    closed = datetime(2026, 11, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=3)))
    raw = {
        **ARABIC_SAMPLE,
        "channel_ref": "IST-2026-89310",
        "legislation_ref": "MOJ-DRAFT-2026-007",
        "subject": "مشروع تعديل اللائحة التنفيذية لنظام المحاكم التجارية",
        "body": "أرجو النظر في ملاحظتي رغم انتهاء المدة: تعريف (المنشأة) يحتاج إلى ضبط.",
        "attachments": [],
        "submitted_at": "2026-12-01T09:30:00+03:00",
    }
    mark = ConsultationMark(registered=True, late=True, closes_at=closed)
    return submission(raw).model_copy(update={"consultation": mark})


if __name__ == "__main__":
    if sys.argv[1:] not in (["docs"], ["docs", "--png"]):
        raise SystemExit("usage: python -m tests.notifier_support docs [--png]")
    for path, html in {**doc_emails(), **doc_digests()}.items():
        path.write_text(html, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    if "--png" in sys.argv:  # needs Chromium (make chromium)
        print(f"wrote {write_digest_png().relative_to(ROOT)}")
