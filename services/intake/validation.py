"""The one validation function both doors share: raw bytes in, accepted or rejected out.

`validate` never raises. It checks, in order of cost: the size (no parse beyond 256 KiB), the
encoding (UTF-8), the syntax (JSON, at most `MAX_DEPTH` deep), the shape (an object) and the
keys (no `$`, `.` or NUL anywhere, since the archive stores documents and keys are untrusted);
then it normalises every string (docs/design.md: NFC, C0/C1 controls removed except tab/newline in
free text, bidi embeddings/overrides/isolates removed, trimmed) and validates the normalised
document against the contract (`shared.models.RawSubmission`, strict JSON types) plus the rules
the model cannot express: registered channel, e-mail, phone, national id, RFC 3339 timestamp
not in the future, body or answers present; and, when `legislation_ref` names a project of the
registry of consultations (docs/consultations.md), its window and its questionnaire. Every
problem found is reported, each as a stable reason code, the field's dotted path, and a message
that never echoes the submitted value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import orjson
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AwareDatetime, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from shared import ids
from shared.consultations import Consultation, Question, QuestionType
from shared.models import (
    MAX_MESSAGE_BYTES,
    ConsultationMark,
    Language,
    RawSubmission,
    Reason,
    Submission,
)

MAX_DEPTH: Final = 32
"""Deepest nesting of objects/arrays accepted; a real submission is 3 levels deep."""
MAX_REASONS: Final = 50
"""A rejection lists at most this many reasons (the last says how many more there were)."""
FUTURE_TOLERANCE: Final = timedelta(minutes=5)
"""How far in the future `submitted_at` may be (clock skew between a channel and us)."""

CODES: Final = frozenset(
    {
        "invalid_utf8",
        "invalid_json",
        "not_an_object",
        "too_large",
        "too_deep",
        "forbidden_key",
        "missing_field",
        "unknown_channel",
        "invalid_type",
        "invalid_value",
        "too_long",
        "too_many_items",
        "invalid_email",
        "invalid_phone",
        "invalid_national_id",
        "invalid_timestamp",
        "submitted_in_future",
        "empty_submission",
        "consultation_not_open",
        "unknown_question",
        "duplicate_answer",
        "missing_required_answer",
        "invalid_choice",
        "not_a_number",
        "answer_out_of_range",
        "too_many_problems",
        "internal_error",
    }
)
"""Every reason code `validate` can produce: a bounded set, safe as a metric label."""
NO_CONSULTATIONS: Final[Mapping[str, Consultation]] = MappingProxyType({})
"""An empty registry: every `legislation_ref` is then marked unregistered."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid submission, normalised and identified.

    `digest` is the SHA-256 of the normalised submission's canonical JSON (without
    `received_at`, `submission_id` and `reference`): the accepted event's discriminator.
    """

    submission: Submission
    digest: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid submission: every problem found, and ids that link it to its submission.

    `submission_id` is the channel + channel_ref id when both are readable (so the archive files
    the rejection with the submission), else the id of the raw bytes' `digest` (SHA-256).
    """

    reasons: tuple[Reason, ...]
    channel: str | None
    submission_id: str
    reference: str
    digest: str


def validate(
    raw: bytes,
    *,
    channels: Collection[str],
    now: datetime,
    consultations: Mapping[str, Consultation] = NO_CONSULTATIONS,
) -> Accepted | Rejected:
    """Validate and normalise one raw submission; never raises, whatever `raw` holds.

    `consultations` is the registry by ref (`shared.consultations.load_consultations`): intake
    passes it; a caller that only needs the normalised submission (a dry run of routing or
    grouping) may leave it out, and every `legislation_ref` is then marked unregistered.
    """
    raw_digest = ids.digest(raw)
    try:
        return _validate(raw, raw_digest, channels, now, consultations)
    except Exception as exc:  # the contract is "never raises": a bug must not stop a door
        # structlog (and the rich it pulls in) only on this path: `sada intake check` stays light.
        from shared.logging import get_logger

        get_logger(__name__).error("validation failed unexpectedly", error=type(exc).__name__)
        reason = Reason(code="internal_error", field=None, message="could not be validated")
        return _rejected([reason], raw_digest, None, None)


