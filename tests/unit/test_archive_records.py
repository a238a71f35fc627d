"""Turning Kafka records into archive entries: events, raw receipts, unreadable records."""

from __future__ import annotations

import base64

import orjson
import pytest

from services.archive import records
from services.archive.records import UnreadableRecordError
from services.archive.settings import ArchiveTopics
from services.archive.status import RecordType, Status
from shared import events, ids
from tests import archive_samples as samples
from tests.archive_samples import record

TOPICS = ArchiveTopics()


def test_event_is_kept_whole_as_canonical_json_with_unknown_fields() -> None:
    sub = samples.submission()
    data = orjson.loads(samples.encode(samples.accepted(sub)))
    data["added_in_v1_1"] = {"z": 1, "a": [2, 1]}
    entry = records.read(record(TOPICS.accepted, orjson.dumps(data), offset=7), TOPICS)
    assert entry.canonical == orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
    assert '"added_in_v1_1":{"a":[2,1],"z":1}' in entry.canonical
    assert (entry.chain_id, entry.event_type, entry.offset) == (
        sub.submission_id,
        "submission.accepted",
        7,
    )
    assert entry.facts.status is Status.ACCEPTED
    assert (entry.facts.channel, entry.facts.kind, entry.facts.language) == (
        "istitlaa",
        "opinion",
        "ar",
    )


def test_routed_and_notification_events_carry_unit_and_rule() -> None:
    sub = samples.submission()
    routed = records.read(record(TOPICS.routed, samples.encode(samples.routed(sub))), TOPICS)
    sent = records.read(record(TOPICS.notifications, samples.encode(samples.notified(sub))), TOPICS)
    assert (routed.facts.unit, routed.facts.rule_id) == (
        "legislations_office",
        "legislation-reference",
    )
    assert sent.facts.status is Status.NOTIFIED


def test_accepted_event_from_kafka_links_to_its_raw_receipt() -> None:
    source = events.SourcePosition(topic=TOPICS.submissions, partition=2, offset=41)
    entry = records.read(
        record(TOPICS.accepted, samples.encode(samples.accepted(samples.submission(), source))),
        TOPICS,
    )
    receipt = records.read(record(TOPICS.submissions, b"{}", partition=2, offset=41), TOPICS)
    assert entry.facts.receipt_id == receipt.chain_id == ids.position_id(TOPICS.submissions, 2, 41)


def test_raw_receipt_is_kept_as_a_string_keyed_by_its_position() -> None:
    raw = samples.raw_submission()
    entry = records.read(record(TOPICS.submissions, raw, partition=1, offset=9, key=b"k"), TOPICS)
    stored = orjson.loads(entry.canonical)
    assert entry.chain_id == ids.position_id(TOPICS.submissions, 1, 9)
    assert entry.event_id == ids.event_id(entry.chain_id, records.RECEIVED)
    assert stored["raw"] == raw.decode()
    assert stored["raw_encoding"] == "utf-8"
    assert stored["raw_sha256"] == ids.digest(raw)
    assert (stored["key"], stored["source"]["offset"]) == ("k", 9)
    assert entry.facts == records.Facts(RecordType.RECEIPT, Status.RECEIVED, "istitlaa", "opinion")


@pytest.mark.parametrize("raw", [b"\xff\xfe not utf-8", b'{"body": "a\x00b"}', b""])
def test_raw_receipt_that_is_not_clean_text_is_kept_exactly_in_base64(raw: bytes) -> None:
    entry = records.read(record(TOPICS.submissions, raw), TOPICS)
    stored = orjson.loads(entry.canonical)
    if raw:
        assert stored["raw_encoding"] == "base64"
        assert base64.b64decode(stored["raw"]) == raw
    assert "\x00" not in entry.canonical


def test_redelivered_receipt_gets_the_same_event_id() -> None:
    first = records.read(record(TOPICS.submissions, b"x", offset=3), TOPICS)
    again = records.read(record(TOPICS.submissions, b"x", offset=3), TOPICS)
    assert first.event_id == again.event_id
    assert (
        first.event_id != records.read(record(TOPICS.submissions, b"x", offset=4), TOPICS).event_id
    )


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1, 2]", b'{"event_type": "submission.accepted", "email": "x@example.sa"}'],
)
def test_unreadable_record_on_an_internal_topic_raises_without_quoting_it(raw: bytes) -> None:
    with pytest.raises(UnreadableRecordError) as caught:
        records.read(record(TOPICS.routed, raw), TOPICS)
    assert "example.sa" not in str(caught.value)
    assert TOPICS.routed in str(caught.value)


def test_event_with_an_id_of_bad_form_is_unreadable() -> None:
    data = orjson.loads(samples.encode(samples.notified(samples.submission())))
    data["submission_id"] = "$where\x00"
    with pytest.raises(UnreadableRecordError):
        records.read(record(TOPICS.notifications, orjson.dumps(data)), TOPICS)


def test_unreadable_record_on_the_dead_letter_topic_is_archived_raw_not_dead_lettered() -> None:
    entry = records.read(record(TOPICS.deadletter, b"garbage \x00", offset=5), TOPICS)
    stored = orjson.loads(entry.canonical)
    assert entry.event_type == records.UNREADABLE
    assert entry.chain_id == ids.position_id(TOPICS.deadletter, 0, 5)
    assert base64.b64decode(stored["raw"]) == b"garbage \x00"
    assert stored["error"] == "invalid JSON"
    assert entry.facts.record is RecordType.DEADLETTER


def test_dead_letter_of_a_raw_receipt_joins_the_receipt_chain() -> None:
    letter = samples.dead_letter(TOPICS.submissions, 0, 12)
    entry = records.read(record(TOPICS.deadletter, samples.encode(letter)), TOPICS)
    receipt = records.read(record(TOPICS.submissions, b"{}", offset=12), TOPICS)
    assert entry.chain_id == receipt.chain_id
    assert entry.facts.record is RecordType.RECEIPT
    other = records.read(
        record(TOPICS.deadletter, samples.encode(samples.dead_letter(TOPICS.accepted, 0, 1))),
        TOPICS,
    )
    assert other.facts.record is RecordType.DEADLETTER


def test_free_text_never_becomes_a_projection_field() -> None:
    data = orjson.loads(samples.encode(samples.notified(samples.submission())))
    data["payload"]["unit"] = "Voice of {$gt: ''}"
    data["reference"] = "SADA-\u202e"
    entry = records.read(record(TOPICS.notifications, orjson.dumps(data)), TOPICS)
    assert entry.facts.unit is None
    assert entry.reference is None
