"""The published contract documents: complete, current, and picking up new events by themselves."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

import pytest
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import Field

from deploy import contracts
from shared import contract, events, topics
from shared.models import Submission
from shared.settings import KafkaSettings

RELEASE = "9.9.9"


def document() -> dict[str, Any]:
    value: dict[str, Any] = contract.build(RELEASE).to_jsonable()
    return value


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def payload_schemas(doc: dict[str, Any], topic: str) -> set[str]:
    """Return the names of the schemas a topic's messages carry (one, or each of a oneOf)."""
    (message_ref,) = (m["$ref"] for m in doc["channels"][topic]["messages"].values())
    payload = resolve(doc, message_ref)["payload"]
    schema = resolve(doc, payload["$ref"])
    members = schema.get("oneOf", [payload])
    return {member["$ref"].rsplit("/", 1)[1] for member in members}


def test_every_topic_is_a_channel_with_the_events_that_name_it() -> None:
    doc = document()
    assert {c["address"] for c in doc["channels"].values()} == set(topics.ALL)
    assert payload_schemas(doc, topics.SUBMISSIONS) == {"RawSubmission"}
    assert payload_schemas(doc, topics.ACCEPTED) == {"SubmissionAccepted"}
    assert payload_schemas(doc, topics.REJECTED) == {"SubmissionRejected"}
    assert payload_schemas(doc, topics.ROUTED) == {"SubmissionRouted"}
    assert payload_schemas(doc, topics.NOTIFICATIONS) == {
        "NotificationSent",
        "NotificationFailed",
        "NotificationDeferred",
    }
    assert payload_schemas(doc, topics.DEADLETTER) == {"MessageDeadLettered", "MessageRedriven"}
    carried = set().union(*(payload_schemas(doc, topic) for topic in topics.ALL))
    assert {event.__name__ for event in contract.event_types()} <= carried


def test_every_event_requires_its_discriminator() -> None:
    schemas = document()["components"]["schemas"]
    for event in contract.event_types():
        assert "event_type" in schemas[event.__name__]["required"], event.__name__


def test_raw_submission_schema_is_the_models_own() -> None:
    schema = document()["components"]["schemas"]["RawSubmission"]
    assert set(schema["properties"]) == set(Submission.model_fields) - {
        "submission_id",
        "reference",
        "received_at",
        "consultation",
    }
    assert set(schema["required"]) == {"channel", "kind", "submitted_at"}


def test_the_raw_topic_is_received_and_the_event_topics_are_sent() -> None:
    doc = document()
    actions = {
        resolve(doc, op["channel"]["$ref"])["address"]: op["action"]
        for op in doc["operations"].values()
    }
    assert actions == {
        topic: "receive" if topic == topics.SUBMISSIONS else "send" for topic in topics.ALL
    }


def test_every_message_documents_its_key_headers_and_correlation() -> None:
    doc = document()
    messages = doc["components"]["messages"]
    assert len(messages) == len(topics.ALL)
    for name, message in messages.items():
        assert message["contentType"] == "application/json", name
        assert message["headers"]["properties"]["content-type"]["const"] == "application/json"
        assert message["bindings"]["kafka"]["key"]["type"] == "string", name
        raw = message["name"] == "RawSubmission"
        # FastStream's default points at a header Sada never sets; events carry it in the body
        assert ("correlationId" in message) is not raw, name
        if not raw:
            assert message["correlationId"]["location"] == "$message.payload#/correlation_id"


def test_every_reference_in_the_document_resolves() -> None:
    doc = document()
    found = list(refs(doc))
    assert len(found) > 30
    for ref in found:
        assert resolve(doc, ref) is not None, ref


def test_servers_name_the_production_security() -> None:
    doc = document()
    assert doc["info"]["version"] == RELEASE
    production = doc["servers"]["production"]
    assert production["protocol"] == "kafka-secure"
    (scheme,) = production["security"]
    assert resolve(doc, scheme["$ref"])["type"] == "scramSha512"


def test_yaml_is_deterministic_and_free_of_aliases() -> None:
    first, second = contract.build(RELEASE).to_yaml(), contract.build(RELEASE).to_yaml()
    assert first == second
    assert "&id0" not in first
    assert "*id0" not in first


class ArchiveRead(events.Envelope):
    """`archive.read` on `feedback.deadletter.v1`: an event another change might add."""

    event_type: Literal["archive.read"] = "archive.read"
    payload: events.Producer


class Unplaced(events.Envelope):
    """An event whose docstring does not name its topic."""

    event_type: Literal["unplaced.event"] = "unplaced.event"
    payload: events.Producer


def test_a_new_event_that_names_its_topic_is_documented_with_no_other_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    members = (*contract.event_types(), ArchiveRead)
    widened: Any = Annotated[Union.__getitem__(members), Field(discriminator="event_type")]
    monkeypatch.setattr(events, "AnyEvent", widened)
    assert "ArchiveRead" in payload_schemas(document(), topics.DEADLETTER)


def test_a_new_event_that_names_no_topic_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    members = (*contract.event_types(), Unplaced)
    monkeypatch.setattr(contract, "event_types", lambda: members)
    with pytest.raises(contract.ContractError, match="Unplaced"):
        contract.build(RELEASE)


def test_every_topic_a_service_reads_is_in_the_contract() -> None:
    # FastStream's own AsyncAPI of the five services' brokers (built, never connected)
    with contracts.local_defaults():
        brokers = service_brokers()
    read = AsyncAPI(*brokers).to_specification().to_jsonable()["channels"]
    addresses = {channel["address"] for channel in read.values()}
    assert topics.SUBMISSIONS in addresses
    assert addresses <= {c["address"] for c in document()["channels"].values()}


def service_brokers() -> list[KafkaBroker]:
    from services.archive.app import build as archive
    from services.archive.settings import ArchiveSettings
    from services.campaigns.app import build as campaigns
    from services.campaigns.settings import CampaignsSettings
    from services.intake.app import build as intake
    from services.intake.settings import IntakeSettings
    from services.notifier.app import build as notifier
    from services.notifier.settings import NotifierSettings
    from services.router.app import build as router
    from services.router.settings import RouterSettings

    archive_broker = KafkaBroker(KafkaSettings().bootstrap_servers)
    archive(ArchiveSettings(), broker=archive_broker)
    apps = [
        intake(IntakeSettings()),
        router(RouterSettings()),
        campaigns(CampaignsSettings()),
        notifier(NotifierSettings()),
    ]
    return [archive_broker, *(app.state.broker for app in apps)]


def test_committed_contract_documents_are_current() -> None:
    stale = contracts.stale(contracts.render())
    assert not stale, f"stale: {stale}; run `python -m deploy.contracts`"


def test_openapi_documents_describe_both_doors() -> None:
    intake = json.loads(contracts.openapi_path("intake").read_text(encoding="utf-8"))
    archive = json.loads(contracts.openapi_path("archive").read_text(encoding="utf-8"))
    assert "post" in intake["paths"]["/v1/submissions"]
    assert "RawSubmission" in intake["components"]["schemas"]
    assert "get" in archive["paths"]["/v1/submissions"]
    assert archive["info"]["title"] == "Sada archive"


def test_the_documents_need_no_running_infrastructure(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(_socket: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(address)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    contract.document.cache_clear()
    assert contracts.render()
    assert attempts == []
