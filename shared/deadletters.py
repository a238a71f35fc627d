"""What `sada deadletter` decides, free of Kafka.

Which dead letters match, how they print, what a redrive re-publishes and the
`message.redriven` event that records it.

The Kafka side (reading the topic, fetching the original record, publishing) is in
`shared.deadletter_kafka`; the command line in `shared.deadletter_cli`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import orjson
from pydantic import ValidationError

from shared import events, ids

DEADLETTERED: Final = "message.deadlettered"
REDRIVEN: Final = "message.redriven"

_RELATIVE: Final = re.compile(r"(\d+)\s*([smhd])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class BadTimeError(ValueError):
    """A `--since`/`--until` value that is neither ISO 8601 nor a relative duration."""


def parse_moment(text: str, *, now: datetime) -> datetime:
    """Return the UTC moment of `text`: ISO 8601 (naive means UTC) or `30m`/`2h`/`7d` ago."""
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return now - timedelta(**{unit: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadTimeError(
            f"{text!r} is neither ISO 8601 nor a duration like 30m, 2h, 7d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters an operator means; every given criterion must hold."""

    ids: Collection[str] = ()
    topic: str | None = None
    reason: str | None = None
    service: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        """True when nothing narrows the selection (every dead letter matches)."""
        return not (
            self.ids or self.topic or self.reason or self.service or self.since or self.until
        )

    def matches(self, letter: events.MessageDeadLettered) -> bool:
        """Return whether `letter` is selected."""
        payload = letter.payload
        if self.ids and letter.event_id not in self.ids:
            return False
        if self.topic is not None and payload.source.topic != self.topic:
            return False
        if self.service is not None and payload.service != self.service:
            return False
        if self.reason is not None and not reason_matches(payload.error, self.reason):
            return False
        if self.since is not None and letter.occurred_at < self.since:
            return False
        return self.until is None or letter.occurred_at < self.until


def error_class(error: str) -> str:
    """Return the error's class name: the dead-letter `error` is `"Class: message"`."""
    return error.split(":", 1)[0].strip()


def reason_matches(error: str, reason: str) -> bool:
    """Return whether `reason` is the error's class, or text found in the error (any case)."""
    wanted = reason.strip().casefold()
    return error_class(error).casefold() == wanted or wanted in error.casefold()


def parse_record(value: bytes | None) -> events.MessageDeadLettered | events.MessageRedriven | None:
    """Return the dead-letter topic record as an event, or None for anything else on it."""
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        if data.get("event_type") == DEADLETTERED:
            return events.MessageDeadLettered.model_validate(data)
        if data.get("event_type") == REDRIVEN:
            return events.MessageRedriven.model_validate(data)
    except ValidationError:
        return None
    return None


def row(letter: events.MessageDeadLettered, *, width: int = 60) -> str:
    """Return one line of the `list` table (no raw bytes: they may hold personal data)."""
    payload, source = letter.payload, letter.payload.source
    error = " ".join(payload.error.split())
    if len(error) > width:
        error = error[: width - 1] + "…"
    when = letter.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    position = f"{source.topic}:{source.partition}:{source.offset}"
    return f"{letter.event_id}  {when}  {payload.service:<9} {position:<34} {error}"


HEADER: Final = f"{'ID':<36}  {'WHEN (UTC)':<20}  {'SERVICE':<9} {'SOURCE':<34} ERROR"


@dataclass(frozen=True, slots=True)
class Original:
    """The bytes a redrive re-publishes, with the key and headers they travelled with."""

    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    origin: Literal["source", "deadletter"]


def from_dead_letter(letter: events.MessageDeadLettered) -> Original | None:
    """Return the original message as the dead letter carries it, or None when it is incomplete.

    The dead letter's `raw` is text: truncated past 16,384 characters and with invalid UTF-8 and
    NUL replaced by U+FFFD. Only when its encoding has exactly the original size and holds no
    U+FFFD is it the original byte for byte; anything else would re-publish a different message.
    """
    payload = letter.payload
    value = payload.raw.encode()
    if len(value) != payload.raw_size_bytes or "\ufffd" in payload.raw:
        return None
    key = payload.key.encode() if payload.key is not None else None
    return Original(value, key, (), "deadletter")


def redriven_event(
    letter: events.MessageDeadLettered,
    original: Original,
    target: events.SourcePosition,
    producer: events.Producer,
) -> events.MessageRedriven:
    """Return the `message.redriven` event for one re-published copy, on the dead letter's chain.

    Its id derives from the dead letter and the copy's position: each redrive is its own event,
    and publishing the same one again (a retried send) is a repeat the archive ignores.
    """
    return events.build(
        events.MessageRedriven,
        submission_id=letter.submission_id,
        reference=letter.reference,
        payload=events.RedrivePayload(
            deadletter_event_id=letter.event_id,
            source=letter.payload.source,
            target=target,
            raw_sha256=ids.digest(original.value),
            raw_size_bytes=len(original.value),
            raw_from=original.origin,
        ),
        discriminator=f"{letter.event_id}:{target.topic}:{target.partition}:{target.offset}",
        producer=producer,
        correlation_id=letter.correlation_id,
    )


def shown(
    letter: events.MessageDeadLettered,
    position: events.SourcePosition,
    redrives: list[events.MessageRedriven],
) -> dict[str, Any]:
    """Return what `show` prints: the dead letter whole, where it is, and its redrives."""
    return {
        "position": position.model_dump(),
        "event": letter.model_dump(mode="json"),
        "redrives": [r.model_dump(mode="json") for r in redrives],
    }