# --- text normalisation -------------------------------------------------------------------

_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
_DROP_IN_TEXT: Final = {c: None for c in _CONTROLS if chr(c) not in "\t\n"} | dict.fromkeys(
    map(ord, _BIDI)
)
# In one-line fields a line break or tab separates words: it becomes a space, not nothing.
_DROP_IN_LINE: Final = _DROP_IN_TEXT | {ord(c): " " for c in "\t\n\x0b\x0c\x85"}
TEXT_FIELDS: Final = frozenset({"body", "answer", "question"})
"""Free-text fields that keep tabs and newlines; every other string is one line."""


def normalise_text(text: str, *, multiline: bool = False) -> str:
    r"""Return `text` normalised (docs/design.md): controls, bidi overrides removed; NFC; trimmed.

    Line endings become `\n` first, so CRLF text keeps its line breaks. In one-line fields
    (`multiline=False`) tabs and line breaks become spaces instead of vanishing.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_DROP_IN_TEXT if multiline else _DROP_IN_LINE)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text.strip()


# --- language detection -------------------------------------------------------------------

_ARABIC_LETTER = re.compile(
    "[\u0620-\u064a\u066e-\u066f\u0671-\u06d3\u06d5\u06ee-\u06ef\u06fa-\u06fc\u06ff"
    "\u0750-\u077f\u08a0-\u08c9\ufb50-\ufdfb\ufe70-\ufefc]"
)
_LATIN_LETTER = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")
_DETECT_SAMPLE = 10_000


def detect_language(*texts: str | None) -> Language:
    """Return `ar` or `en` by counting Arabic and Latin letters; Arabic wins ties and no text."""
    sample = " ".join(t for t in texts if t)[:_DETECT_SAMPLE]
    arabic = len(_ARABIC_LETTER.findall(sample))
    latin = len(_LATIN_LETTER.findall(sample))
    return "en" if latin > arabic else "ar"


# --- field rules the model cannot express ---------------------------------------------------

_ARABIC_DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "0123456789" * 2)
_NATIONAL_ID = re.compile(r"[12][0-9]{9}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)
_URL_SCHEMES = ("https://", "http://")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")


def normalise_national_id(value: str) -> str | None:
    """Return a Saudi national/resident id as 10 ASCII digits, or None when it is not valid.

    Arabic-Indic digits are accepted; the id starts with 1 (citizen) or 2 (resident) and its
    last digit is the Luhn check digit.
    """
    digits = value.translate(_ARABIC_DIGITS).replace(" ", "").replace("-", "")
    if not _NATIONAL_ID.fullmatch(digits):
        return None
    total = 0
    for index, char in enumerate(digits):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return digits if total % 10 == 0 else None


def normalise_phone(value: str) -> str | None:
    """Return a valid phone number in E.164 (local numbers read as Saudi), or None."""
    try:
        number = phonenumbers.parse(value, "SA")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(value: str) -> str | None:
    """Return the normalised e-mail address (domain lower-cased, IDN allowed), or None."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def parse_timestamp(value: str) -> datetime | None:
    """Return an RFC 3339 timestamp with an offset as an aware datetime, or None."""
    if not _RFC3339.fullmatch(value):
        return None
    try:
        parsed = _TIMESTAMP.validate_python(value, strict=False)
        parsed.astimezone(UTC)  # year 1 or 9999 with an offset cannot be placed on UTC
    except (ValidationError, OverflowError, ValueError):
        return None
    return parsed


# --- the pipeline ---------------------------------------------------------------------------


