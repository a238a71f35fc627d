"""The registry of consultations: legislative projects and their public-views questionnaires.

Configuration, not code (`deploy/config/consultations.yaml`): the Legislations Office adds a
project, its window and its questionnaire by editing YAML. Intake checks answers against it,
the archive and `sada report consultation` title and label the summary of views with it.
An invalid file is refused at start with `file:line: problem` (`shared.config.load`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared import config
from shared.directory import CONFIG_DIR

CONSULTATIONS_PATH = CONFIG_DIR / "consultations.yaml"
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuestionType(StrEnum):
    """How a question is answered."""

    SINGLE_CHOICE = "single_choice"
    """One option id."""
    MULTI_CHOICE = "multi_choice"
    """One or more option ids, separated by commas."""
    SCALE = "scale"
    """A whole number from `min` to `max`."""
    TEXT = "text"
    """Free text."""


class Option(_Strict):
    """One choice of a choice question."""

    id: Id = Field(description="Stable id: what an answer carries.")
    label_ar: str = Field(min_length=1, description="Arabic label.")
    label_en: str = Field(min_length=1, description="English label.")


class Question(_Strict):
    """One question of a project's questionnaire."""

    id: Id = Field(description="Stable id: an answer's `question_id`.")
    text_ar: str = Field(min_length=1, description="The question in Arabic.")
    text_en: str = Field(min_length=1, description="The question in English.")
    type: QuestionType = Field(description="single_choice, multi_choice, scale or text.")
    options: tuple[Option, ...] = Field(default=(), description="For choice questions.")
    min: int | None = Field(default=None, description="Least value of a scale.")
    max: int | None = Field(default=None, description="Greatest value of a scale.")
    required: bool = Field(default=False, description="Must every submission answer it?")

    @model_validator(mode="after")
    def _shape_fits_type(self) -> Self:
        choice = self.type in (QuestionType.SINGLE_CHOICE, QuestionType.MULTI_CHOICE)
        if choice and len(self.options) < 2:
            raise ValueError(f"question {self.id!r}: a {self.type} question needs 2+ options")
        if not choice and self.options:
            raise ValueError(f"question {self.id!r}: only choice questions have options")
        repeated = _repeated(option.id for option in self.options)
        if repeated:
            raise ValueError(
                f"question {self.id!r}: option ids must be unique; repeated: {', '.join(repeated)}"
            )
        if self.type is QuestionType.SCALE:
            if self.min is None or self.max is None or self.min >= self.max:
                raise ValueError(f"question {self.id!r}: a scale needs min < max")
        elif self.min is not None or self.max is not None:
            raise ValueError(f"question {self.id!r}: only a scale has min and max")
        return self

    def option(self, option_id: str) -> Option | None:
        """Return the option with `option_id`, if any."""
        return next((o for o in self.options if o.id == option_id), None)


class Consultation(_Strict):
    """A legislative project out for public views, and its questionnaire."""

    ref: Ref = Field(
        description="The `legislation_ref` submissions carry, e.g. MOJ-DRAFT-2026-003."
    )
    title_ar: str = Field(min_length=1, description="Arabic title.")
    title_en: str = Field(min_length=1, description="English title.")
    opens_at: AwareDatetime = Field(description="Views accepted from (RFC 3339).")
    closes_at: AwareDatetime = Field(description="Views after this are accepted and marked late.")
    link: HttpUrl | None = Field(default=None, description="The project's public page.")
    questions: tuple[Question, ...] = Field(default=(), description="The questionnaire.")

    @field_validator("closes_at")
    @classmethod
    def _closes_after_it_opens(cls, closes_at: datetime, info: ValidationInfo) -> datetime:
        # A field validator, so the error names the `closes_at` line, not the project's first.
        opens_at = info.data.get("opens_at")
        if opens_at is not None and closes_at <= opens_at:
            raise ValueError("closes_at must be after opens_at")
        return closes_at

    @field_validator("questions")
    @classmethod
    def _unique_question_ids(cls, questions: tuple[Question, ...]) -> tuple[Question, ...]:
        repeated = _repeated(question.id for question in questions)
        if repeated:
            raise ValueError(f"question ids must be unique; repeated: {', '.join(repeated)}")
        return questions

    def question(self, question_id: str) -> Question | None:
        """Return the question with `question_id`, if any."""
        return next((q for q in self.questions if q.id == question_id), None)

    def is_open(self, at: datetime) -> bool:
        """Return True when `at` falls within the consultation's window."""
        return self.opens_at <= at <= self.closes_at


class ConsultationsFile(_Strict):
    """Schema of `consultations.yaml`: `consultations: [...]`."""

    consultations: tuple[Consultation, ...] = Field(default=())

    @field_validator("consultations")
    @classmethod
    def _unique_refs(cls, consultations: tuple[Consultation, ...]) -> tuple[Consultation, ...]:
        repeated = _repeated(consultation.ref for consultation in consultations)
        if repeated:
            raise ValueError(f"consultation refs must be unique; repeated: {', '.join(repeated)}")
        return consultations


def _repeated(values: Iterable[str]) -> list[str]:
    """Return the values that occur more than once, in order of their second occurrence."""
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


def load_consultations(path: Path | str = CONSULTATIONS_PATH) -> dict[str, Consultation]:
    """Return the registry by ref; raise `ConfigError` (file:line: problem) when invalid."""
    return {c.ref: c for c in config.load(path, ConsultationsFile).consultations}
