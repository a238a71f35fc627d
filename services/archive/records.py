"""Turn a consumed Kafka record into an archive `Entry`: identity, canonical text and facts.

- An internal event is parsed with `ANY_EVENT` (the contract) but stored as the canonical JSON of
  the *whole* object as received (sorted keys, unknown v1 fields kept): the archive keeps what was
  said, not what today's model understands. It is a string, never a document: its keys are
  untrusted and FerretDB refuses `$`/`.` keys and NUL.
- A raw receipt (`feedback.submissions.v1`) has no submission id yet; it becomes a
  `submission.received` entry keyed by its Kafka position (`ids.position_id`). Intake's
  accepted/rejected events carry that position as `payload.source`, which links the two chains.
- A `submission.grouped` event (the campaigns service's decision) is a link of its submission's
  chain like every other, with the status `grouped` (between routed and the notification, which
  the notifier sends from it); when it names a campaign, the entry carries that membership for
  the `campaigns` projection (`campaigns.py`).
- A `message.redriven` event (`sada deadletter redrive`) goes on its dead letter's chain.
- A record on the dead-letter topic that is not a dead-letter event is archived as
  `message.unreadable` instead of being dead-lettered again, which would loop forever. Should
  storing a dead-letter record fail for a reason of its own, the batch runner skips it with an
  error log and `sada_deadletter_unhandled_total` (alert `SadaDeadLetterUnhandled`), and never
  dead-letters it again (see `shared.kafka.BatchRunner`).
- Any other record that is not a v1 event raises `UnreadableRecordError`: the batch runner sends
  it to the dead-letter topic, whence it comes back as a `message.deadlettered` event.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from services.archive.aggregates import Fact, fact_of
from services.archive.campaigns import Membership, membership
from services.archive.settings import ArchiveTopics
from services.archive.status import RANK, RecordType, Status
from shared import events, ids
from shared.kafka import Record
from shared.models import Kind

RECEIVED: Final = "submission.received"
UNREADABLE: Final = "message.unreadable"

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_FACT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_KINDS: Final = frozenset(kind.value for kind in Kind)

STATUS_OF: Final[dict[str, Status]] = {
    "submission.accepted": Status.ACCEPTED,
    "submission.rejected": Status.REJECTED,
    "submission.routed": Status.ROUTED,
    "submission.grouped": Status.GROUPED,
    "notification.sent": Status.NOTIFIED,
    "notification.failed": Status.NOTIFICATION_FAILED,
    "notification.deferred": Status.NOTIFICATION_DEFERRED,
    "message.deadlettered": Status.DEADLETTERED,
    "message.redriven": Status.DEADLETTERED,  # the copy makes its own chain; this one stays
    RECEIVED: Status.RECEIVED,
    UNREADABLE: Status.DEADLETTERED,
}


class UnreadableRecordError(ValueError):
    """A record on an internal topic is not a v1 event; the message names no personal data."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What the submissions projection learns from one entry (safe identifiers only)."""

    record: RecordType
    status: Status
    channel: str | None = None
    kind: str | None = None
    language: str | None = None
    unit: str | None = None
    rule_id: str | None = None
    receipt_id: str | None = None

    @property
    def rank(self) -> int:
        """The status's rank: higher never yields to lower."""
        return RANK[self.status]


@dataclass(frozen=True, slots=True)
class Entry:
    """One consumed record, ready to be put on its chain."""

    event_id: str
    chain_id: str
    event_type: str
    reference: str | None
    topic: str
    partition: int
    offset: int
    occurred_at: datetime
    canonical: str
    facts: Facts
    campaign: Membership | None = None
    """The campaign a `submission.grouped` event says its submission joined, if any."""
    report: Fact | None = None
    """What a `submission.grouped` event adds to the report aggregates (`aggregates.py`)."""
    key_id: str | None = None
    """The data key its personal data is sealed under (`privacy.py`), once protected."""


def read(record: Record, topics: ArchiveTopics) -> Entry:
    """Return the entry for `record`; raise `UnreadableRecordError` for a bad internal record."""
    if record.topic == topics.submissions:
        return _receipt(record)
    raw = record.value or b""
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise UnreadableRecordError(f"{record.topic} record is JSON but not an object")
        event = events.ANY_EVENT.validate_python(data)
        if not (_ID.fullmatch(event.event_id) and _ID.fullmatch(event.submission_id)):
            raise UnreadableRecordError(f"{record.topic} record has an id of bad form")
    except (orjson.JSONDecodeError, ValidationError, UnreadableRecordError) as exc:
        if record.topic == topics.deadletter:
            return _unreadable(record, _describe(exc))
        if isinstance(exc, UnreadableRecordError):
            raise
        problem = _describe(exc)
        raise UnreadableRecordError(f"{record.topic} record is not a v1 event: {problem}") from None
    return Entry(
        event_id=event.event_id,
        chain_id=event.submission_id,
        event_type=event.event_type,
        reference=_safe(event.reference),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        occurred_at=event.occurred_at,
        canonical=canonical_json(data),
        facts=_facts(event, topics),
        campaign=membership(event) if isinstance(event, events.SubmissionGrouped) else None,
        report=(
            fact_of(event, record.partition, record.offset)
            if isinstance(event, events.SubmissionGrouped)
            else None
        ),
    )


