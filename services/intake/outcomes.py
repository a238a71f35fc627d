"""What intake publishes for a validation result: `submission.accepted` or `.rejected`.

Pure functions shared by both doors. Events are deterministic: the accepted event's id is
derived from the submission id and the content digest, the rejected event's from the raw bytes'
digest, so a redelivered message yields the same event id and the archive sees a repeat.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.intake.validation import Accepted, Rejected, validate
from shared import events
from shared.consultations import Consultation
from shared.events import Door, SourcePosition
from shared.kafka import Outgoing, Record


@dataclass(frozen=True, slots=True)
class Destinations:
    """Where intake's events go (overridable so tests use their own topics)."""

    accepted: str
    rejected: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One validated message and the record to produce for it."""

    result: Accepted | Rejected
    outgoing: Outgoing


def event_for(
    result: Accepted | Rejected,
    raw: bytes,
    *,
    door: Door,
    source: SourcePosition | None,
    producer: events.Producer,
) -> events.SubmissionAccepted | events.SubmissionRejected:
    """Return the event that records `result`."""
    if isinstance(result, Accepted):
        submission = result.submission
        return events.build(
            events.SubmissionAccepted,
            submission_id=submission.submission_id,
            reference=submission.reference,
            payload=events.AcceptedPayload(submission=submission, door=door, source=source),
            discriminator=result.digest,
            producer=producer,
        )
    return events.build(
        events.SubmissionRejected,
        submission_id=result.submission_id,
        reference=result.reference,
        payload=events.RejectedPayload(
            reasons=result.reasons,
            raw=events.raw_text(raw),
            raw_size_bytes=len(raw),
            raw_sha256=result.digest,
            channel=result.channel,
            door=door,
            source=source,
        ),
        discriminator=result.digest,
        producer=producer,
    )


def outcome_of(
    raw: bytes,
    *,
    channels: Collection[str],
    consultations: Mapping[str, Consultation],
    now: datetime,
    door: Door,
    source: SourcePosition | None,
    producer: events.Producer,
    to: Destinations,
) -> Outcome:
    """Validate `raw` and return the result with the record to produce, keyed by submission."""
    result = validate(raw, channels=channels, now=now, consultations=consultations)
    event = event_for(result, raw, door=door, source=source, producer=producer)
    topic = to.accepted if isinstance(result, Accepted) else to.rejected
    return Outcome(result, Outgoing(topic, event.submission_id, event.model_dump_json().encode()))


def outcomes_of(
    records: Sequence[Record],
    *,
    channels: Collection[str],
    consultations: Mapping[str, Consultation],
    now: datetime,
    producer: events.Producer,
    to: Destinations,
) -> list[Outcome]:
    """Validate a consumed batch: one outcome per record, in order (never raises per record)."""
    return [
        outcome_of(
            record.value or b"",
            channels=channels,
            consultations=consultations,
            now=now,
            door="kafka",
            source=SourcePosition(
                topic=record.topic, partition=record.partition, offset=record.offset
            ),
            producer=producer,
            to=to,
        )
        for record in records
    ]
