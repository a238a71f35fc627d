"""The e-mail as sent: its bytes parse (modern policy) to the intended headers and parts."""

from __future__ import annotations

import base64
import email
import re
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier import mime
from services.notifier.messages import Email
from shared.events import RoutingDecision
from tests import notifier_support as support

HEADERS = [
    "Message-ID",
    "Date",
    "From",
    "To",
    "Subject",
    "Auto-Submitted",
    "X-Sada-Reference",
    "X-Sada-Rule",
    "X-Sada-Unit",
    "X-Sada-Submission-Id",
    "MIME-Version",
    "Content-Type",
]
# Any text but lone surrogates (which no UTF-8 e-mail can carry, before or after this change).
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def lf(text: str) -> str:
    """The text as the e-mail carries it: CRLF or CR line breaks become LF, and a final LF."""
    text = re.sub("\r\n?", "\n", text)
    return text if text.endswith("\n") else text + "\n"


def contents(message: EmailMessage) -> list[tuple[str, str | None, str]]:
    return [
        (p.get_content_type(), p.get_content_charset(), lf(p.get_content()))
        for p in message.iter_parts()
    ]


def compose(raw: dict[str, Any], **changes: Any) -> Email:
    return support.composer().compose(support.grouped({**raw, **changes}))


# --- the whole message --------------------------------------------------------------------


def test_an_arabic_submission_to_an_arabic_unit_parses_to_the_expected_headers() -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    composed = support.composer().compose(event)
    message = parsed(composed.data)
    assert list(message.keys()) == HEADERS
    assert message["Message-ID"] == composed.message_id
    assert re.fullmatch(r"<[0-9a-f-]{36}@sada\.notifier>", message["Message-ID"])
    assert message["Date"] == format_datetime(event.occurred_at)
    assert message["Date"].datetime == event.occurred_at.replace(microsecond=0)
    assert str(message["From"]) == "Sada <sada-notifier@moj.gov.sa>"
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("مكتب التشريعات", "LegislationsOffice@moj.gov.sa")
    assert str(message["Subject"]) == (
        f"{event.reference} — رأي — منصة استطلاع — مشروع نظام الإثبات — المادة 12"
    )
    assert str(message["Subject"]) == composed.subject
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Sada-Reference"] == event.reference
    assert message["X-Sada-Rule"] == "legislation-reference"
    assert message["X-Sada-Unit"] == "legislations_office"
    assert message["X-Sada-Submission-Id"] == event.submission_id
    assert not message.defects
    assert all(not message[name].defects for name in HEADERS)
    # On the wire: the Arabic travels as RFC 2047 UTF-8, the reference stays readable.
    head = header_block(composed.data)
    assert head.isascii()
    assert re.search(rb"^Subject: SADA-[0-9A-Z]{4}-[0-9A-Z]{4}(\r\n)? =\?utf-8\?b\?", head, re.M)
    assert b"To: =?utf-8?b?" in head


def test_the_text_and_html_parts_decode_to_exactly_what_was_rendered() -> None:
    for raw in (support.ARABIC_SAMPLE, support.ENGLISH_SAMPLE):
        composed = compose(raw)
        message = parsed(composed.data)
        assert message.get_content_type() == "multipart/alternative"
        assert contents(message) == [
            ("text/plain", "utf-8", composed.text),
            ("text/html", "utf-8", composed.html),
        ]
        assert all(not part.defects for part in message.iter_parts())


def test_the_envelope_is_the_senders_address_and_the_decisions_mailbox() -> None:
    composed = compose(support.ENGLISH_SAMPLE)
    assert (composed.sender, composed.recipient) == ("sada-notifier@moj.gov.sa", "voc@moj.gov.sa")
    assert not composed.smtputf8
    assert str(parsed(composed.data)["To"]) == "إدارة صوت المستفيد <voc@moj.gov.sa>"


def test_every_header_line_is_ascii_crlf_and_at_most_78_characters() -> None:
    for raw in (support.ARABIC_SAMPLE, support.ENGLISH_SAMPLE):
        data = compose(raw).data
        assert b"\n" not in data.replace(b"\r\n", b"")  # no bare line feed anywhere
        lines = header_block(data).split(b"\r\n")
        assert all(len(line) <= mime.LINE_MAX and line.isascii() for line in lines)


def test_a_repeat_is_the_same_bytes() -> None:
    event = support.grouped(support.ARABIC_SAMPLE)
    assert support.composer().compose(event).data == support.composer().compose(event).data


# --- header injection ---------------------------------------------------------------------


def test_a_subject_with_crlf_cannot_create_a_header() -> None:
    composed = compose(
        support.ENGLISH_SAMPLE,
        subject="Hello\r\nBcc: attacker@example.org\r\nX-Evil: 1\rX-Evil: 2\nX-Evil: 3",
    )
    message = parsed(composed.data)
    assert list(message.keys()) == HEADERS
    assert message["Bcc"] is None
    assert message["X-Evil"] is None
    assert str(message["Subject"]) == composed.subject
    assert composed.subject.endswith(
        "Hello Bcc: attacker@example.org X-Evil: 1 X-Evil: 2 X-Evil: 3"
    )
    # Every line of the header block starts a known header or continues one.
    for line in header_block(composed.data).split(b"\r\n"):
        assert line.startswith(b" ") or line.split(b":", 1)[0].decode() in HEADERS


