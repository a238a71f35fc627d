"""Grouped events for the summary of views' tests: answers, marks, campaigns, edits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shared import events, ids
from shared.models import Answer, ConsultationMark, Kind, Submission
from tests import archive_samples as samples

REGISTRY = Path(__file__).parent / "fixtures" / "consultations.yaml"
LAW = samples.LEGISLATION_REF
OTHER_LAW = "MOJ-UNKNOWN-1"
VOC = "voice_of_customer"


def submission(
    body: str,
    *,
    answers: dict[str, str] | None = None,
    legislation_ref: str | None = LAW,
    late: bool = False,
    registered: bool = True,
    channel: str = "istitlaa",
    kind: Kind = Kind.CONSULTATION_RESPONSE,
    day: int = 25,
    ref: str | None = None,
    topic: str | None = None,
) -> Submission:
    """Return a submission on `legislation_ref` (or none) with answers and intake's mark."""
    sub = samples.submission(channel, kind, ref=ref, legislation_ref=legislation_ref, body=body)
    mark = ConsultationMark(registered=registered, late=late) if legislation_ref else None
    return sub.model_copy(
        update={
            "answers": tuple(Answer(question_id=q, answer=a) for q, a in (answers or {}).items()),
            "consultation": mark,
            "submitted_at": datetime(2026, 11, day, 7, 0, tzinfo=UTC),
            "topic": topic,
            "subject": None,
        }
    )


def grouped(
    sub: Submission, first: Submission | None = None, size: int = 2
) -> events.SubmissionGrouped:
    """Return the grouped event of `sub`: alone, or the `size`-th member of `first`'s campaign."""
    unit = "legislations_office" if sub.legislation_ref else VOC
    campaign = samples.member(first, size, unit=unit) if first is not None else None
    event = samples.grouped(sub, campaign, unit)
    # As in production, the event id follows the content (an edit is a new event).
    content = ids.digest(sub.model_dump_json().encode())
    return event.model_copy(
        update={"event_id": ids.event_id(sub.submission_id, event.event_type, content)}
    )