class _Problems:
    """Collects reasons; one per field, the first found wins (the most specific check first)."""

    def __init__(self) -> None:
        self.reasons: list[Reason] = []
        self.fields: set[str] = set()

    def add(self, code: str, field: str | None, message: str, *, repeatable: bool = False) -> None:
        """Add a reason; `repeatable` ones (one per missing question) share their field."""
        if field is not None and not repeatable:
            if field in self.fields:
                return
            self.fields.add(field)
        self.reasons.append(Reason(code=code, field=field, message=message))

    def __bool__(self) -> bool:
        return bool(self.reasons)


def _validate(
    raw: bytes,
    raw_digest: str,
    channels: Collection[str],
    now: datetime,
    consultations: Mapping[str, Consultation],
) -> Accepted | Rejected:
    problems = _Problems()
    if len(raw) > MAX_MESSAGE_BYTES:
        problems.add("too_large", None, f"the message is larger than {MAX_MESSAGE_BYTES} bytes")
        return _rejected(problems.reasons, raw_digest, None, None)
    document = _parse(raw, problems)
    if not isinstance(document, dict):
        if not problems:
            problems.add("not_an_object", None, "the message must be a JSON object")
        return _rejected(problems.reasons, raw_digest, None, None)

    if not _normalise_tree(document, problems):
        return _rejected(problems.reasons, raw_digest, None, None)
    data = _clean_fields(document)
    channel = data.get("channel") if isinstance(data.get("channel"), str) else None
    channel_ref = data.get("channel_ref") if isinstance(data.get("channel_ref"), str) else None

    _check_rules(data, problems, channels, now)
    mark = _check_consultation(data, problems, consultations)
    model = _check_model(data, problems)
    if problems or model is None:
        return _rejected(problems.reasons, raw_digest, channel, channel_ref)
    return _accepted(model, now, mark)


def _parse(raw: bytes, problems: _Problems) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.add("invalid_utf8", None, "the message is not valid UTF-8")
            return None
        if "depth" in str(exc) or "recursion" in str(exc).lower():
            problems.add("too_deep", None, f"the message is nested more than {MAX_DEPTH} deep")
        else:
            problems.add("invalid_json", None, "the message is not valid JSON")
        return None


def _normalise_tree(document: dict[str, Any], problems: _Problems) -> bool:
    """Normalise every string in place and report forbidden keys; False when nested too deep."""
    stack: list[tuple[dict[str, Any] | list[Any], tuple[Any, ...], bool]] = [(document, (), False)]
    while stack:
        node, path, multiline = stack.pop()
        if len(path) >= MAX_DEPTH:
            problems.add("too_deep", None, f"the message is nested more than {MAX_DEPTH} deep")
            return False
        items: list[tuple[Any, Any]] = (
            list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        )
        for key, value in items:
            child_multiline = key in TEXT_FIELDS if isinstance(key, str) else multiline
            if isinstance(key, str) and ("$" in key or "." in key or "\x00" in key):
                where = ".".join(_label(part) for part in (*path, key))
                problems.add("forbidden_key", where, "keys may not contain '$', '.' or NUL")
            if isinstance(value, str):
                node[key] = normalise_text(value, multiline=child_multiline)
            elif isinstance(value, dict | list):
                stack.append((value, (*path, key), child_multiline))
    return True


def _label(part: Any) -> str:
    """Return a key as a reason's field path shows it: one line, at most 64 characters."""
    return (normalise_text(part)[:64] or "(empty)") if isinstance(part, str) else str(part)


_FIELDS: Final = frozenset(RawSubmission.model_fields)
_OPTIONAL_TOP = (
    "channel_ref",
    "topic",
    "legislation_ref",
    "survey_id",
    "subject",
    "body",
    "language",
)
_OPTIONAL_SUBMITTER = ("name", "email", "phone", "national_id")


