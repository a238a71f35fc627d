"""The summary of views as data: what the JSON, Markdown and HTML reports all show.

One model, rendered three ways (`sada report`, `GET /v1/consultations/{ref}/report`,
`GET /v1/units/{id}/report`), so the page people read and the JSON a program reads can never
disagree. Built from the archive's per-project and per-unit aggregates, never by scanning the
archive. No submitter personal data: references, texts and counts only.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Count(_Frozen):
    """How many submissions had one value (a kind, a channel, a topic)."""

    key: str = Field(description="The value, e.g. `opinion` or `istitlaa`.")
    count: int = Field(ge=0)


class DayCount(_Frozen):
    """Submissions on one day (Asia/Riyadh), in all and by channel."""

    day: date
    count: int = Field(ge=0)
    by_channel: tuple[Count, ...] = Field(default=(), description="Largest first.")


class OptionCount(_Frozen):
    """How many answers chose one option (or one scale value)."""

    id: str = Field(description="Option id, or the scale value as text.")
    label_ar: str
    label_en: str
    count: int = Field(ge=0)


class FreeText(_Frozen):
    """One free-text answer, with the submission it came from."""

    reference: str
    text: str


class QuestionSummary(_Frozen):
    """The distribution of one question's answers."""

    id: str
    text_ar: str
    text_en: str
    type: str = Field(description="single_choice, multi_choice, scale or text.")
    answered: int = Field(ge=0, description="Submissions that answered it.")
    options: tuple[OptionCount, ...] = Field(
        default=(), description="Choice and scale questions: every option/value, in order."
    )
    free_text: tuple[FreeText, ...] = Field(
        default=(), description="Text questions: the answers, oldest first (at most `shown`)."
    )
    free_text_total: int = Field(default=0, ge=0, description="Text answers in all.")


class CampaignSummary(_Frozen):
    """A campaign of near-identical submissions: its size and one representative text."""

    campaign_id: str
    size: int = Field(ge=2)
    first_reference: str
    representative: str = Field(description="The first member's subject and body.")


class Comment(_Frozen):
    """One distinct comment: not a further copy of a campaign."""

    reference: str
    submitted_at: datetime
    kind: str
    channel: str
    text: str = Field(description="Subject and body.")
    late: bool = False
    campaign_size: int | None = Field(
        default=None, description="Set when this comment is a campaign's representative."
    )


class ConsultationInfo(_Frozen):
    """The project as the registry has it (titles are the ref when unregistered)."""

    ref: str
    title_ar: str
    title_en: str
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    link: str | None = None
    registered: bool = True


class ConsultationReport(_Frozen):
    """The summary of views of one legislative project."""

    consultation: ConsultationInfo
    generated_at: datetime
    total: int = Field(ge=0, description="Accepted submissions on the project.")
    late: int = Field(ge=0, description="Of which sent after closes_at.")
    unregistered: int = Field(ge=0, description="Of which carried a ref the registry lacks.")
    by_kind: tuple[Count, ...] = ()
    by_channel: tuple[Count, ...] = ()
    per_day: tuple[DayCount, ...] = Field(default=(), description="Over the window, oldest first.")
    questions: tuple[QuestionSummary, ...] = ()
    campaigns: tuple[CampaignSummary, ...] = Field(default=(), description="Largest first.")
    comments: tuple[Comment, ...] = Field(default=(), description="Every distinct comment.")
    comments_total: int = Field(default=0, ge=0)


class UnitReport(_Frozen):
    """The same kind of page for a unit over a period (e.g. the Voice of the Customer)."""

    unit: str
    name_ar: str
    name_en: str
    period_from: date
    period_to: date
    generated_at: datetime
    total: int = Field(ge=0)
    per_day: tuple[DayCount, ...] = ()
    by_kind: tuple[Count, ...] = ()
    by_channel: tuple[Count, ...] = ()
    by_topic: tuple[Count, ...] = ()
    campaigns: tuple[CampaignSummary, ...] = Field(default=(), description="Largest first.")
