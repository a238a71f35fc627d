import re
import uuid

import pytest

from shared import events, ids
from shared.events import ANY_EVENT, NotificationPayload, NotificationSent, Producer

PRODUCER = Producer(service="test", version="1")


def test_submission_id_is_stable_for_channel_and_ref() -> None:
    first = ids.submission_id("istitlaa", "IST-1", "digest-a")
    again = ids.submission_id("istitlaa", "IST-1", "digest-b")
    assert first == again
    assert uuid.UUID(first).version == 5


def test_submission_id_differs_across_channels_with_the_same_ref() -> None:
    assert ids.submission_id("email", "X-1", "d") != ids.submission_id("survey", "X-1", "d")


def test_submission_id_without_ref_follows_the_content() -> None:
    assert ids.submission_id("email", None, "a") != ids.submission_id("email", None, "b")
    assert ids.submission_id("email", None, "a") == ids.submission_id("email", None, "a")


def test_reference_is_short_crockford_code_derived_from_the_id() -> None:
    sid = ids.submission_id("email", "X-1", "d")
    ref = ids.reference(sid)
    assert re.fullmatch(r"SADA-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", ref)
    assert ids.reference(sid) == ref
    assert ids.reference(ids.submission_id("email", "X-2", "d")) != ref


def test_event_id_is_deterministic_and_depends_on_every_part() -> None:
    base = ids.event_id("s", "submission.accepted", "x")
    assert base == ids.event_id("s", "submission.accepted", "x")
    assert base != ids.event_id("s", "submission.routed", "x")
    assert base != ids.event_id("s", "submission.accepted", "y")
    assert base != ids.event_id("t", "submission.accepted", "x")


def _sent(discriminator: str = "u") -> NotificationSent:
    return events.build(
        NotificationSent,
        submission_id="s-1",
        reference="SADA-0000-0000",
        payload=NotificationPayload(unit="u", mailbox="u@example.org", message_id="<m@x>"),
        discriminator=discriminator,
        producer=PRODUCER,
    )


def test_built_event_replays_with_the_same_event_id() -> None:
    assert _sent().event_id == _sent().event_id
    assert _sent().event_id != _sent("other").event_id
    assert _sent().correlation_id == "s-1"


def test_any_event_parses_by_event_type_and_ignores_unknown_fields() -> None:
    data = _sent().model_dump(mode="json")
    data["added_in_a_later_minor_version"] = True
    parsed = ANY_EVENT.validate_python(data)
    assert isinstance(parsed, NotificationSent)
    assert parsed.payload.mailbox == "u@example.org"


def test_events_are_frozen() -> None:
    event = _sent()
    with pytest.raises(ValueError, match="frozen"):
        event.reference = "other"  # type: ignore[misc]


def test_raw_text_replaces_invalid_utf8_and_nul_and_truncates() -> None:
    text = events.raw_text(b"ok\x00\xff" + b"a" * 100_000)
    assert "\x00" not in text
    assert text.startswith("ok\ufffd\ufffd")
    assert len(text) == events.RAW_TRUNCATE_CHARS
