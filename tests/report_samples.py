"""Realistic report data for the report page's tests and the pictures in docs/.

`python -m tests.report_samples docs` writes docs/report-consultation.{html,png} and
docs/report-unit.{html,png} (the PNGs with headless Chromium, tests/browser.py). Everything
here is deterministic (fixed seed, fixed times), so the files change only when the page does.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from services.archive.report_model import (
    CampaignSummary,
    Comment,
    ConsultationInfo,
    ConsultationReport,
    Count,
    DayCount,
    FreeText,
    OptionCount,
    QuestionSummary,
    UnitReport,
)

RIYADH = ZoneInfo("Asia/Riyadh")
REF = "MOJ-DRAFT-2026-003"
OPENS = datetime(2026, 3, 1, 0, 0, tzinfo=RIYADH)
CLOSES = datetime(2026, 3, 30, 23, 59, tzinfo=RIYADH)
GENERATED = datetime(2026, 4, 4, 9, 30, tzinfo=UTC)
CHANNEL_WEIGHTS = {
    "istitlaa": 0.52,
    "legislation_questionnaire": 0.24,
    "najiz_portal": 0.12,
    "moj_website": 0.07,
    "email": 0.05,
}
TEXTS = (
    "أقترح أن تنص المادة 12 على مهلة لا تتجاوز 30 يومًا لإتمام التوثيق الإلكتروني.",
    "The definition of 'electronic notary' in Article 1 should include licensed private notaries.",
    "أؤيد المشروع، وأرجو توضيح رسوم خدمة التوثيق عن بُعد عبر تطبيق Najiz قبل النفاذ.",
    "المادة 7 (Article 7) تتعارض مع نظام المعاملات المدنية في شأن الوكالات العامة.",
    "Please publish the executive regulations together with the law, not 180 days later.",
    "نقترح إلزام الجهات بقبول الوكالة الإلكترونية الصادرة عبر ناجز دون طلب نسخة ورقية.",
    "لا أوافق على حذف شرط حضور الشاهدين في توثيق الإقرارات العقارية.",
    "Good draft overall. Article 22's penalty of SAR 50,000 seems low for repeated violations.",
    "يجب أن تتاح خدمة التوثيق لذوي الإعاقة بوسائل ميسرة، ومنها لغة الإشارة.",
    "<b>Bold?</b> Text with markup & an ampersand must stay text: <script>alert(1)</script>",
)


def _day_counts(rng: random.Random, days: int, total: int) -> list[int]:
    """Spread `total` over `days`: busy first days, a lull, a rush before the close."""
    weights = [
        (3.0 if i < 3 else 1.0) + (2.5 if days - 8 <= i < days - 5 else 0) + rng.random()
        for i in range(days)
    ]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    counts[0] += total - sum(counts)
    return counts


def _by_channel(count: int) -> tuple[Count, ...]:
    parts = {k: int(count * w) for k, w in CHANNEL_WEIGHTS.items()}
    parts["istitlaa"] += count - sum(parts.values())
    return tuple(Count(key=k, count=v) for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))


def consultation_report(comments: int = 24, *, total: int = 4_812) -> ConsultationReport:
    """Return the summary of views of a popular draft law, with `comments` distinct comments."""
    rng = random.Random(15)
    window = 35  # the 30-day window and five days of late submissions after it
    days = [OPENS.date() + timedelta(days=i) for i in range(window)]
    late = 57
    counts = [*_day_counts(rng, 30, total - late), 30, 14, 7, 4, 2]
    per_day = tuple(
        DayCount(day=d, count=c, by_channel=_by_channel(c))
        for d, c in zip(days, counts, strict=True)
    )
    comment_rows = []
    for i in range(comments):
        at = OPENS + timedelta(minutes=int(i * (window * 24 * 60) / max(comments, 1)) + 37)
        comment_rows.append(
            Comment(
                reference=f"SADA-2026-{30000 + i * 7:06d}",
                submitted_at=at,
                kind=("comment", "opinion", "suggestion", "consultation_response")[i % 4],
                channel=tuple(CHANNEL_WEIGHTS)[i % 5],
                text=TEXTS[i % len(TEXTS)],
                late=at > CLOSES,
                campaign_size=(1_406, 388, 61)[i] if i < 3 else None,
            )
        )
    return ConsultationReport(
        consultation=ConsultationInfo(
            ref=REF,
            title_ar="مشروع نظام التوثيق",
            title_en="Draft Notarization Law",
            opens_at=OPENS,
            closes_at=CLOSES,
            link="https://istitlaa.ncc.gov.sa/ar/justice/moj/notarization",
        ),
        generated_at=GENERATED,
        total=total,
        late=late,
        unregistered=0,
        by_kind=(
            Count(key="consultation_response", count=2_630),
            Count(key="comment", count=1_104),
            Count(key="opinion", count=702),
            Count(key="suggestion", count=376),
        ),
        by_channel=_by_channel(total),
        per_day=per_day,
        questions=QUESTIONS,
        campaigns=(
            CampaignSummary(
                campaign_id="c-1",
                size=1_406,
                first_reference="SADA-2026-030000",
                representative=TEXTS[0],
            ),
            CampaignSummary(
                campaign_id="c-2",
                size=388,
                first_reference="SADA-2026-030007",
                representative=TEXTS[1],
            ),
            CampaignSummary(
                campaign_id="c-3",
                size=61,
                first_reference="SADA-2026-030014",
                representative=TEXTS[2],
            ),
        ),
        comments=tuple(comment_rows),
        comments_total=comments,
    )


QUESTIONS = (
    QuestionSummary(
        id="support",
        text_ar="ما موقفك من مشروع النظام بشكل عام؟",
        text_en="Overall, what is your position on the draft law?",
        type="single_choice",
        answered=2_630,
        options=(
            OptionCount(id="support", label_ar="أؤيد", label_en="Support", count=1_512),
            OptionCount(
                id="partly", label_ar="أؤيد مع تعديلات", label_en="Support with changes", count=781
            ),
            OptionCount(id="oppose", label_ar="أعارض", label_en="Oppose", count=214),
            OptionCount(id="neutral", label_ar="لا رأي لي", label_en="No opinion", count=123),
        ),
    ),
    QuestionSummary(
        id="articles",
        text_ar="أي المواد تحتاج إلى مراجعة في رأيك؟",
        text_en="Which articles need revision, in your view?",
        type="multi_choice",
        answered=1_944,
        options=(
            OptionCount(
                id="art-1",
                label_ar="المادة 1: التعريفات",
                label_en="Article 1: Definitions",
                count=655,
            ),
            OptionCount(
                id="art-7",
                label_ar="المادة 7: الوكالات العامة والخاصة وشروط توثيقها إلكترونيًا",
                label_en="Article 7: general and special powers of attorney and their "
                "electronic notarization",
                count=1_203,
            ),
            OptionCount(
                id="art-12",
                label_ar="المادة 12: المهل",
                label_en="Article 12: Time limits",
                count=874,
            ),
            OptionCount(
                id="art-22",
                label_ar="المادة 22: العقوبات",
                label_en="Article 22: Penalties",
                count=390,
            ),
        ),
    ),
    QuestionSummary(
        id="clarity",
        text_ar="ما مدى وضوح صياغة المشروع؟ (1 غير واضح – 5 واضح جدًا)",
        text_en="How clear is the draft's wording? (1 unclear – 5 very clear)",
        type="scale",
        answered=2_410,
        options=tuple(
            OptionCount(id=str(v), label_ar=str(v), label_en=label, count=c)
            for v, label, c in (
                (1, "1 — unclear", 96),
                (2, "2", 214),
                (3, "3", 602),
                (4, "4", 927),
                (5, "5 — very clear", 571),
            )
        ),
    ),
    QuestionSummary(
        id="other",
        text_ar="هل لديك ملاحظات أخرى؟",
        text_en="Any other remarks?",
        type="text",
        answered=912,
        free_text=(
            FreeText(
                reference="SADA-2026-030021", text="أرجو إضافة مادة عن حماية بيانات الموكلين."
            ),
            FreeText(
                reference="SADA-2026-030105",
                text="Consider a transition period of one year for existing notaries.",
            ),
            FreeText(
                reference="SADA-2026-030333",
                text="نقترح ربط التوثيق بمنصة أبشر (Absher) للتحقق من الهوية.",
            ),
        ),
        free_text_total=912,
    ),
)


def unit_report() -> UnitReport:
    """Return a month of the Voice of the Customer, with an app outage as its largest campaign."""
    rng = random.Random(16)
    start = date(2026, 5, 1)
    counts = _day_counts(rng, 31, 9_240)
    counts[11] += 300  # the outage
    per_day = tuple(
        DayCount(
            day=start + timedelta(days=i),
            count=c,
            by_channel=(
                Count(key="najiz_mobile", count=c // 2),
                Count(key="call_center", count=c // 4),
                Count(key="social_media", count=c - c // 2 - c // 4),
            ),
        )
        for i, c in enumerate(counts)
    )
    total = sum(counts)
    return UnitReport(
        unit="voice_of_customer",
        name_ar="إدارة صوت المستفيد",
        name_en="Voice of the Customer",
        period_from=start,
        period_to=start + timedelta(days=30),
        generated_at=GENERATED,
        total=total,
        per_day=per_day,
        by_kind=(
            Count(key="problem", count=total // 2),
            Count(key="suggestion", count=total // 4),
            Count(key="experience", count=total - total // 2 - total // 4),
        ),
        by_channel=(
            Count(key="najiz_mobile", count=total // 2),
            Count(key="call_center", count=total // 4),
            Count(key="social_media", count=total - total // 2 - total // 4),
        ),
        by_topic=(
            Count(key="najiz-app", count=4_120),
            Count(key="court-appointments", count=2_950),
            Count(key="enforcement", count=2_470),
        ),
        campaigns=(
            CampaignSummary(
                campaign_id="u-1",
                size=300,
                first_reference="SADA-2026-051200",
                representative="تطبيق ناجز لا يفتح منذ الصباح — "
                "The Najiz app does not open since this morning",
            ),
            CampaignSummary(
                campaign_id="u-2",
                size=42,
                first_reference="SADA-2026-051877",
                representative="رسالة التحقق (OTP) لا تصل عند تسجيل الدخول.",
            ),
        ),
    )


def write_docs(out: Path) -> list[Path]:
    """Write the sample pages and their screenshots into `out`; return the files written."""
    from PIL import Image

    from services.archive.report_page import render_consultation, render_unit
    from tests import browser

    written = []
    for name, html in (
        ("report-consultation", render_consultation(consultation_report())),
        ("report-unit", render_unit(unit_report())),
    ):
        page = out / f"{name}.html"
        page.write_text(html, encoding="utf-8")
        png = out / f"{name}.png"
        browser.screenshot(page, png, width=1100, height=browser.page_height(page, width=1100))
        # 256 colours: a third of the bytes, no visible loss on text and flat charts
        with Image.open(png) as shot:
            small = shot.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
        small.save(png, optimize=True)
        written += [page, png]
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    for path in write_docs(target):
        print(path)
