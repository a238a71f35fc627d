"""Submission models of the v1 contract (docs/design.md, "RawSubmission").

`RawSubmission` is what a channel sends and is validated strictly; `Submission` is the
normalised, identified form every internal event carries. Both are frozen: an event's content
never changes after it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

MAX_MESSAGE_BYTES = 256 * 1024
"""A whole raw message larger than this is rejected with `too_large` before it is parsed."""


class Frozen(BaseModel):
    """Base of every contract model: immutable, and strict about what it is given."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)


class Kind(StrEnum):
    """What the submitter is giving: the nine kinds of e-participation feedback."""

    OPINION = "opinion"
    VIEW = "view"
    COMMENT = "comment"
    SUGGESTION = "suggestion"
    IDEA = "idea"
    EXPERIENCE = "experience"
    PROBLEM = "problem"
    SURVEY_RESPONSE = "survey_response"
    CONSULTATION_RESPONSE = "consultation_response"


# The kinds in both languages, as the e-mails and the report pages name them.
KIND_LABELS: Final[Mapping[Kind, tuple[str, str]]] = {
    Kind.OPINION: ("رأي", "Opinion"),
    Kind.VIEW: ("مرئيات", "View"),
    Kind.COMMENT: ("تعليق", "Comment"),
    Kind.SUGGESTION: ("اقتراح", "Suggestion"),
    Kind.IDEA: ("فكرة", "Idea"),
    Kind.EXPERIENCE: ("تجربة", "Experience"),
    Kind.PROBLEM: ("مشكلة", "Problem"),
    Kind.SURVEY_RESPONSE: ("إجابة استبانة", "Survey response"),
    Kind.CONSULTATION_RESPONSE: ("مشاركة في استطلاع مرئيات", "Consultation response"),
}


Language = Literal["ar", "en"]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)]


class Answer(Frozen):
    """One answer of a survey or of a draft law's public-views questionnaire."""

    question_id: str = Field(max_length=64, description="The questionnaire's id of the question.")
    question: str | None = Field(
        default=None, max_length=2000, description="The question's text, when the channel sends it."
    )
    answer: str = Field(max_length=5000, description="The submitter's answer.")


class Submitter(Frozen):
    """Who sent it. Personal data: never logged, never a metric label."""

    name: str | None = Field(default=None, max_length=200, description="Full name.")
    email: str | None = Field(default=None, max_length=254, description="Validated e-mail address.")
    phone: str | None = Field(default=None, max_length=32, description="Phone number, E.164.")
    national_id: str | None = Field(
        default=None, max_length=10, description="National or resident id (10 digits)."
    )


class Attachment(Frozen):
    """Metadata of a file the channel holds; Sada never fetches or stores the file itself."""

    filename: str = Field(max_length=255, description="The file's name as uploaded.")
    content_type: str = Field(max_length=127, description="MIME type, e.g. application/pdf.")
    size_bytes: int = Field(ge=0, description="Size of the file in bytes.")
    url: str = Field(max_length=2048, description="Where the channel serves the file.")


class SubmissionFields(Frozen):
    """The fields a channel sends, shared by the raw and the normalised forms."""

    channel: str = Field(max_length=64, description="A registered channel id, e.g. `istitlaa`.")
    channel_ref: str | None = Field(
        default=None,
        max_length=200,
        description="The channel's own id for this submission; makes resubmission idempotent.",
    )
    kind: Kind = Field(description="What kind of feedback this is.")
    topic: Slug | None = Field(default=None, description="Optional topic slug, e.g. `courts`.")
    legislation_ref: str | None = Field(
        default=None,
        max_length=64,
        description="Id of the draft law or regulation under consultation.",
    )
    survey_id: str | None = Field(default=None, max_length=64, description="Survey id, if any.")
    subject: str | None = Field(default=None, max_length=300, description="One-line subject.")
    body: str | None = Field(default=None, max_length=20_000, description="The text itself.")
    answers: tuple[Answer, ...] = Field(
        default=(), max_length=200, description="Survey or questionnaire answers."
    )
    submitter: Submitter | None = Field(default=None, description="Absent means anonymous.")
    submitted_at: AwareDatetime = Field(description="When the submitter sent it (RFC 3339).")
    attachments: tuple[Attachment, ...] = Field(
        default=(), max_length=10, description="Attachment metadata only."
    )


class RawSubmission(SubmissionFields):
    """What a channel publishes to `feedback.submissions.v1` or POSTs to `/v1/submissions`."""

    language: Language | None = Field(
        default=None, description="`ar` or `en`; detected from the text when absent."
    )


class ConsultationMark(Frozen):
    """What intake found of the consultation a `legislation_ref` names (docs/consultations.md)."""

    registered: bool = Field(
        description="False when `legislation_ref` names no project of the registry: accepted "
        "anyway (public input is never dropped), and shown as unregistered."
    )
    late: bool = Field(
        default=False,
        description="Sent (`submitted_at`) after the project's `closes_at`: accepted, marked, and "
        "the Office decides.",
    )
    closes_at: AwareDatetime | None = Field(
        default=None,
        description="When late: the `closes_at` it was judged against, as the registry had it "
        "then (a window may later be extended), so the e-mail and the archive can say when the "
        "consultation closed without the registry.",
    )


class Submission(SubmissionFields):
    """A validated, normalised submission with its stable identity."""

    submission_id: str = Field(
        description="UUIDv5 of channel + channel_ref (or of the normalised content)."
    )
    reference: str = Field(description="Short human code a citizen can quote, e.g. SADA-7K3M-Q9XD.")
    language: Language = Field(description="Given by the channel or detected from the text.")
    received_at: datetime = Field(description="When intake accepted it (UTC).")
    consultation: ConsultationMark | None = Field(
        default=None,
        description="Set when `legislation_ref` is: whether the project is registered, and "
        "whether the submission came after it closed.",
    )


class Reason(Frozen):
    """One problem found in a rejected submission."""

    code: str = Field(description="Stable machine-readable code, e.g. `unknown_channel`.")
    field: str | None = Field(default=None, description="Dotted path of the field, if any.")
    message: str = Field(description="A human explanation; never echoes personal data.")
