"""`sada deadletter`'s decisions without Kafka: selection, time forms, what may be redriven."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from services.archive.records import read
from services.archive.settings import ArchiveTopics
from services.archive.status import RecordType, Status
from shared import deadletters, events, ids, topics
from shared.cli import app
from shared.deadletters import BadTimeError, Original, Selection, parse_moment
from tests.archive_samples import PRODUCER, dead_letter, encode, record

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _letter(raw: bytes, *, error: str = "ValidationError: 2 errors") -> events.MessageDeadLettered:
    letter = dead_letter(topics.ROUTED, 2, 41)
    payload = letter.payload.model_copy(
        update={"raw": events.raw_text(raw), "raw_size_bytes": len(raw), "error": error}
    )
    return letter.model_copy(update={"payload": payload, "occurred_at": NOW})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-12-01T10:00:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T13:00:00+03:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
    ],
)
def test_moments_are_iso_8601_in_utc_or_durations_ago(text: str, expected: datetime) -> None:
    assert parse_moment(text, now=NOW) == expected


def test_a_moment_in_another_form_is_refused() -> None:
    with pytest.raises(BadTimeError, match="neither ISO 8601 nor a duration"):
        parse_moment("yesterday", now=NOW)


def test_every_criterion_of_a_selection_must_hold() -> None:
    letter = _letter(b"{}")
    assert Selection().empty
    assert Selection(topic=topics.ROUTED, reason="validationerror").matches(letter)
    assert Selection(reason="2 ERRORS").matches(letter)  # text inside the error
    assert not Selection(reason="KeyError").matches(letter)
    assert not Selection(topic=topics.ROUTED, service="archive").matches(letter)
    assert not Selection(topic=topics.ACCEPTED).matches(letter)
    assert Selection(since=NOW, until=NOW + timedelta(seconds=1)).matches(letter)
    assert not Selection(until=NOW).matches(letter)  # until is exclusive
    assert not Selection(since=NOW + timedelta(seconds=1)).matches(letter)
    assert Selection(ids={letter.event_id}).matches(letter)
    assert not Selection(ids={"other"}, topic=topics.ROUTED).matches(letter)


def test_only_a_complete_lossless_copy_is_redriven_from_the_dead_letter() -> None:
    exact = b'{"body": "\xd8\xb1\xd8\xa3\xd9\x8a"}'
    original = deadletters.from_dead_letter(_letter(exact))
    assert original == Original(exact, None, (), "deadletter")
    truncated = b"x" * (events.RAW_TRUNCATE_CHARS + 1)
    assert deadletters.from_dead_letter(_letter(truncated)) is None
    assert deadletters.from_dead_letter(_letter(b'{"a": "\xff\xfe\xfd"}')) is None
    assert deadletters.from_dead_letter(_letter(b'{"a": "\x00"}')) is None


def test_a_list_row_never_shows_the_raw_bytes() -> None:
    letter = _letter(b'{"email": "someone@example.sa"}', error="ValueError: bad\nthing " * 20)
    row = deadletters.row(letter)
    assert "someone@example.sa" not in row
    assert row.startswith(f"{letter.event_id}  2026-12-03T08:00:00Z  router    ")
    assert f"{topics.ROUTED}:2:41" in row
    assert "\n" not in row
    assert row.endswith("…")


def test_the_redrive_event_is_one_per_copy_on_the_dead_letters_chain_and_archived() -> None:
    letter = _letter(b"{}")
    original = Original(b"{}", b"k", (), "source")
    target = events.SourcePosition(topic=topics.ROUTED, partition=2, offset=99)
    event = deadletters.redriven_event(letter, original, target, PRODUCER)
    again = deadletters.redriven_event(letter, original, target, PRODUCER)
    other = deadletters.redriven_event(
        letter, original, target.model_copy(update={"offset": 100}), PRODUCER
    )
    assert event.event_id == again.event_id != other.event_id
    assert (event.submission_id, event.correlation_id) == (
        letter.submission_id,
        letter.submission_id,
    )
    assert event.payload.raw_sha256 == ids.digest(b"{}")
    assert deadletters.parse_record(encode(event)) == event
    assert deadletters.parse_record(encode(letter)) == letter
    assert deadletters.parse_record(b"\x00 nope") is None
    assert deadletters.parse_record(b'{"event_type": "message.redriven"}') is None
    entry = read(record(topics.DEADLETTER, encode(event)), ArchiveTopics())
    assert (entry.event_type, entry.chain_id) == ("message.redriven", letter.submission_id)
    assert (entry.facts.record, entry.facts.status) == (RecordType.DEADLETTER, Status.DEADLETTERED)


def test_the_help_documents_list_show_and_redrive() -> None:
    result = CliRunner().invoke(app, ["deadletter", "--help"])
    assert result.exit_code == 0
    for command in ("list", "show", "redrive"):
        assert f"│ {command} " in result.stdout
    help_of = {
        c: CliRunner().invoke(app, ["deadletter", c, "--help"]).stdout for c in ("list", "redrive")
    }
    for option in ("--topic", "--reason", "--since", "--until"):
        assert option in help_of["list"]
        assert option in help_of["redrive"]
    assert "--json" in help_of["list"]
    assert "--yes" in help_of["redrive"]
    assert "dry run" in help_of["redrive"]


def test_the_cli_module_does_not_import_kafka_until_a_command_runs() -> None:
    code = "import sys, shared.deadletter_cli; print('aiokafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
