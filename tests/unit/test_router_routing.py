"""The router's batch work: accepted events in, routed events out, with deterministic ids."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.router import config, routing
from shared import events, ids
from shared.kafka import Record
from tests.router_support import EXPECTED, accepted, samples

RULES = config.load()
PRODUCER = events.Producer(service="router", version="test")


def record(value: bytes, offset: int = 0) -> Record:
    return ConsumerRecord(
        topic="accepted",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=(),
    )


def route(*values: bytes) -> routing.RoutedBatch:
    records = [record(value, offset) for offset, value in enumerate(values)]
    return routing.route_records(records, config=RULES, producer=PRODUCER, topic="routed")


def test_each_accepted_sample_becomes_a_routed_event_keyed_by_its_campaign_scope() -> None:
    subs = samples()
    batch = route(*(accepted(sub).model_dump_json().encode() for sub in subs))
    assert {item.topic for item in batch.outgoing} == {"routed"}
    for line, item in enumerate(batch.outgoing, start=1):
        routed = events.SubmissionRouted.model_validate_json(item.value)
        decision = routed.payload.decision
        ref = routed.payload.submission.legislation_ref
        assert item.key == (f"legislation:{ref}" if ref else f"unit:{decision.unit}")
        assert (decision.unit, decision.rule_id) == EXPECTED[line]
        assert routed.payload.submission == subs[line - 1]


def test_the_routed_event_keeps_ids_and_correlation_and_is_replay_stable() -> None:
    sub = samples()[11]
    event = accepted(sub, correlation_id="corr-123")
    first = events.SubmissionRouted.model_validate_json(
        route(event.model_dump_json().encode()).outgoing[0].value
    )
    again = events.SubmissionRouted.model_validate_json(
        route(event.model_dump_json().encode()).outgoing[0].value
    )
    assert first.event_id == again.event_id
    assert first.event_id == ids.event_id(
        sub.submission_id, "submission.routed", f"{RULES.version}:{event.event_id}"
    )
    assert (first.submission_id, first.reference) == (sub.submission_id, sub.reference)
    assert first.correlation_id == "corr-123"
    assert first.producer == PRODUCER
    assert first.payload.decision.rules_version == RULES.version


def test_a_rule_change_gives_the_routed_event_a_new_id(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("rules:\n  - {id: all, unit: voice_of_customer}\n", "utf-8")
    other = config.load(path)
    event = accepted(samples()[0])
    before = routing.routed_event(event, RULES, PRODUCER)
    after = routing.routed_event(event, other, PRODUCER)
    assert before.event_id != after.event_id


def test_an_edited_resubmission_gives_the_routed_event_a_new_id() -> None:
    sub = samples()[0]
    edited = sub.model_copy(update={"body": f"{sub.body} (edited)"})
    first, second = accepted(sub), accepted(edited).model_copy(update={"event_id": "other"})
    assert first.submission_id == second.submission_id
    before = routing.routed_event(first, RULES, PRODUCER)
    after = routing.routed_event(second, RULES, PRODUCER)
    assert before.event_id != after.event_id


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b'{"event_type": "submission.rejected"}',
        b'{"event_type": "submission.accepted", "payload": {}}',
    ],
)
def test_a_record_that_is_not_an_accepted_event_raises_for_dead_lettering(value: bytes) -> None:
    good = accepted(samples()[0]).model_dump_json().encode()
    with pytest.raises(ValidationError):
        route(good, value)


def test_decisions_are_counted_by_unit_and_rule_only_when_asked() -> None:
    def counted(unit: str, rule: str) -> float:
        value = REGISTRY.get_sample_value(
            "sada_routing_decisions_total", {"unit": unit, "rule": rule}
        )
        return value or 0.0

    before = counted("voice_of_customer", "default")
    batch = route(*(accepted(sub).model_dump_json().encode() for sub in samples()))
    assert counted("voice_of_customer", "default") == before
    batch.count()
    defaults = sum(1 for unit_rule in EXPECTED.values() if unit_rule[1] == "default")
    assert counted("voice_of_customer", "default") == before + defaults


def test_the_routed_event_is_valid_json_for_any_consumer() -> None:
    value = route(accepted(samples()[0]).model_dump_json().encode()).outgoing[0].value
    document = orjson.loads(value)
    assert document["event_type"] == "submission.routed"
    assert document["payload"]["decision"]["matched"] == [
        {"field": "legislation_ref", "value": "MOJ-DRAFT-2026-003"}
    ]