def _clean_fields(document: dict[str, Any]) -> dict[str, Any]:
    """Keep the contract's fields; an empty optional string means absent, as does `{}`."""
    data = {key: value for key, value in document.items() if key in _FIELDS}
    _blank_to_none(data, _OPTIONAL_TOP)
    submitter = data.get("submitter")
    if isinstance(submitter, dict):
        _blank_to_none(submitter, _OPTIONAL_SUBMITTER)
        if all(submitter.get(key) is None for key in _OPTIONAL_SUBMITTER):
            data["submitter"] = None
    answers = data.get("answers")
    if isinstance(answers, list):
        for answer in answers:
            if isinstance(answer, dict):
                _blank_to_none(answer, ("question",))
    return data


def _blank_to_none(data: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if data.get(key) == "":
            data[key] = None


def _check_rules(
    data: dict[str, Any], problems: _Problems, channels: Collection[str], now: datetime
) -> None:
    """Rules beyond types and lengths; each replaces its field with the normalised value."""
    channel = data.get("channel")
    if isinstance(channel, str) and channel not in channels:
        problems.add("unknown_channel", "channel", "is not a registered channel")

    submitter = data.get("submitter")
    if isinstance(submitter, dict):
        checks: tuple[tuple[str, Callable[[str], str | None], str, str], ...] = (
            ("email", normalise_email, "invalid_email", "is not a valid e-mail address"),
            ("phone", normalise_phone, "invalid_phone", "is not a valid phone number"),
            (
                "national_id",
                normalise_national_id,
                "invalid_national_id",
                "is not a valid national or resident id (10 digits, check digit)",
            ),
        )
        for key, normalise, code, message in checks:
            value = submitter.get(key)
            if isinstance(value, str):
                normalised = normalise(value)
                if normalised is None:
                    problems.add(code, f"submitter.{key}", message)
                else:
                    submitter[key] = normalised

    submitted_at = data.get("submitted_at")
    if isinstance(submitted_at, str):
        parsed = parse_timestamp(submitted_at)
        if parsed is None:
            problems.add(
                "invalid_timestamp", "submitted_at", "must be an RFC 3339 timestamp with an offset"
            )
        elif parsed > _aware(now) + FUTURE_TOLERANCE:
            problems.add(
                "submitted_in_future", "submitted_at", "is more than 5 minutes in the future"
            )
    elif "submitted_at" in data:
        problems.add(
            "invalid_timestamp", "submitted_at", "must be an RFC 3339 timestamp with an offset"
        )

    attachments = data.get("attachments")
    if isinstance(attachments, list):
        for index, attachment in enumerate(attachments):
            if not isinstance(attachment, dict):
                continue
            url, content_type = attachment.get("url"), attachment.get("content_type")
            if isinstance(url, str) and not url.lower().startswith(_URL_SCHEMES):
                problems.add("invalid_value", f"attachments.{index}.url", "must be an http(s) URL")
            if isinstance(content_type, str) and not _CONTENT_TYPE.fullmatch(content_type):
                problems.add(
                    "invalid_value",
                    f"attachments.{index}.content_type",
                    "must be a MIME type such as application/pdf",
                )

    body, answers = data.get("body"), data.get("answers")
    if body is None and (answers is None or answers == []):
        problems.add("empty_submission", "body", "a submission needs a body or answers")


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


# --- the consultation a legislation_ref names --------------------------------------------------


def _check_consultation(
    data: dict[str, Any], problems: _Problems, consultations: Mapping[str, Consultation]
) -> ConsultationMark | None:
    """Judge a submission against the project its `legislation_ref` names; return its mark.

    Unregistered: accepted and marked (public input is never dropped). Registered: sent before
    `opens_at` is rejected, after `closes_at` accepted and marked late (the Office decides);
    answers, when there are any, must fit the questionnaire. A comment with a body and no
    answers is not a questionnaire response and is not held to its required questions.
    """
    ref = data.get("legislation_ref")
    if not isinstance(ref, str):
        return None
    consultation = _registered(ref, consultations)
    if consultation is None:
        return ConsultationMark(registered=False)
    data["legislation_ref"] = consultation.ref  # the registry's spelling, whatever the case
    answers = data.get("answers")
    if isinstance(answers, list) and answers:
        _check_answers(consultation, answers, problems)
    submitted_at = data.get("submitted_at")
    sent = parse_timestamp(submitted_at) if isinstance(submitted_at, str) else None
    if sent is None:
        return ConsultationMark(registered=True)  # rejected above for its timestamp
    if sent < consultation.opens_at:
        problems.add(
            "consultation_not_open",
            "legislation_ref",
            f"the consultation opens at {consultation.opens_at.isoformat()}; views are "
            "accepted from then",
        )
    if sent > consultation.closes_at:
        return ConsultationMark(registered=True, late=True, closes_at=consultation.closes_at)
    return ConsultationMark(registered=True)


def _registered(ref: str, consultations: Mapping[str, Consultation]) -> Consultation | None:
    found = consultations.get(ref)
    if found is None:
        folded = ref.casefold()
        found = next((c for c in consultations.values() if c.ref.casefold() == folded), None)
    return found


def _check_answers(consultation: Consultation, answers: list[Any], problems: _Problems) -> None:
    """Every answer names a question once and fits its type; every required one is answered."""
    answered: set[str] = set()
    for index, answer in enumerate(answers):
        if not isinstance(answer, dict) or not isinstance(answer.get("question_id"), str):
            continue  # the contract's check reports the shape
        where = f"answers.{index}"
        question = consultation.question(answer["question_id"])
        if question is None:
            problems.add(
                "unknown_question",
                f"{where}.question_id",
                f"is not a question of the questionnaire of {consultation.ref}",
            )
            continue
        if question.id in answered:
            problems.add(
                "duplicate_answer", f"{where}.question_id", f"{question.id!r} is answered twice"
            )
            continue
        value = answer.get("answer")
        if not isinstance(value, str):
            continue
        if not value:
            if question.required:
                problems.add(
                    "missing_required_answer", f"{where}.answer", f"{question.id!r} is required"
                )
            answered.add(question.id)
            continue
        answered.add(question.id)
        normalised = _check_answer(question, value, f"{where}.answer", problems)
        if normalised is not None:
            answer["answer"] = normalised
    for question in consultation.questions:
        if question.required and question.id not in answered:
            problems.add(
                "missing_required_answer",
                "answers",
                f"the required question {question.id!r} is not answered",
                repeatable=True,
            )


_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")


def _check_answer(question: Question, value: str, field: str, problems: _Problems) -> str | None:
    """Check one non-empty answer against its question; return its canonical form, if any.

    Canonical forms: a multi_choice answer's ids joined by `,` without spaces; a scale answer in
    ASCII digits (Arabic-Indic digits are accepted).
    """
    choices = ", ".join(option.id for option in question.options)
    if question.type is QuestionType.SINGLE_CHOICE:
        if question.option(value) is None:
            problems.add("invalid_choice", field, f"must be one option id of: {choices}")
        return None
    if question.type is QuestionType.MULTI_CHOICE:
        picked = [part.strip() for part in value.split(",")]
        if not all(question.option(part) for part in picked):
            problems.add(
                "invalid_choice", field, f"must be option ids separated by commas, of: {choices}"
            )
            return None
        if len(set(picked)) != len(picked):
            problems.add("invalid_choice", field, "names an option more than once")
            return None
        return ",".join(picked)
    if question.type is QuestionType.SCALE:
        span = f"from {question.min} to {question.max}"
        digits = value.translate(_ARABIC_DIGITS).replace(" ", "")
        if not _INTEGER.fullmatch(digits):
            problems.add("not_a_number", field, f"must be a whole number {span}")
            return None
        number = int(digits)
        low, high = question.min, question.max  # both set: the registry checks a scale's shape
        if low is not None and high is not None and not low <= number <= high:
            problems.add("answer_out_of_range", field, f"must be {span}")
            return None
        return str(number)
    return None


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "model_type": "an object",
    "dict_type": "an object",
    "model_attributes_type": "an object",
    "tuple_type": "an array",
    "list_type": "an array",
    "bool_type": "a boolean",
    "float_type": "a number",
}
_VALUE_TYPES = frozenset({"enum", "literal_error", "string_pattern_mismatch"})