def test_routing_values_with_crlf_cannot_create_a_header() -> None:
    decision = RoutingDecision(
        unit="voice_of_customer",
        mailbox="voc@moj.gov.sa",
        rule_id="rule\r\nX-Evil: 1",
        rules_version="0" * 64,
        reason="test",
    )
    event = support.grouped(support.submission(support.ARABIC_SAMPLE), decision)
    message = parsed(support.composer().compose(event).data)
    assert list(message.keys()) == HEADERS
    assert message["X-Sada-Rule"] == "rule X-Evil: 1"
    assert message["X-Evil"] is None


def test_an_unknown_unit_with_crlf_is_refused_as_email_headerregistry_did() -> None:
    decision = RoutingDecision(
        unit="unit\r\nBcc: x@example.org",  # unknown: its id becomes the display name
        mailbox="new@moj.gov.sa",
        rule_id="r",
        rules_version="0" * 64,
        reason="test",
    )
    event = support.grouped(support.submission(support.ARABIC_SAMPLE), decision)
    with pytest.raises(ValueError, match="CR or LF"):
        support.composer().compose(event)


@pytest.mark.parametrize(
    "mailbox", ["a@b.c\r\nBcc: x@y.z", "two words@b.c", "a@b.c>, x@y.z", "no-at-sign", ""]
)
def test_an_unusable_mailbox_is_refused(mailbox: str) -> None:
    decision = RoutingDecision(
        unit="voice_of_customer", mailbox=mailbox, rule_id="r", rules_version="0" * 64, reason="t"
    )
    with pytest.raises(ValueError, match="not a usable e-mail address"):
        support.composer().compose(
            support.grouped(support.submission(support.ENGLISH_SAMPLE), decision)
        )


@given(ANY_TEXT)
def test_any_header_value_stays_one_header_and_reads_back_exactly(value: str) -> None:
    line = mime.header("X-Test", mime.unstructured_tokens(value))
    assert line.isascii()
    assert line.endswith("\r\n")
    assert re.fullmatch(r"X-Test:[^\r\n]*(\r\n [^\r\n]*)*\r\n", line)
    message = parsed(line.encode() + b"\r\n")
    assert list(message.keys()) == ["X-Test"]
    assert str(message["X-Test"]) == value
    assert not message["X-Test"].defects


@given(st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=120))
def test_any_display_name_reads_back_exactly(name: str) -> None:
    line = mime.header("To", mime.mailbox_tokens(name, "unit@moj.gov.sa"))
    message = parsed(line.encode() + b"\r\n")
    assert list(message.keys()) == ["To"]
    (address,) = message["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, "unit@moj.gov.sa")


@given(ANY_TEXT)
def test_encoded_words_are_short_and_each_holds_whole_characters(text: str) -> None:
    words = mime.encoded_words(text)
    assert all(len(word) <= 75 for word in words)
    decoded = [base64.b64decode(word[len("=?utf-8?b?") : -2]).decode("utf-8") for word in words]
    assert "".join(decoded) == text


def test_readable_words_stay_plain_and_lookalike_encoded_words_are_encoded() -> None:
    assert mime.unstructured_tokens("SADA-1 — x") == ["SADA-1", "=?utf-8?b?4oCU?=", "x"]
    tokens = mime.unstructured_tokens("=?utf-8?q?hi?=")
    assert tokens != ["=?utf-8?q?hi?="]  # shown as typed, not decoded by the reader
    assert str(parsed(mime.header("Subject", tokens).encode() + b"\r\n")["Subject"]) == (
        "=?utf-8?q?hi?="
    )


# --- parts and transports -----------------------------------------------------------------


def test_short_ascii_lines_go_as_7bit_and_anything_else_as_base64() -> None:
    data = mime.alternative([], "plain ascii\nlines\n", "<p>ذ</p>\n", "=_b")
    assert b'text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit' in data
    assert b'text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64' in data
    long_line = mime.alternative([], "x" * 79, "ok", "=_b")
    assert b"Content-Transfer-Encoding: 7bit" in long_line  # only the html part
    assert long_line.count(b"Content-Transfer-Encoding: base64") == 1


def test_a_7bit_part_containing_the_boundary_goes_as_base64() -> None:
    boundary = "=_sada_0123"
    text = f"before\n--{boundary}\nContent-Type: text/html\n\n<script>\n--{boundary}--\n"
    message = parsed(mime.alternative([], text, "ok", boundary))
    assert contents(message) == [("text/plain", "utf-8", text), ("text/html", "utf-8", "ok\n")]


def test_line_breaks_are_normalised_as_email_message_set_content_does() -> None:
    message = parsed(mime.alternative([], "ذ\r\nb\rc\nd", "é\r\n", "=_b"))
    assert [p.get_content() for p in message.iter_parts()] == ["ذ\nb\nc\nd\n", "é\n"]


def test_a_non_ascii_mailbox_needs_smtputf8_and_reads_back() -> None:
    decision = RoutingDecision(
        unit="voice_of_customer",
        mailbox="صوت@moj.gov.sa",
        rule_id="r",
        rules_version="0" * 64,
        reason="t",
    )
    composed = support.composer().compose(
        support.grouped(support.submission(support.ENGLISH_SAMPLE), decision)
    )
    assert composed.smtputf8
    # Raw UTF-8 in the header (RFC 6532), which Python's bytes parser leaves undecoded.
    message = email.message_from_string(composed.data.decode("utf-8"), policy=policy.default)
    assert message["To"].addresses[0].addr_spec == "صوت@moj.gov.sa"