def canonical_json(data: Any) -> str:
    """Return the canonical text that is hashed and stored: JSON with keys sorted at every level.

    orjson escapes NUL and control characters, so the text is always storable.
    """
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def raw_string(raw: bytes) -> tuple[str, str]:
    """Return raw bytes as a storable string and its encoding, losing nothing.

    Valid UTF-8 without NUL stays text (`utf-8`); anything else is base64 (`base64`).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"
    if "\x00" in text:
        return base64.b64encode(raw).decode(), "base64"
    return text, "utf-8"


def _facts(event: events.AnyEvent, topics: ArchiveTopics) -> Facts:
    status = STATUS_OF[event.event_type]
    match event:
        case events.SubmissionAccepted() | events.SubmissionRouted() | events.SubmissionGrouped():
            sub = event.payload.submission
            unit = rule = None
            if isinstance(event, events.SubmissionRouted | events.SubmissionGrouped):
                unit, rule = event.payload.decision.unit, event.payload.decision.rule_id
            receipt = None
            if isinstance(event, events.SubmissionAccepted):
                receipt = _position(event.payload.source)
            return Facts(
                record=RecordType.SUBMISSION,
                status=status,
                channel=_safe(sub.channel),
                kind=sub.kind.value,
                language=sub.language,
                unit=_safe(unit),
                rule_id=_safe(rule),
                receipt_id=receipt,
            )
        case events.SubmissionRejected():
            return Facts(
                record=RecordType.SUBMISSION,
                status=status,
                channel=_safe(event.payload.channel),
                receipt_id=_position(event.payload.source),
            )
        case (
            events.NotificationSent() | events.NotificationFailed() | events.NotificationDeferred()
        ):
            unit = _safe(event.payload.unit)
            return Facts(record=RecordType.SUBMISSION, status=status, unit=unit)
        case events.MessageDeadLettered() | events.MessageRedriven():
            from_receipt = event.payload.source.topic == topics.submissions
            record = RecordType.RECEIPT if from_receipt else RecordType.DEADLETTER
            return Facts(record=record, status=status)
    raise AssertionError(event.event_type)  # pragma: no cover - the union is exhaustive


def _receipt(record: Record) -> Entry:
    chain_id = ids.position_id(record.topic, record.partition, record.offset)
    raw = record.value or b""
    data = _raw_document(record, chain_id, RECEIVED)
    channel = kind = None
    try:  # best effort, for listing receipts that intake has not handled yet
        claimed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        claimed = None
    if isinstance(claimed, dict):
        channel = _safe(claimed.get("channel"))
        kind = claimed.get("kind") if claimed.get("kind") in _KINDS else None
    return _raw_entry(
        record, chain_id, data, Facts(RecordType.RECEIPT, Status.RECEIVED, channel, kind)
    )


def _unreadable(record: Record, reason: str) -> Entry:
    chain_id = ids.position_id(record.topic, record.partition, record.offset)
    data = _raw_document(record, chain_id, UNREADABLE)
    data["error"] = reason
    return _raw_entry(record, chain_id, data, Facts(RecordType.DEADLETTER, Status.DEADLETTERED))


def _raw_document(record: Record, chain_id: str, event_type: str) -> dict[str, Any]:
    raw = record.value or b""
    text, encoding = raw_string(raw)
    key, key_encoding = raw_string(record.key) if record.key is not None else (None, None)
    stamp = record.timestamp / 1000 if record.timestamp and record.timestamp > 0 else None
    occurred = datetime.fromtimestamp(stamp, UTC) if stamp else datetime.now(UTC)
    return {
        "event_id": ids.event_id(chain_id, event_type),
        "event_type": event_type,
        "schema_version": events.SCHEMA_VERSION,
        "submission_id": chain_id,
        "reference": ids.reference(chain_id),
        "occurred_at": occurred.isoformat(),
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "key": key,
        "key_encoding": key_encoding,
        "raw": text,
        "raw_encoding": encoding,
        "raw_size_bytes": len(raw),
        "raw_sha256": ids.digest(raw),
    }


def _raw_entry(record: Record, chain_id: str, data: dict[str, Any], facts: Facts) -> Entry:
    return Entry(
        event_id=data["event_id"],
        chain_id=chain_id,
        event_type=data["event_type"],
        reference=data["reference"],
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
        canonical=canonical_json(data),
        facts=facts,
    )


def _position(source: events.SourcePosition | None) -> str | None:
    return ids.position_id(source.topic, source.partition, source.offset) if source else None


def _safe(value: object) -> str | None:
    """Keep a projection field only when it is a plain identifier (never free text)."""
    return value if isinstance(value, str) and _FACT.fullmatch(value) else None


def _describe(exc: BaseException) -> str:
    """Say what is wrong without quoting the input, which may hold personal data."""
    if isinstance(exc, ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['type']}"
            for error in exc.errors(include_input=False, include_url=False)[:5]
        ]
        return "; ".join(problems)
    if isinstance(exc, orjson.JSONDecodeError):
        return "invalid JSON"
    return str(exc)
