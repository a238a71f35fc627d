"""Intake's Kafka door: raw submissions in, accepted/rejected events out, commit after the acks.

Upstream channels are untrusted down to their record headers: FastStream's batch parser decodes
every header value as UTF-8 and would fail the whole batch, before the handler, on one record
with a binary header. `tolerant_batch_parser` makes such header values text first, so the record
is judged on its value like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from services.intake import metrics
from services.intake.outcomes import Destinations, outcomes_of
from services.intake.settings import IntakeSettings
from services.intake.validation import Rejected
from shared.consultations import Consultation
from shared.events import Producer
from shared.kafka import BatchRunner, Record, batch_subscriber, produce_all
from shared.logging import get_logger

log = get_logger(__name__)

BatchParser = Callable[[tuple[Record, ...]], Awaitable[StreamMessage[Any]]]


async def tolerant_batch_parser(
    records: tuple[Record, ...], original: BatchParser
) -> StreamMessage[Any]:
    """Run FastStream's batch parser on records whose header values are all valid UTF-8."""
    return await original(tuple(_text_headers(record) for record in records))


def _text_headers(record: Record) -> Record:
    headers = tuple(record.headers or ())
    if all(_is_text(value) for _, value in headers):
        return record
    safe = [(key, (value or b"").decode("utf-8", "replace").encode()) for key, value in headers]
    return dataclasses.replace(record, headers=safe)


def _is_text(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def register(
    broker: KafkaBroker,
    *,
    settings: IntakeSettings,
    runner: BatchRunner,
    channels: Collection[str],
    consultations: Mapping[str, Consultation],
    producer: Producer,
) -> None:
    """Subscribe intake's consumer group to the raw submissions topic."""
    to = Destinations(accepted=settings.accepted_topic, rejected=settings.rejected_topic)

    async def work(records: Sequence[Record]) -> None:
        with structlog.contextvars.bound_contextvars(records=len(records)):
            now = datetime.now(UTC)
            outcomes = outcomes_of(
                records,
                channels=channels,
                consultations=consultations,
                now=now,
                producer=producer,
                to=to,
            )
            await produce_all(broker, (outcome.outgoing for outcome in outcomes))
            for outcome in outcomes:
                metrics.count(outcome.result, door="kafka", channels=channels)
                _log_rejection(outcome.result)

    @batch_subscriber(
        broker,
        settings.submissions_topic,
        group_id=settings.group_id,
        settings=settings.kafka,
        parser=tolerant_batch_parser,
        description="Raw submissions from upstream channels (RawSubmission JSON).",
    )
    async def on_submissions(_bodies: list[bytes], msg: KafkaMessage) -> None:
        """Validate a batch; publish one event per record; commit after Kafka acknowledged."""
        await runner.run(msg, work)


def _log_rejection(result: object) -> None:
    if isinstance(result, Rejected):
        log.info(
            "submission rejected",
            submission_id=result.submission_id,
            codes=sorted({reason.code for reason in result.reasons}),
        )
