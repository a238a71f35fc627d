"""The notifier's e-mail, built by pure functions: headers, parts, RTL, escaping, privacy."""

from __future__ import annotations

import email
import re
import unicodedata
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.messages import (
    FSI,
    LINE_BREAKERS,
    PDI,
    SNIPPET_MAX,
    SUBJECT_MAX,
    Email,
    arabic_members,
    message_id,
    one_line,
    sanitise_subject,
    similarity_percent,
)
from shared.directory import load_units
from shared.events import RoutingDecision
from shared.models import ConsultationMark
from tests import notifier_support as support

REF = "SADA-7K3M-Q9XD"


def _with(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**raw, **changes}


def _reparsed(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _no_personal_data_units() -> dict[str, Any]:
    return {k: u.model_copy(update={"personal_data": False}) for k, u in load_units().items()}


# --- subject ------------------------------------------------------------------------------


def test_subject_starts_with_the_reference_and_joins_the_parts_with_dashes() -> None:
    assert sanitise_subject(REF, "رأي", "منصة استطلاع", "نص") == f"{REF} — رأي — منصة استطلاع — نص"


def test_subject_turns_crlf_and_controls_into_single_spaces() -> None:
    subject = sanitise_subject(REF, "Hello\r\nBcc: evil@example.org\x00\x1b[31m\u2028x")
    assert subject == f"{REF} — Hello Bcc: evil@example.org [31m x"


def test_subject_drops_bidi_overrides_and_isolates() -> None:
    subject = sanitise_subject(REF, "\u202eabc\u202c \u2067def\u2069 \u200fghi")
    assert subject == f"{REF} — abc def ghi"


def test_subject_is_cut_to_200_characters_with_an_ellipsis() -> None:
    subject = sanitise_subject(REF, "كلمة " * 100)
    assert len(subject) == SUBJECT_MAX
    assert subject.startswith(REF)
    assert subject.endswith("…")


def test_empty_parts_are_left_out() -> None:
    assert sanitise_subject(REF, None, "", " \r\n ", "x") == f"{REF} — x"


@given(st.text(max_size=600), st.text(max_size=50))
def test_any_subject_is_one_short_clean_line_starting_with_the_reference(
    text: str, kind: str
) -> None:
    subject = sanitise_subject(REF, kind, text)
    assert subject.startswith(REF)
    assert len(subject) <= SUBJECT_MAX
    assert not any(unicodedata.category(c) in {"Cc", "Zl", "Zp"} for c in subject)
    assert not re.search("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]", subject)
    assert subject == subject.strip()
    assert "  " not in subject


def test_one_line_keeps_arabic_and_emoji() -> None:
    assert one_line("خدمة التوثيق\nوفرت 👏") == "خدمة التوثيق وفرت 👏"


def _one_line_by_category(text: str) -> str:
    """`one_line` as first written, character by character: the reference for the fast one."""
    bidi = set("\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    kept = [
        " " if unicodedata.category(c) in {"Cc", "Zl", "Zp"} else c for c in text if c not in bidi
    ]
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def test_the_characters_one_line_turns_into_spaces_are_exactly_controls_and_separators() -> None:
    every = (chr(c) for c in range(0x110000))
    assert {c for c in every if unicodedata.category(c) in {"Cc", "Zl", "Zp"}} == LINE_BREAKERS


@given(st.text(max_size=300))
def test_one_line_is_the_character_by_character_definition(text: str) -> None:
    assert one_line(text) == _one_line_by_category(text)


@given(st.text(max_size=400), st.integers(min_value=0, max_value=400))
def test_one_line_of_a_prefix_is_a_prefix_of_one_line(text: str, size: int) -> None:
    assert one_line(text).startswith(one_line(text[:size]))


def test_the_subject_snippet_of_a_long_body_reads_only_the_start_but_is_the_same() -> None:
    body = " \u202e\r\n " * 200 + "word\t\u2028 " * 2000 + "end"  # 15,003 characters
    expected = one_line(body)[: SNIPPET_MAX - 1].rstrip() + "…"
    raw = _with(support.ENGLISH_SAMPLE, subject=None, body=body)
    subject = support.composer().compose(support.grouped(raw)).subject
    assert subject == f"{support.grouped(raw).reference} — Idea — E-mail — {expected}"


# --- identity and headers -----------------------------------------------------------------


def test_message_id_is_deterministic_per_submission_and_unit() -> None:
    sid = "4f0c5f39-5c1c-5a55-8a55-1f0c5f395c1c"
    first = message_id(sid, "voice_of_customer", "sada.notifier")
    assert first == message_id(sid, "voice_of_customer", "sada.notifier")
    assert first != message_id(sid, "legislations_office", "sada.notifier")
    assert re.fullmatch(r"<[0-9a-f-]{36}@sada\.notifier>", first)


def test_email_goes_to_the_decisions_mailbox_with_the_sada_headers() -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    composed = support.composer().compose(event)
    message = _reparsed(composed.message)
    assert composed.recipient == "LegislationsOffice@moj.gov.sa"
    assert message["To"].addresses[0].addr_spec == "LegislationsOffice@moj.gov.sa"
    assert message["Message-ID"] == composed.message_id
    assert message["X-Sada-Reference"] == event.reference
    assert message["X-Sada-Rule"] == "legislation-reference"
    assert message["Auto-Submitted"] == "auto-generated"
    assert str(message["Subject"]).startswith(event.reference)
    assert str(message["Subject"]) == composed.subject  # the Arabic survives RFC 2047


def test_email_is_multipart_alternative_text_then_html_in_utf8() -> None:
    message = _reparsed(support.composer().compose(support.grouped(support.ARABIC_SAMPLE)).message)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert "أرى أن تمديد مدة تقديم البينة" in parts[0].get_content()
    assert "أرى أن تمديد مدة تقديم البينة" in parts[1].get_content()


def test_date_is_when_the_submission_was_grouped_so_a_repeat_is_identical() -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    first = support.composer().compose(event)
    again = support.composer().compose(event)
    assert first.message["Date"] == again.message["Date"]
    assert first.html == again.html
    assert first.text == again.text


def test_a_routing_decision_for_an_unknown_unit_carries_no_personal_data() -> None:
    sub = support.submission(support.ARABIC_SAMPLE)
    decision = RoutingDecision(
        unit="new_unit",
        mailbox="new@moj.gov.sa",
        rule_id="r",
        rules_version="0" * 64,
        reason="test",
    )
    composed = support.composer().compose(support.grouped(sub, decision))
    assert "a.harbi@example.sa" not in composed.html + composed.text
    assert "البينة" not in composed.html + composed.text
    assert composed.recipient == "new@moj.gov.sa"


# --- direction and language ---------------------------------------------------------------


def test_arabic_submission_renders_right_to_left_with_arabic_first() -> None:
    html = support.composer().compose(support.grouped(support.ARABIC_SAMPLE)).html
    assert '<html lang="ar" dir="rtl">' in html
    assert 'align="right"' in html
    assert 'align="left"' not in html
    label = re.search(r'<span lang="ar" dir="rtl">المرجع</span>.*?<span lang="en" dir="ltr"', html)
    assert label is not None


def test_english_submission_renders_left_to_right_and_still_bilingual() -> None:
    html = support.composer().compose(support.grouped(support.ENGLISH_SAMPLE)).html
    assert '<html lang="en" dir="ltr">' in html
    assert 'align="left"' in html
    assert '<span lang="en" dir="ltr">Reference</span>' in html
    assert '<span lang="ar" dir="rtl"' in html
    assert "المرجع" in html


def test_inline_user_values_are_isolated_in_bdi_and_paragraphs_detect_their_direction() -> None:
    html = support.composer().compose(support.grouped(support.ARABIC_SAMPLE)).html
    assert '<bdi dir="ltr">SADA-' in html
    assert "<bdi>عبدالله الحربي (Abdullah Alharbi)</bdi>" in html
    assert (
        'mailto:a.harbi%40example.sa" style="color:#0b6e4f;">a.harbi@example.sa</a></bdi>' in html
    )
    assert re.search(r'<div dir="auto" lang="ar"[^>]*>أرى أن', html)
    assert '<p dir="auto" lang="ar" style="margin:0;font-weight:bold;">مشروع نظام' in html


def test_text_part_isolates_user_values_line_by_line() -> None:
    text = support.composer().compose(support.grouped(support.ENGLISH_SAMPLE)).text
    assert "\u2068Courts could send calendar invites" in text
    assert "map link.\u2069\n\u2068For example" in text
    assert "Reference · المرجع: \u2068SADA-" in text


def test_received_time_is_shown_in_riyadh_and_utc() -> None:
    raw = _with(support.ARABIC_SAMPLE, submitted_at="2026-11-25T21:30:00+00:00")
    composed = support.composer().compose(support.grouped(raw))
    # received two seconds after submission: 21:30:02 UTC is 00:30:02 next day in Riyadh
    assert "2026-11-26 00:30:02 (Asia/Riyadh, UTC+03:00)" in composed.html
    assert "2026-11-25 21:30:02 UTC" in composed.html
    assert "2026-11-25 21:30:02 UTC" in composed.text


# --- escaping -----------------------------------------------------------------------------


def test_html_in_user_text_is_escaped_and_never_markup() -> None:
    raw = _with(
        support.ENGLISH_SAMPLE,
        subject='<img src=x onerror="alert(1)">',
        body="<script>alert('x')</script> & <b>bold</b>",
        submitter={"name": '"><script>alert(2)</script>'},
    )
    composed = support.composer().compose(support.grouped(raw))
    assert "<script" not in composed.html
    assert "<img" not in composed.html
    assert "<b>bold" not in composed.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in (
        composed.html
    )
    assert "&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in composed.html
    assert "<script>alert('x')</script>" in composed.text  # plain text is not HTML


def test_only_http_attachment_urls_become_links() -> None:
    attachments = [
        {"filename": "a.pdf", "content_type": "application/pdf", "size_bytes": 10, "url": u}
        for u in ("https://x.example/a", "javascript:alert(1)")
    ]
    html = (
        support.composer()
        .compose(support.grouped(_with(support.ENGLISH_SAMPLE, attachments=attachments)))
        .html
    )
    assert 'href="https://x.example/a"' in html
    assert 'href="javascript' not in html
    assert "javascript:alert(1)" in html  # shown as inert text


def test_answers_and_attachment_metadata_are_listed() -> None:
    raw = {
        "channel": "legislation_questionnaire",
        "channel_ref": "LQ-1",
        "kind": "consultation_response",
        "legislation_ref": "MOJ-DRAFT-2026-007",
        "answers": [
            {"question_id": "q1", "question": "هل توافق؟", "answer": "أوافق"},
            {"question_id": "q2", "answer": "لا"},
        ],
        "attachments": [
            {
                "filename": "x.pdf",
                "content_type": "application/pdf",
                "size_bytes": 1_572_864,
                "url": "https://x.example/x.pdf",
            }
        ],
        "submitted_at": "2026-11-25T10:02:00+03:00",
    }
    composed = support.composer().compose(support.grouped(raw))
    for part in (composed.html, composed.text):
        assert "هل توافق؟" in part
        assert "أوافق" in part
        assert "q2" in part
        assert "x.pdf" in part
        assert "1.5 MB" in part
        assert "مجهول الهوية" in part  # no submitter: anonymous


# --- personal data ------------------------------------------------------------------------


def test_a_unit_without_personal_data_gets_the_reference_and_an_archive_link_only() -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    composed = support.composer(units=_no_personal_data_units()).compose(event)
    everything = composed.html + composed.text + composed.subject
    for personal in ("عبدالله", "a.harbi@example.sa", "البينة", "مشروع نظام الإثبات", ".pdf"):
        assert personal not in everything
    link = f"{support.ARCHIVE_URL}{event.submission_id}"
    assert f'href="{link}"' in composed.html
    assert link in composed.text
    assert composed.subject == f"{event.reference} — رأي — منصة استطلاع"
    assert "MOJ-DRAFT-2026-003" in composed.html  # metadata stays


def test_a_unit_with_personal_data_gets_the_submitters_contact() -> None:
    composed = support.composer().compose(support.grouped(support.ENGLISH_SAMPLE))
    for contact in ("Noura Al-Qahtani", "noura.q@example.com", "+966500000002"):
        assert contact in composed.html
        assert contact in composed.text


def test_subject_falls_back_to_the_start_of_the_body() -> None:
    raw = _with(support.ENGLISH_SAMPLE, subject=None, body="First line\nsecond line " * 20)
    subject = support.composer().compose(support.grouped(raw)).subject
    assert subject.startswith(f"{support.grouped(raw).reference} — Idea — E-mail — First line")
    assert subject.endswith("…")


# --- campaign membership ------------------------------------------------------------------

FIRST = {**support.ARABIC_SAMPLE, "channel_ref": "IST-2026-88001"}
CLOSEST = {**support.ARABIC_SAMPLE, "channel_ref": "IST-2026-88007"}


def _in_campaign(raw: dict[str, Any], **changes: Any) -> Email:
    campaign = support.campaign_of(FIRST, similar_to=CLOSEST, **changes)
    return support.composer().compose(support.grouped(raw, campaign=campaign))


def test_a_campaign_member_says_so_in_both_languages_at_the_top_of_the_text_part() -> None:
    first, closest = support.submission(FIRST).reference, support.submission(CLOSEST).reference
    text = _in_campaign(support.ENGLISH_SAMPLE, size=412, similarity=0.8731).text
    english = (
        f"One of 412 near-identical submissions (campaign); first: {FSI}{first}{PDI}; "
        f"closest: {FSI}{closest}{PDI}, similarity 87%"
    )
    arabic = (
        f"واحدة من 412 مشاركة متطابقة أو شبه متطابقة (حملة)؛ الأولى: {FSI}{first}{PDI}؛ "
        f"الأقرب: {FSI}{closest}{PDI}، بنسبة تشابه 87٪"
    )
    lines = text.splitlines()
    assert lines[3:5] == [english, arabic]  # after the title, before the details
    assert lines[6].startswith("Reference")


def test_an_arabic_campaign_member_reads_arabic_first_in_the_text_part() -> None:
    lines = _in_campaign(support.ARABIC_SAMPLE).text.splitlines()
    assert lines[3].startswith("واحدة من 412 مشاركة")
    assert lines[4].startswith("One of 412 near-identical submissions (campaign)")


def test_a_campaign_member_says_so_in_both_languages_at_the_top_of_the_html_part() -> None:
    first, closest = support.submission(FIRST).reference, support.submission(CLOSEST).reference
    html = _in_campaign(support.ARABIC_SAMPLE, size=412, similarity=0.8731).html
    arabic = re.search(r'<p lang="ar" dir="rtl" style="[^"]*text-align:right;">(.*?)</p>', html)
    english = re.search(r'<p lang="en" dir="ltr" style="[^"]*text-align:left;">(.*?)</p>', html)
    assert arabic is not None
    assert english is not None
    assert arabic.group(1) == (
        f'واحدة من 412 مشاركة متطابقة أو شبه متطابقة (حملة)؛ الأولى: <bdi dir="ltr">{first}</bdi>؛ '
        f'الأقرب: <bdi dir="ltr">{closest}</bdi>، بنسبة تشابه 87٪'
    )
    assert english.group(1) == (
        f'One of 412 near-identical submissions (campaign); first: <bdi dir="ltr">{first}</bdi>; '
        f'closest: <bdi dir="ltr">{closest}</bdi>, similarity 87%'
    )
    # Near the top: right under the reference banner, the submission's language first.
    assert html.index('<bdi dir="ltr">SADA-') < arabic.start() < english.start()
    assert english.end() < html.index(">البيانات</span>")


def test_a_campaign_member_carries_the_campaign_id_header() -> None:
    composed = _in_campaign(support.ENGLISH_SAMPLE)
    campaign = support.campaign_of(FIRST, similar_to=CLOSEST)
    assert _reparsed(composed.message)["X-Sada-Campaign"] == campaign.campaign_id


def test_a_submission_in_no_campaign_has_no_campaign_line_nor_header() -> None:
    for raw in (support.ARABIC_SAMPLE, support.ENGLISH_SAMPLE):
        composed = support.composer().compose(support.grouped(raw))
        assert "X-Sada-Campaign" not in _reparsed(composed.message)
        assert "near-identical" not in composed.text + composed.html
        assert "متطابقة" not in composed.text + composed.html


def test_the_campaign_line_is_the_same_for_a_unit_without_personal_data() -> None:
    campaign = support.campaign_of(FIRST)
    event = support.grouped(support.ARABIC_SAMPLE, campaign=campaign)
    composed = support.composer(units=_no_personal_data_units()).compose(event)
    assert "واحدة من 412 مشاركة" in composed.text
    assert "البينة" not in composed.text + composed.html


@pytest.mark.parametrize(
    ("size", "members"),
    [
        (2, "مشاركتين متطابقتين أو شبه متطابقتين"),
        (3, "3 مشاركات متطابقة أو شبه متطابقة"),
        (10, "10 مشاركات متطابقة أو شبه متطابقة"),
        (11, "11 مشاركة متطابقة أو شبه متطابقة"),
        (100, "100 مشاركة متطابقة أو شبه متطابقة"),
        (105, "105 مشاركات متطابقة أو شبه متطابقة"),
        (412, "412 مشاركة متطابقة أو شبه متطابقة"),
    ],
)
def test_the_arabic_count_agrees_with_the_number(size: int, members: str) -> None:
    assert arabic_members(size) == members


@pytest.mark.parametrize(
    ("similarity", "percent"), [(1.0, 100), (0.9962, 99), (0.8731, 87), (0.4, 40), (0.4049, 40)]
)
def test_the_similarity_reads_as_a_whole_percentage_and_100_only_when_identical(
    similarity: float, percent: int
) -> None:
    assert similarity_percent(similarity) == percent


# --- the consultation: late, unregistered --------------------------------------------------

CLOSED = datetime(2026, 11, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=3)))
CLOSED_SHOWN = "2026-11-30 23:59:59 (Asia/Riyadh, UTC+03:00)"
LATE_AR = f"متأخرة: أُرسلت بعد انتهاء مدة استطلاع المرئيات في {FSI}{CLOSED_SHOWN}{PDI}"
LATE_EN = f"Late: sent after the consultation closed on {FSI}{CLOSED_SHOWN}{PDI}"
UNREGISTERED_AR = "مشروع غير مسجّل: مرجع التشريع ليس في سجل المشاريع المطروحة لاستطلاع المرئيات"
UNREGISTERED_EN = (
    "Unregistered project: the legislation reference is not in the registry of consultations"
)


