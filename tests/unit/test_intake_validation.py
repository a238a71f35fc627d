"""Intake's validation: every reason code, every normalisation rule, Arabic and English."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.intake import validation
from services.intake.validation import (
    CODES,
    MAX_DEPTH,
    MAX_REASONS,
    Accepted,
    Rejected,
    detect_language,
    normalise_text,
    validate,
)
from shared import ids
from shared.directory import load_channels
from shared.models import MAX_MESSAGE_BYTES

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
CHANNELS = frozenset(load_channels())
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "submissions.jsonl"
ABSENT = object()

ARABIC = {
    "channel": "istitlaa",
    "channel_ref": "IST-2026-1",
    "kind": "opinion",
    "subject": "مشروع نظام الإثبات",
    "body": "أرى أن تمديد المدة يحقق العدالة.",
    "submitted_at": "2026-11-25T10:00:00+03:00",
}
ENGLISH = {
    "channel": "email",
    "channel_ref": "<CAF1@mail.example.com>",
    "kind": "idea",
    "subject": "Appointment reminders",
    "body": "Courts could send calendar invites for hearings.",
    "submitted_at": "2026-11-25T07:00:00Z",
}


def doc(base: dict[str, Any] = ARABIC, /, **changes: Any) -> bytes:
    data = {**base, **changes}
    return orjson.dumps({key: value for key, value in data.items() if value is not ABSENT})


def attachment(**changes: Any) -> dict[str, Any]:
    base = {
        "filename": "a.pdf",
        "content_type": "application/pdf",
        "size_bytes": 1,
        "url": "https://x.example/a.pdf",
    }
    return {**base, **changes}


def run(raw: bytes, now: datetime = NOW) -> Accepted | Rejected:
    return validate(raw, channels=CHANNELS, now=now)


def accepted(raw: bytes) -> Accepted:
    result = run(raw)
    assert isinstance(result, Accepted), getattr(result, "reasons", None)
    return result


def rejected(raw: bytes) -> Rejected:
    result = run(raw)
    assert isinstance(result, Rejected), "expected a rejection"
    return result


def reasons(raw: bytes) -> set[tuple[str, str | None]]:
    return {(reason.code, reason.field) for reason in rejected(raw).reasons}


# --- the samples and both languages ---------------------------------------------------------


def test_every_sample_submission_is_accepted() -> None:
    lines = SAMPLES.read_bytes().splitlines()
    assert len(lines) == 20
    for line in lines:
        accepted(line)


@pytest.mark.parametrize(("base", "language"), [(ARABIC, "ar"), (ENGLISH, "en")])
def test_a_valid_submission_is_accepted_with_ids_and_detected_language(
    base: dict[str, Any], language: str
) -> None:
    result = accepted(doc(base))
    submission = result.submission
    assert submission.language == language
    assert submission.submission_id == ids.submission_id(
        base["channel"], base["channel_ref"], "ignored"
    )
    assert submission.reference == ids.reference(submission.submission_id)
    assert submission.received_at == NOW
    assert submission.body == base["body"]
    assert len(result.digest) == 64


# --- message-level reasons ------------------------------------------------------------------


def test_invalid_utf8_is_rejected_as_invalid_utf8() -> None:
    assert reasons(b'{"channel": "\xff\xfe", "body": "x"}') == {("invalid_utf8", None)}


@pytest.mark.parametrize("raw", [b"", b"{", b'{"channel": }', b"NaN", b"\xef\xbb\xbf{}", b"1e999"])
def test_broken_json_is_rejected_as_invalid_json(raw: bytes) -> None:
    assert reasons(raw) == {("invalid_json", None)}


@pytest.mark.parametrize("raw", [b"[]", b'[{"channel": "email"}]', b'"text"', b"null", b"42"])
def test_json_that_is_not_an_object_is_rejected(raw: bytes) -> None:
    assert reasons(raw) == {("not_an_object", None)}


def test_a_message_over_256_kib_is_too_large_and_one_at_the_limit_is_not() -> None:
    base = doc(ENGLISH)
    at_limit = base + b" " * (MAX_MESSAGE_BYTES - len(base))
    assert len(at_limit) == MAX_MESSAGE_BYTES
    accepted(at_limit)
    assert reasons(at_limit + b" ") == {("too_large", None)}


def test_a_ten_megabyte_message_is_too_large_without_being_parsed() -> None:
    raw = b'{"body": "' + b"x" * 10_000_000 + b'"'  # not even valid JSON: never parsed
    result = rejected(raw)
    assert [reason.code for reason in result.reasons] == ["too_large"]
    assert result.digest == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 2000, 10_000])
def test_deep_nesting_is_rejected_as_too_deep(depth: int) -> None:
    nested = b'{"x":' * depth + b"1" + b"}" * depth
    assert reasons(nested) == {("too_deep", None)}
    arrays = b"[" * depth + b"]" * depth  # shallow enough to parse, it is just not an object
    assert reasons(arrays) == {("too_deep" if depth > 1024 else "not_an_object", None)}


def test_nesting_inside_a_known_field_counts_too() -> None:
    deep: Any = {"x": 1}
    for _ in range(MAX_DEPTH):
        deep = {"x": deep}
    assert ("too_deep", None) in reasons(doc(submitter=deep))


def test_nesting_up_to_the_limit_is_fine() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH - 2):
        deep = {"x": deep}
    accepted(doc(extra=deep))


# --- keys -----------------------------------------------------------------------------------


def test_keys_with_dollar_or_dot_anywhere_are_forbidden() -> None:
    raw = doc(
        **{"$where": "1", "meta.data": 1},
        submitter={"name": "سارة", "e.mail": "x"},
        answers=[{"question_id": "q1", "answer": "نعم", "$gt": 1}],
    )
    assert reasons(raw) == {
        ("forbidden_key", "$where"),
        ("forbidden_key", "meta.data"),
        ("forbidden_key", "submitter.e.mail"),
        ("forbidden_key", "answers.0.$gt"),
    }


def test_a_nul_in_a_key_is_forbidden() -> None:
    assert reasons(doc(**{"a\u0000b": 1})) == {("forbidden_key", "ab")}


def test_unknown_fields_without_forbidden_keys_are_ignored() -> None:
    result = accepted(doc(tracking={"campaign": "x"}, score=5))
    assert "tracking" not in result.submission.model_dump()


# --- field reasons ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["channel", "kind", "submitted_at"])
def test_a_missing_required_field_is_reported(field: str) -> None:
    assert ("missing_field", field) in reasons(doc(**{field: ABSENT}))


def test_missing_fields_inside_answers_and_attachments_are_reported_with_their_path() -> None:
    raw = doc(
        answers=[{"question_id": "q1"}],
        attachments=[{key: v for key, v in attachment().items() if key != "url"}],
    )
    assert reasons(raw) == {
        ("missing_field", "answers.0.answer"),
        ("missing_field", "attachments.0.url"),
    }


@pytest.mark.parametrize("channel", ["telegram", "ISTITLAA", "", "istitlaa\u202e"[:-1] + "x"])
def test_an_unregistered_channel_is_rejected(channel: str) -> None:
    assert reasons(doc(channel=channel)) == {("unknown_channel", "channel")}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": None}, "channel"),
        ({"channel": 7}, "channel"),
        ({"body": 5}, "body"),
        ({"body": ["نص"]}, "body"),
        ({"subject": {"ar": "x"}}, "subject"),
        ({"kind": 5}, "kind"),
        ({"language": True}, "language"),
        ({"submitter": "anonymous"}, "submitter"),
        ({"submitter": {"name": 5}}, "submitter.name"),
        ({"answers": {"q1": "yes"}}, "answers"),
        ({"answers": ["yes"]}, "answers.0"),
        ({"attachments": [attachment(size_bytes="12")]}, "attachments.0.size_bytes"),
        ({"attachments": [attachment(size_bytes=1.5)]}, "attachments.0.size_bytes"),
        ({"attachments": [attachment(size_bytes=True)]}, "attachments.0.size_bytes"),
        ({"attachments": [attachment(filename=None)]}, "attachments.0.filename"),
    ],
)
def test_a_wrong_type_is_rejected_as_invalid_type(changes: dict[str, Any], field: str) -> None:
    assert reasons(doc(**changes)) == {("invalid_type", field)}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "Opinion"}, "kind"),
        ({"kind": "رأي"}, "kind"),
        ({"language": "fr"}, "language"),
        ({"topic": "Najiz Services"}, "topic"),
        ({"topic": "courts--x"}, "topic"),
        ({"attachments": [attachment(size_bytes=-1)]}, "attachments.0.size_bytes"),
        ({"attachments": [attachment(url="javascript:alert(1)")]}, "attachments.0.url"),
        ({"attachments": [attachment(url="file:///etc/passwd")]}, "attachments.0.url"),
        ({"attachments": [attachment(content_type="pdf")]}, "attachments.0.content_type"),
    ],
)
def test_a_value_outside_the_contract_is_rejected_as_invalid_value(
    changes: dict[str, Any], field: str
) -> None:
    assert reasons(doc(**changes)) == {("invalid_value", field)}


@pytest.mark.parametrize(
    ("field", "limit", "char"),
    [
        ("body", 20_000, "ع"),
        ("body", 20_000, "e"),
        ("subject", 300, "م"),
        ("channel_ref", 200, "R"),
        ("legislation_ref", 64, "L"),
        ("survey_id", 64, "S"),
    ],
)
def test_text_over_its_limit_is_too_long_and_at_the_limit_is_fine(
    field: str, limit: int, char: str
) -> None:
    accepted(doc(**{field: char * limit}))
    assert reasons(doc(**{field: char * (limit + 1)})) == {("too_long", field)}


def test_length_is_counted_after_normalisation() -> None:
    # 20,000 letters plus bidi controls and NULs that normalisation removes: within the limit
    accepted(doc(body="\u202b" + "ب" * 20_000 + "\u202c\x00"))


def test_too_many_answers_or_attachments_are_too_many_items() -> None:
    answers = [{"question_id": f"q{i}", "answer": "نعم"} for i in range(201)]
    assert reasons(doc(answers=answers)) == {("too_many_items", "answers")}
    accepted(doc(answers=answers[:200]))
    assert reasons(doc(attachments=[attachment()] * 11)) == {("too_many_items", "attachments")}
    accepted(doc(attachments=[attachment()] * 10))


@pytest.mark.parametrize(
    "email", ["not-an-email", "a@b", "name@", "@example.com", "x y@example.com", "a@@example.sa"]
)
def test_an_invalid_email_is_rejected(email: str) -> None:
    assert reasons(doc(submitter={"email": email})) == {("invalid_email", "submitter.email")}


@pytest.mark.parametrize("phone", ["12345", "+1555123", "phone", "+9665000000019999"])
def test_an_invalid_phone_is_rejected(phone: str) -> None:
    assert reasons(doc(submitter={"phone": phone})) == {("invalid_phone", "submitter.phone")}


@pytest.mark.parametrize(
    "national_id", ["1000000009", "3000000008", "100000000", "10000000081", "abcdefghij"]
)
def test_an_invalid_national_id_is_rejected(national_id: str) -> None:
    expected = {("invalid_national_id", "submitter.national_id")}
    assert reasons(doc(submitter={"national_id": national_id})) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-25",
        "2026-11-25T10:00:00",
        "25/11/2026 10:00",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-11-25T10:00:00+0300",
        "0001-01-01T00:00:00+03:00",
        1764000000,
        None,
        "",
    ],
)
def test_a_timestamp_that_is_not_rfc3339_with_offset_is_invalid(value: Any) -> None:
    assert reasons(doc(submitted_at=value)) == {("invalid_timestamp", "submitted_at")}


def test_rfc3339_variants_with_an_offset_are_accepted() -> None:
    for value in [
        "2026-11-25T07:00:00Z",
        "2026-11-25 10:00:00.123456+03:00",
        "2026-11-25t07:00:00z",
    ]:
        accepted(doc(submitted_at=value))


def test_a_submission_more_than_five_minutes_in_the_future_is_rejected() -> None:
    soon = (NOW + timedelta(minutes=4)).isoformat()
    later = (NOW + timedelta(minutes=6)).isoformat()
    accepted(doc(submitted_at=soon))
    assert reasons(doc(submitted_at=later)) == {("submitted_in_future", "submitted_at")}


@pytest.mark.parametrize(
    "changes",
    [
        {"body": ABSENT},
        {"body": None},
        {"body": "   \n\t "},
        {"body": "\u202e\u2066\x00\u2069"},
        {"body": ABSENT, "answers": []},
    ],
)
def test_no_body_and_no_answers_is_an_empty_submission(changes: dict[str, Any]) -> None:
    assert reasons(doc(**changes)) == {("empty_submission", "body")}


def test_answers_without_a_body_are_enough() -> None:
    result = accepted(doc(body=ABSENT, answers=[{"question_id": "q1", "answer": "أوافق"}]))
    assert result.submission.body is None


# --- all problems, no echo ------------------------------------------------------------------


def test_every_problem_is_reported_not_just_the_first() -> None:
    raw = doc(
        channel="telegram",
        kind="complaint",
        body=5,
        language="fr",
        submitter={"email": "bad", "phone": "1", "national_id": "123"},
        submitted_at="tomorrow",
        answers=[{"answer": "x"}],
    )
    assert reasons(raw) == {
        ("unknown_channel", "channel"),
        ("invalid_value", "kind"),
        ("invalid_type", "body"),
        ("invalid_value", "language"),
        ("invalid_email", "submitter.email"),
        ("invalid_phone", "submitter.phone"),
        ("invalid_national_id", "submitter.national_id"),
        ("invalid_timestamp", "submitted_at"),
        ("missing_field", "answers.0.question_id"),
    }


def test_reasons_are_capped_with_a_final_count() -> None:
    raw = doc(**{f"k.{i}": i for i in range(80)})
    result = rejected(raw)
    assert len(result.reasons) == MAX_REASONS
    assert result.reasons[-1].code == "too_many_problems"
    assert "31" in result.reasons[-1].message


def test_reason_messages_never_echo_personal_data() -> None:
    secrets = ["سارة.القحطاني@@مثال", "+96655512", "1234567891", "tomorrow-ish", "Sara Q"]
    raw = doc(
        submitter={"email": secrets[0], "phone": secrets[1], "national_id": secrets[2]},
        submitted_at=secrets[3],
        body={"name": secrets[4]},
    )
    text = orjson.dumps([reason.model_dump() for reason in rejected(raw).reasons]).decode()
    for secret in secrets:
        assert secret not in text


def test_every_code_produced_is_in_the_published_code_set() -> None:
    for raw in [b"\xff", b"{", b"[]", b"{}", doc(channel="x", submitter={"email": "x"})]:
        assert {reason.code for reason in rejected(raw).reasons} <= CODES


def test_an_unexpected_failure_becomes_a_rejection_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*_args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(validation, "_parse", explode)
    result = rejected(doc())
    assert [reason.code for reason in result.reasons] == ["internal_error"]


# --- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "multiline", "expected"),
    [
        ("e\u0301te\u0301", False, "été"),  # NFC composes
        ("\u0627\u0653", False, "\u0622"),  # alef + madda above -> آ
        ("مر\x00حبا\x07\x1b", False, "مرحبا"),  # C0 controls removed
        ("abc\x85\x9fdef\x7f", True, "abcdef"),  # C1 controls and DEL removed
        ("\u202bمرحبا\u202c \u202eabc\u202d", False, "مرحبا abc"),  # embeddings/overrides
        ("\u2066x\u2067y\u2068z\u2069", False, "xyz"),  # isolates
        ("  سطر\tأول\nسطر ثان  \n", True, "سطر\tأول\nسطر ثان"),  # body keeps tab/newline
        ("line one\r\nline two\rthree", True, "line one\nline two\nthree"),
        ("Subject\non two\tlines", False, "Subject on two lines"),  # one-line field
        ("\u00a0 padded \u3000", False, "padded"),
        ("می\u200cخواهم", False, "می\u200cخواهم"),  # ZWNJ (Persian, Urdu) is kept
    ],
)
def test_text_normalisation(text: str, multiline: bool, expected: str) -> None:
    assert normalise_text(text, multiline=multiline) == expected


def test_the_accepted_submission_carries_normalised_text_in_every_field() -> None:
    raw = doc(
        subject="  \u202eمشروع\nنظام\x00  ",
        body="\r\nأرى\tأن\r\nالمدة\u2067 كافية\u2069\x00 ",
        legislation_ref=" MOJ-DRAFT-2026-003\u202c ",
        submitter={"name": " عبدالله\x00 الحربي ", "email": " A.Harbi@EXAMPLE.SA "},
        answers=[{"question_id": " q1 ", "question": "هل\nتوافق؟", "answer": " نعم\nأوافق "}],
    )
    submission = accepted(raw).submission
    assert submission.subject == "مشروع نظام"
    assert submission.body == "أرى\tأن\nالمدة كافية"
    assert submission.legislation_ref == "MOJ-DRAFT-2026-003"
    assert submission.submitter is not None
    assert submission.submitter.name == "عبدالله الحربي"
    assert submission.submitter.email == "A.Harbi@example.sa"
    answer = submission.answers[0]
    assert (answer.question_id, answer.question, answer.answer) == (
        "q1",
        "هل\nتوافق؟",
        "نعم\nأوافق",
    )


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+966500000001", "+966500000001"),
        ("0500000001", "+966500000001"),
        ("٠٥٠٠٠٠٠٠٠١", "+966500000001"),
        ("+966 50 000 0001", "+966500000001"),
        ("+1 202 555 0143", "+12025550143"),
    ],
)
def test_phones_are_normalised_to_e164_arabic_digits_included(phone: str, expected: str) -> None:
    submitter = accepted(doc(submitter={"phone": phone})).submission.submitter
    assert submitter is not None
    assert submitter.phone == expected


@pytest.mark.parametrize("national_id", ["1000000008", "١٠٠٠٠٠٠٠٠٨", "۱۰۰۰۰۰۰۰۰۸", "2000000006"])
def test_national_ids_are_checked_and_normalised_to_ascii_digits(national_id: str) -> None:
    submitter = accepted(doc(submitter={"national_id": national_id})).submission.submitter
    assert submitter is not None
    assert submitter.national_id == national_id.translate(validation._ARABIC_DIGITS)


def test_an_arabic_email_address_is_valid() -> None:
    submitter = accepted(doc(submitter={"email": "مستخدم@مثال.السعودية"})).submission.submitter
    assert submitter is not None
    assert submitter.email == "مستخدم@مثال.السعودية"


def test_empty_optional_strings_and_an_empty_submitter_mean_absent() -> None:
    raw = doc(channel_ref="", topic="", subject="  ", submitter={"name": "", "email": " "})
    submission = accepted(raw).submission
    assert submission.channel_ref is None
    assert submission.topic is None
    assert submission.subject is None
    assert submission.submitter is None


# --- language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (("مرحبا بكم في ناجز",), "ar"),
        (("Hello and welcome",), "en"),
        (("أقترح تحسين خدمة Najiz للمستخدمين",), "ar"),
        (("The Najiz app (تطبيق ناجز) crashes on upload",), "en"),
        (("5", "👏", None), "ar"),
        ((), "ar"),
        (("Déjà vu über café",), "en"),
    ],
)
def test_language_is_detected_by_script(texts: tuple[str | None, ...], expected: str) -> None:
    assert detect_language(*texts) == expected


def test_a_given_language_is_kept_and_an_absent_one_detected_from_answers() -> None:
    assert accepted(doc(ENGLISH, language="ar")).submission.language == "ar"
    only_answers = doc(
        ENGLISH, body=ABSENT, subject=ABSENT, answers=[{"question_id": "q", "answer": "Agree"}]
    )
    assert accepted(only_answers).submission.language == "en"


# --- identity -------------------------------------------------------------------------------


def test_the_same_channel_and_ref_give_the_same_ids_whatever_the_content() -> None:
    first = accepted(doc(body="النص الأول"))
    again = accepted(doc(body="نص معدّل", submitted_at="2026-11-25T10:05:00+03:00"))
    assert first.submission.submission_id == again.submission.submission_id
    assert first.submission.reference == again.submission.reference
    assert first.digest != again.digest


def test_without_a_ref_the_id_follows_the_normalised_content() -> None:
    plain = accepted(doc(channel_ref=ABSENT, body="شكرا لكم"))
    noisy = accepted(doc(channel_ref=ABSENT, body="  \u202bشكرا\x00 لكم\u202c "))
    other = accepted(doc(channel_ref=ABSENT, body="شكرا جزيلا"))
    assert plain.submission.submission_id == noisy.submission.submission_id
    assert plain.digest == noisy.digest
    assert plain.submission.submission_id != other.submission.submission_id


def test_received_at_does_not_change_the_ids_or_the_digest() -> None:
    first = run(doc(channel_ref=ABSENT))
    later = run(doc(channel_ref=ABSENT), now=NOW + timedelta(minutes=1))
    assert isinstance(first, Accepted)
    assert isinstance(later, Accepted)
    assert first.digest == later.digest
    assert first.submission.submission_id == later.submission.submission_id


def test_a_rejection_with_channel_and_ref_links_to_the_submission_id() -> None:
    good = accepted(doc())
    bad = rejected(doc(kind="unknown-kind"))
    assert bad.submission_id == good.submission.submission_id
    assert bad.reference == good.submission.reference
    assert bad.channel == "istitlaa"


def test_an_unreadable_rejection_is_identified_by_its_raw_digest() -> None:
    raw = b"\x00garbage"
    result = rejected(raw)
    digest = hashlib.sha256(raw).hexdigest()
    assert result.digest == digest
    assert result.submission_id == ids.submission_id("", None, digest)
    assert result.channel is None
    assert rejected(raw).submission_id == result.submission_id