def _check_model(data: dict[str, Any], problems: _Problems) -> RawSubmission | None:
    """Validate against the contract with strict JSON types; map every error to a reason."""
    try:
        return RawSubmission.model_validate_json(orjson.dumps(data), strict=True)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_context=True, include_input=True):
            field = ".".join(str(part) for part in error["loc"])
            if field == "submitted_at" and error["type"] != "missing":
                continue  # judged by the RFC 3339 rule above, with its own reason
            code, message = _reason_of(error)
            problems.add(code, field or None, message)
        return None


def _reason_of(error: ErrorDetails) -> tuple[str, str]:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "missing_field", "is required"
    if kind in _EXPECTED:
        return "invalid_type", f"must be {_EXPECTED[kind]}"
    if kind == "string_too_long":
        return "too_long", f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_long":
        return "too_many_items", f"must have at most {ctx.get('max_length')} items"
    if kind in _VALUE_TYPES and not isinstance(error.get("input"), str):
        return "invalid_type", "must be a string"
    if kind in {"enum", "literal_error"}:
        return "invalid_value", f"must be one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        return "invalid_value", "must be lower-case letters, digits and single hyphens"
    if kind == "greater_than_equal":
        return "invalid_value", f"must be at least {ctx.get('ge')}"
    return "invalid_value", "is not a valid value"