def _marked(raw: dict[str, Any], mark: ConsultationMark | None, **composer: Any) -> Email:
    submission = support.submission(raw).model_copy(update={"consultation": mark})
    return support.composer(**composer).compose(support.grouped(submission))


def _after_the_routing_reason(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  - "))
    return lines[start + 1 : start + 3]


def test_a_late_arabic_submission_says_when_the_consultation_closed_arabic_first() -> None:
    late = ConsultationMark(registered=True, late=True, closes_at=CLOSED)
    text = _marked(support.ARABIC_SAMPLE, late).text
    assert _after_the_routing_reason(text) == [
        f"استطلاع المرئيات · Consultation: {LATE_AR}",
        f"    {LATE_EN}",
    ]


def test_a_late_english_submission_reads_english_first() -> None:
    late = ConsultationMark(registered=True, late=True, closes_at=CLOSED)
    text = _marked(support.ENGLISH_SAMPLE, late).text
    assert _after_the_routing_reason(text) == [
        f"Consultation · استطلاع المرئيات: {LATE_EN}",
        f"    {LATE_AR}",
    ]


def test_an_unregistered_project_says_so_in_both_languages() -> None:
    text = _marked(support.ARABIC_SAMPLE, ConsultationMark(registered=False)).text
    assert _after_the_routing_reason(text) == [
        f"استطلاع المرئيات · Consultation: {UNREGISTERED_AR}",
        f"    {UNREGISTERED_EN}",
    ]


def test_the_html_part_shows_the_late_line_in_the_routing_section_with_the_date_isolated() -> None:
    late = ConsultationMark(registered=True, late=True, closes_at=CLOSED)
    html = _marked(support.ARABIC_SAMPLE, late).html
    shown = f'<bdi dir="ltr">{CLOSED_SHOWN}</bdi>'
    arabic = re.search(
        r'<div lang="ar" dir="rtl" style="[^"]*color:#8a3b00;[^"]*">(.*?)</div>', html
    )
    english = re.search(r'<div lang="en" dir="ltr" style="[^"]*">(Late: .*?)</div>', html)
    assert arabic is not None
    assert english is not None
    assert arabic.group(1) == f"متأخرة: أُرسلت بعد انتهاء مدة استطلاع المرئيات في {shown}"
    assert english.group(1) == f"Late: sent after the consultation closed on {shown}"
    why, subject = html.index(">سبب التوجيه</span>"), html.index(">العنوان</span>")
    assert why < arabic.start() < english.start() < subject


def test_the_html_part_shows_an_unregistered_project() -> None:
    html = _marked(support.ENGLISH_SAMPLE, ConsultationMark(registered=False)).html
    style = "margin:0;font-weight:bold;color:#8a3b00;text-align:left;"
    assert f'<div lang="en" dir="ltr" style="{style}">{UNREGISTERED_EN}</div>' in html
    assert UNREGISTERED_AR in html


@pytest.mark.parametrize("mark", [None, ConsultationMark(registered=True)], ids=["none", "in-time"])
def test_a_submission_in_time_or_without_a_project_has_no_consultation_line(
    mark: ConsultationMark | None,
) -> None:
    composed = _marked(support.ARABIC_SAMPLE, mark)
    assert "Consultation" not in composed.text + composed.html


def test_the_late_line_is_shown_to_a_unit_without_personal_data() -> None:
    late = ConsultationMark(registered=True, late=True, closes_at=CLOSED)
    composed = _marked(support.ARABIC_SAMPLE, late, units=_no_personal_data_units())
    assert LATE_AR in composed.text
    assert "البينة" not in composed.text + composed.html


# --- the checked-in examples --------------------------------------------------------------


def test_the_example_emails_in_docs_are_current() -> None:
    for path, html in support.doc_emails().items():
        assert path.read_text(encoding="utf-8") == html, (
            f"{path.name} is stale: run `.venv/bin/python -m tests.notifier_support docs`"
        )
