"""The digest e-mail: grouping, campaigns, privacy, the attached list, determinism, size."""

from __future__ import annotations

import csv
import dataclasses
import email
import io
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from services.notifier import mime
from services.notifier.digest_messages import (
    BOM,
    CSV_COLUMNS,
    MAX_BYTES,
    arabic_count,
    attachment_name,
    listed_references,
)
from services.notifier.digests import Digest, DigestItem, digest_message_id
from services.notifier.messages import FSI, PDI, Email
from shared.directory import load_units
from tests import notifier_support as support

ARCHIVE = support.ARCHIVE_URL


def _parsed(composed: Email) -> EmailMessage:
    parsed = email.message_from_bytes(composed.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _digest(items: tuple[DigestItem, ...] | list[DigestItem], **changes: Any) -> Digest:
    first = items[0]
    fields: dict[str, Any] = {
        "inbox": first.inbox,
        "unit": first.unit,
        "mailbox": first.mailbox,
        "window_end": support.DIGEST_END,
        "window_seconds": 300.0,
        "items": tuple(items),
    }
    return Digest(**{**fields, **changes})


def _no_personal_data_units() -> dict[str, Any]:
    return {k: u.model_copy(update={"personal_data": False}) for k, u in load_units().items()}


def _attachment(message: EmailMessage) -> EmailMessage:
    files = list(message.iter_attachments())
    assert len(files) == 1
    part = files[0]
    assert isinstance(part, EmailMessage)
    return part


def _rows(part: EmailMessage) -> list[list[str]]:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    assert data.startswith(BOM.encode("utf-8"))
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


# --- the message --------------------------------------------------------------------------


def test_a_digest_is_a_bilingual_alternative_with_its_headers() -> None:
    digest = support.sample_digest()
    composed = support.digest_composer().compose(digest)
    message = _parsed(composed)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Message-ID"] == digest_message_id(digest, "sada.notifier")
    assert message["Date"] == "Wed, 25 Nov 2026 07:05:00 +0000"
    assert message["To"] == "مكتب التشريعات <LegislationsOffice@moj.gov.sa>"
    assert message["Subject"] == (
        "ملخص صدى — مكتب التشريعات — 9 مشاركات — Sada digest: 9 submissions, 10:00–10:05 (Riyadh)"
    )
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Sada-Unit"] == "legislations_office"
    assert message["X-Sada-Digest"] == digest.digest_id
    assert message["X-Sada-Digest-Items"] == "9"
    assert message["X-Sada-Reference"] is None
    text, html = (part.get_content() for part in message.iter_parts())
    assert (text, html) == (composed.text, composed.html)
    assert '<html lang="ar" dir="rtl">' in html
    assert '<span lang="ar" dir="rtl">ملخص صدى</span>' in html
    assert '<span lang="en" dir="ltr"' in html


def test_the_header_block_says_the_window_the_oldest_leftover_and_why() -> None:
    text = support.digest_composer().compose(support.sample_digest()).text
    assert "عدد المشاركات · Submissions: 9\n" in text
    assert f"{FSI}2026-11-25 10:00–10:05 (Asia/Riyadh, UTC+03:00){PDI}" in text
    assert f"{FSI}2026-11-25 07:00–07:05 UTC{PDI}" in text
    # the questionnaire answer was left over from the window before
    assert f"أقدمها · Oldest: {FSI}2026-11-25 09:58:30 (Asia/Riyadh, UTC+03:00){PDI}" in text
    assert "ضغط على صندوق البريد · Surge: 4\n" in text
    assert "نسخ من حملات · Campaign copies: 5\n" in text


def test_no_oldest_line_when_everything_came_in_the_window() -> None:
    text = support.digest_composer().compose(support.mixed_digest()).text
    assert "Oldest" not in text


@pytest.mark.parametrize(
    ("count", "words"),
    [
        (1, "مشاركة واحدة"),
        (2, "مشاركتان"),
        (3, "3 مشاركات"),
        (10, "10 مشاركات"),
        (11, "11 مشاركة"),
        (105, "105 مشاركات"),
        (1234, "1,234 مشاركة"),
    ],
)
def test_the_arabic_count_agrees_with_the_number(count: int, words: str) -> None:
    assert arabic_count(count) == words


# --- grouping -----------------------------------------------------------------------------


def test_projects_come_by_size_with_no_draft_law_last_campaigns_before_singles() -> None:
    view = support.digest_composer().view(support.sample_digest(), listed=True)
    assert [(g.legislation_ref, g.count) for g in view.groups] == [
        ("MOJ-DRAFT-2026-003", 7),
        ("MOJ-DRAFT-2026-007", 1),
        (None, 1),
    ]
    draft = view.groups[0]
    assert [c.count for c in draft.campaigns] == [5]
    assert [i.received for i in draft.singles] == ["10:02:41", "10:03:12"]
    assert view.groups[2].singles[0].received == "09:58:30"
    text = support.digest_composer().compose(support.sample_digest()).text
    order = [
        text.index(marker)
        for marker in (
            f"Draft law {FSI}MOJ-DRAFT-2026-003{PDI} (7)",
            "Campaign: 5",
            "Single submissions",
            f"Draft law {FSI}MOJ-DRAFT-2026-007{PDI} (1)",
            "No draft law (1)",
        )
    ]
    assert order == sorted(order)


def test_projects_of_equal_size_are_in_reference_order_and_campaigns_by_size() -> None:
    sample = support.sample_digest().items
    copies = [i for i in sample if i.campaign_id is not None]
    other = [dataclasses.replace(i, campaign_id="c-small", key=i.key + "x") for i in copies[:2]]
    items = [
        dataclasses.replace(sample[5], legislation_ref="B-REF"),
        dataclasses.replace(sample[6], legislation_ref="A-REF"),
        *other,
        *copies[2:],
    ]
    view = support.digest_composer().view(_digest(items), listed=True)
    assert [g.legislation_ref for g in view.groups] == ["MOJ-DRAFT-2026-003", "A-REF", "B-REF"]
    assert [(c.campaign_id, c.count) for c in view.groups[0].campaigns] == [
        (copies[0].campaign_id, 3),
        ("c-small", 2),
    ]


def test_a_campaign_shows_its_count_latest_size_first_reference_and_earliest_text() -> None:
    digest = support.sample_digest()
    copies = [i for i in digest.items if i.campaign_id is not None]
    composed = support.digest_composer().compose(digest)
    (campaign,) = support.digest_composer().view(digest, listed=True).groups[0].campaigns
    assert campaign.count == 5
    assert campaign.size == 412  # the largest size its members carried
    assert campaign.first_reference == copies[0].campaign_first_reference
    assert campaign.first_link is None  # the first member is not in this digest
    assert campaign.representative == "نرفض تعديل المادة 12 من مشروع نظام الإثبات"
    assert [m.reference for m in campaign.members] == [i.reference for i in copies]
    line = (
        "حملة · Campaign: 5 في هذا الملخص · in this digest; حجمها · size 412; "
        f"الأولى · first: {FSI}{campaign.first_reference}{PDI}"
    )
    assert line in composed.text
    assert f"«{FSI}نرفض تعديل المادة 12 من مشروع نظام الإثبات{PDI}»" in composed.text
    assert '<div dir="auto"' in composed.html
    for item in copies:
        assert f'<a href="{ARCHIVE}{item.submission_id}"' in composed.html


def test_a_campaign_without_subjects_is_represented_by_its_earliest_text() -> None:
    view = support.digest_composer().view(support.mixed_digest(), listed=True)
    (campaign,) = view.groups[0].campaigns
    assert campaign.representative is not None
    assert campaign.representative.startswith("التطبيق يغلق تلقائياً")
    assert campaign.size == 37


def test_every_item_links_to_the_archive_with_kind_channel_and_late_marker() -> None:
    digest = support.sample_digest()
    composed = support.digest_composer().compose(digest)
    for item in digest.items:
        assert f"{ARCHIVE}{item.submission_id}" in composed.text
        assert f'href="{ARCHIVE}{item.submission_id}"' in composed.html
    late = next(i for i in digest.items if i.late)
    line = next(line for line in composed.text.splitlines() if late.reference in line)
    assert "رأي · Opinion" in line
    assert "منصة استطلاع · Istitlaa public consultation platform" in line
    assert line.endswith("متأخرة · Late")
    assert composed.html.count(">متأخرة</span>") == 1


def test_user_text_is_escaped_and_isolated() -> None:
    items = list(support.sample_digest().items)
    items[5] = dataclasses.replace(items[5], subject="<script>alert(1)</script> \u202eevil")
    composed = support.digest_composer().compose(_digest(items))
    assert "<script>alert(1)" not in composed.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; evil" in composed.html
    assert "\u202e" not in composed.text + composed.html
    assert f"{FSI}<script>alert(1)</script> evil{PDI}" in composed.text


# --- privacy ------------------------------------------------------------------------------


@pytest.mark.parametrize("item_personal", [True, False])
def test_a_unit_without_personal_data_gets_no_subject_or_text(item_personal: bool) -> None:
    digest = support.sample_digest(personal=item_personal)
    composer = support.digest_composer(units=_no_personal_data_units())
    listed = composer.compose(digest)
    counted = composer.compose(digest, list_limit=1)
    shown = listed.text + listed.html + counted.text + counted.html
    for word in ("نرفض تعديل", "البينة", "e-signatures", "الصياغة العامة", "اللائحة التنفيذية"):
        assert word not in shown
    assert "This unit receives no personal data" in listed.text
    rows = _rows(_attachment(_parsed(counted)))
    assert {row[CSV_COLUMNS.index("subject")] for row in rows[1:]} == {""}
    for item in digest.items:  # references and links are still there
        assert item.reference in listed.text


# --- past list_limit: counts and the attached list ----------------------------------------


def test_past_the_list_limit_the_body_counts_and_the_full_list_is_attached() -> None:
    digest = support.sample_digest()
    composed = support.digest_composer().compose(digest, list_limit=8)
    message = _parsed(composed)
    assert message.get_content_type() == "multipart/mixed"
    body, _ = message.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    part = _attachment(message)
    assert part.get_content_type() == "text/csv"
    assert part.get_content_charset() == "utf-8"
    assert part.get_filename() == "sada-digest-legislations_office-20261125T1005.csv"
    assert attachment_name(digest) == part.get_filename()
    # the body: projects, campaigns and counts, no single submission
    assert "Campaign: 5" in composed.text
    assert "نرفض تعديل المادة 12" in composed.text  # the campaign's representative text
    assert "Single submissions: 2" in composed.text
    assert "sada-digest-legislations_office-20261125T1005.csv" in composed.text
    for item in digest.items:
        assert item.submission_id not in composed.text + composed.html
    # the attachment: every submission, in the order received, Arabic intact
    rows = _rows(part)
    assert tuple(rows[0]) == CSV_COLUMNS
    by_received = sorted(digest.items, key=lambda i: i.received_at)
    assert [row[0] for row in rows[1:]] == [i.reference for i in by_received]
    row = dict(zip(CSV_COLUMNS, rows[1 + by_received.index(digest.items[0])], strict=True))
    item = digest.items[0]
    assert row == {
        "reference": item.reference,
        "submission_id": item.submission_id,
        "received_at_utc": "2026-11-25T07:01:05Z",
        "kind": "opinion",
        "channel": "istitlaa",
        "topic": "",
        "legislation_ref": "MOJ-DRAFT-2026-003",
        "campaign_id": item.campaign_id,
        "campaign_first_reference": item.campaign_first_reference,
        "late": "false",
        "subject": "نرفض تعديل المادة 12 من مشروع نظام الإثبات",
        "archive_link": ARCHIVE + item.submission_id,
    }
    late = next(r for r in rows[1:] if r[CSV_COLUMNS.index("late")] == "true")
    assert late[CSV_COLUMNS.index("legislation_ref")] == "MOJ-DRAFT-2026-007"


def test_the_attachment_keeps_its_bytes_crlf_rows_and_bom() -> None:
    digest = support.sample_digest()
    composed = support.digest_composer().compose(digest, list_limit=1)
    data = _attachment(_parsed(composed)).get_payload(decode=True)
    assert isinstance(data, bytes)
    assert data == support.digest_composer().csv(digest)
    assert data.startswith(b"\xef\xbb\xbfreference,submission_id,")
    assert data.count(b"\r\n") == len(digest.items) + 1


def test_a_subject_a_spreadsheet_would_run_as_a_formula_stays_text() -> None:
    items = list(support.sample_digest().items)
    items[5] = dataclasses.replace(items[5], subject='=HYPERLINK("http://evil","x")')
    items[6] = dataclasses.replace(items[6], subject="-2+3")
    data = support.digest_composer().csv(_digest(items))
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    subjects = {row[CSV_COLUMNS.index("subject")] for row in rows[1:]}
    assert '\'=HYPERLINK("http://evil","x")' in subjects
    assert "'-2+3" in subjects


def test_the_counted_body_lists_at_most_list_limit_campaigns() -> None:
    items = list(support.sample_digest().items)
    items = [
        dataclasses.replace(item, campaign_id=f"c{n}", campaign_size=2)
        for n, item in enumerate(items)
    ]
    composed = support.digest_composer().compose(_digest(items), list_limit=3)
    assert composed.text.count("Campaign: 1 ") == 3
    assert "حملات أخرى · More campaigns: 6 (6)" in composed.text


# --- one digest, one message --------------------------------------------------------------


@pytest.mark.parametrize("list_limit", [200, 1])
def test_the_same_digest_is_the_same_bytes_whatever_the_order_of_its_items(
    list_limit: int,
) -> None:
    digest = support.sample_digest()
    again = _digest(tuple(reversed(digest.items)))
    assert again.digest_id == digest.digest_id
    first = support.digest_composer().compose(digest, list_limit=list_limit)
    assert support.digest_composer().compose(digest, list_limit=list_limit).data == first.data
    assert support.digest_composer().compose(again, list_limit=list_limit).data == first.data


def test_different_members_make_a_different_message() -> None:
    digest = support.sample_digest()
    fewer = _digest(digest.items[1:])
    one = support.digest_composer().compose(digest)
    other = support.digest_composer().compose(fewer)
    assert one.message_id != other.message_id
    assert _parsed(one)["X-Sada-Digest"] != _parsed(other)["X-Sada-Digest"]


def test_line_breaks_in_submitter_text_add_no_header() -> None:
    items = list(support.sample_digest().items)
    items[5] = dataclasses.replace(items[5], subject="x\r\nBcc: evil@example.org\r\n\r\nbody")
    unknown = "legislations_office\r\nBcc: evil@example.org"  # not in units.yaml
    for digest in (_digest(items), _digest(items, unit=unknown)):
        for list_limit in (200, 1):
            composed = support.digest_composer().compose(digest, list_limit=list_limit)
            message = _parsed(composed)
            assert message["Bcc"] is None
            head = composed.data.split(b"\r\n\r\n", 1)[0]
            assert b"\r\nBcc" not in head
    listed = support.digest_composer().compose(_digest(items))
    assert f"{FSI}x Bcc: evil@example.org body{PDI}" in listed.text
    assert _parsed(listed)["X-Sada-Unit"] == "legislations_office"
    odd = _parsed(support.digest_composer().compose(_digest(items, unit=unknown)))
    assert odd["X-Sada-Unit"] == "legislations_office Bcc: evil@example.org"


def test_the_mixed_message_refuses_nested_boundaries_and_unsafe_file_names() -> None:
    file = mime.Attachment(filename="a.csv", content_type="text/csv", data=b"x")
    with pytest.raises(ValueError, match="prefix"):
        mime.mixed([], "t", "h", file, "=_sada_x", "=_sada_x_alt")
    with pytest.raises(ValueError, match="ASCII"):
        mime.Attachment(filename='a".csv\r\nX: y', content_type="text/csv", data=b"")


# --- never more than 10 MB ----------------------------------------------------------------


def test_20000_items_with_200_character_arabic_subjects_stay_under_10_mb() -> None:
    base = support.sample_digest().items
    subject = ("نرفض تعديل المادة الثانية عشرة من مشروع نظام الإثبات " * 5)[:200]
    items = [
        dataclasses.replace(
            base[n % len(base)],
            key=f"{n}:legislations_office",
            submission_id=f"{n:08x}-7d1e-5f00-8a00-3b2c1d0e9f8a",
            reference=f"SADA-{n:04X}-{n % 7919:04X}",
            subject=subject,
            campaign_id=f"{n % 3000:08x}-0000-5000-8000-000000000000" if n % 5 else None,
            received_at=base[n % len(base)].received_at + timedelta(milliseconds=n),
        )
        for n in range(20_000)
    ]
    digest = _digest(items)
    composed = support.digest_composer().compose(digest, list_limit=20_000)
    assert len(composed.data) <= MAX_BYTES
    rows = _rows(_attachment(_parsed(composed)))
    assert len(rows) == 20_001  # every submission is in the list
    cut = rows[1][CSV_COLUMNS.index("subject")]
    assert 0 < len(cut) < 200
    assert cut.endswith("…")
    assert "Subjects in the attachment were cut to" in composed.text


# --- the checked-in examples --------------------------------------------------------------


def test_the_example_digests_in_docs_are_current() -> None:
    for path, html in support.doc_digests().items():
        assert path.read_text(encoding="utf-8") == html, (
            f"{path.name} is stale: run `.venv/bin/python -m tests.notifier_support docs`"
        )


@pytest.mark.parametrize("list_limit", [200, 2])
def test_the_references_a_received_digest_lists_are_read_back_exactly(list_limit: int) -> None:
    digest = support.sample_digest()
    received = _parsed(support.digest_composer().compose(digest, list_limit=list_limit))
    assert sorted(listed_references(received)) == sorted(i.reference for i in digest.items)