def _accepted(model: RawSubmission, now: datetime, mark: ConsultationMark | None) -> Accepted:
    fields = model.model_dump(mode="json")
    if fields["language"] is None:
        fields["language"] = detect_language(
            model.subject,
            model.body,
            *(text for answer in model.answers for text in (answer.question, answer.answer)),
        )
    digest = ids.digest(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    submission_id = ids.submission_id(model.channel, model.channel_ref, digest)
    # Every field was validated just now; constructing skips a second, identical validation.
    submission = Submission.model_construct(
        **{name: getattr(model, name) for name in _SHARED_FIELDS},
        language=fields["language"],
        submission_id=submission_id,
        reference=ids.reference(submission_id),
        received_at=_aware(now).astimezone(UTC),
        consultation=mark,
    )
    return Accepted(submission=submission, digest=digest)


_SHARED_FIELDS: Final = tuple(name for name in RawSubmission.model_fields if name != "language")


_FIELD_ORDER: Final = {name: index for index, name in enumerate(RawSubmission.model_fields)}


def _field_order(reason: Reason) -> int:
    if reason.field is None:
        return -1
    return _FIELD_ORDER.get(reason.field.split(".", 1)[0], len(_FIELD_ORDER))


def _rejected(
    reasons: list[Reason], raw_digest: str, channel: str | None, channel_ref: str | None
) -> Rejected:
    reasons = sorted(reasons, key=_field_order)
    if len(reasons) > MAX_REASONS:
        more = len(reasons) - (MAX_REASONS - 1)
        reasons = [
            *reasons[: MAX_REASONS - 1],
            Reason(code="too_many_problems", field=None, message=f"{more} more problems"),
        ]
    if channel and channel_ref:
        submission_id = ids.submission_id(channel, channel_ref, raw_digest)
    else:
        submission_id = ids.submission_id("", None, raw_digest)
    claimed = channel[:64] if channel else None
    return Rejected(
        reasons=tuple(reasons),
        channel=claimed,
        submission_id=submission_id,
        reference=ids.reference(submission_id),
        digest=raw_digest,
    )
