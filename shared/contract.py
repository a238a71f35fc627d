"""The Kafka contract as one AsyncAPI 3.0 document: every topic, its payload, key and headers.

FastStream generates the channels, operations and payload schemas from the contract models
(`RawSubmission` for what a channel sends, every event of `shared.events.AnyEvent` for what
Sada publishes) declared on a documentation-only broker that never connects. The services'
own brokers cannot give this document: their subscribers take raw bytes on purpose (decoding is
the service's job, where a failure is data) and they produce through `shared.kafka.produce_all`,
not through FastStream publishers. FastStream 0.7 leaves a message's headers and Kafka bindings
out (`Message` has a TODO for them), so the record key, the `content-type` header, the
servers and their security are added here.

An event names its topic in its docstring's first words ("`submission.accepted` on
`feedback.accepted.v1`"), the convention of `shared/events.py`; a new event added to `AnyEvent`
that follows it appears here with no other change, and one that does not fails loudly.
The document is deterministic (sorted keys, no timestamps): `docs/asyncapi.yaml` is this
function's output, and every service serves it at `/asyncapi` (HTML) and `/asyncapi.yaml`.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Final, Union, cast

import yaml
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import Field

from shared import events, topics
from shared.models import MAX_MESSAGE_BYTES, RawSubmission

TITLE: Final = "Sada Kafka contract"
_OWN_TOPIC = re.compile(r"^`(?P<event_type>[a-z_.]+)` on `(?P<topic>[a-z0-9_.-]+)`")

EXAMPLE_SUBMISSION: Final[Mapping[str, Any]] = {
    "channel": "istitlaa",
    "channel_ref": "IST-2026-88121",
    "kind": "opinion",
    "legislation_ref": "MOJ-DRAFT-2026-003",
    "subject": "مشروع نظام الإثبات — المادة 12",
    "body": "أرى أن تمديد مدة تقديم البينة إلى ثلاثين يوماً يحقق العدالة للأطراف.",
    "submitted_at": "2026-11-25T10:00:00+03:00",
}
"""A valid `RawSubmission` (a unit test runs it through intake's validation)."""

DESCRIPTION: Final = f"""The topics through which upstream channels hand feedback to Sada and
Sada records what became of it (docs/design.md, "Kafka topics").

**Sending a submission.** Produce one `RawSubmission` JSON object (UTF-8, at most
{MAX_MESSAGE_BYTES} bytes) per record to `{topics.SUBMISSIONS}` with `acks=all` (and
idempotence), so an acknowledged record is on every in-sync replica. Intake validates it and
publishes `submission.accepted` or `submission.rejected` (with every reason) for it; a channel
that needs an immediate answer uses the HTTP door `POST /v1/submissions` instead (the intake
service's OpenAPI document).

**Every other topic** carries Sada's events: one JSON envelope per record (`event_id`,
`event_type`, `schema_version`, `submission_id`, `reference`, `occurred_at`, `producer`,
`correlation_id`, `payload`), keyed by `submission_id` so one submission's events stay in one
partition and in order (`{topics.ROUTED}`: by campaign scope, which keeps them together too),
with the header `content-type: application/json`. `event_type` tells the payload apart.
`event_id` is deterministic: a redelivered event has the same id.

**Versioning.** Within v1 only additive changes are made: consumers ignore fields they do not
know. A breaking change gets a new `.v2` topic.
"""

_CHANNELS: Final[Mapping[str, str]] = {
    topics.SUBMISSIONS: "Raw submissions from upstream channels. Read by intake (validation) "
    "and the archive (a receipt of every record as sent). Personal data: kept only as long as "
    "the topic's retention.",
    topics.ACCEPTED: "Valid, normalised submissions, with their id and reference. Written by "
    "intake; read by the router and the archive.",
    topics.REJECTED: "Invalid submissions with every reason found and the raw bytes as "
    "(truncated) text. Written by intake; read by the archive.",
    topics.ROUTED: "The unit each submission goes to, the rule that matched and why. Written "
    "by the router; read by the campaigns service and the archive. Keyed by the campaign "
    "scope (`legislation:<ref>`, else `unit:<unit>`), not by submission id, so one campaigns "
    "consumer owns a scope.",
    topics.GROUPED: "Each routed submission again, with the campaign of near-identical "
    "submissions it joined, if any (docs/campaigns.md). Written by the campaigns service; read "
    "by the notifier and the archive.",
    topics.NOTIFICATIONS: "What became of the e-mail to the unit: sent, failed (a permanent "
    "refusal) or deferred (the recipient refuses for now; a later sent or failed follows). "
    "Written by the notifier; read by the archive.",
    topics.DEADLETTER: "Messages a service could not decode or handle for a non-transient "
    "reason, with where they came from; and each operator redrive of one (`sada deadletter`). "
    "Written by any service and the dead-letter tool; read by the archive.",
}

_CONTENT_TYPE: Final = {
    "type": "object",
    "properties": {
        "content-type": {
            "type": "string",
            "const": "application/json",
            "description": "Set on every event; optional on a raw submission (the value is "
            "read as JSON whatever the header says).",
        }
    },
}
_RAW_KEY: Final = {
    "type": "string",
    "description": "Optional; intake does not read it. A key of `channel/channel_ref` keeps "
    "one item's resubmissions in order on one partition.",
}
_EVENT_KEY: Final = {
    "type": "string",
    "description": "The event's `submission_id` (UTF-8): one submission's events share a "
    "partition, in order.",
}
LOCAL_BOOTSTRAP: Final = "127.0.0.1:9092"
_SERVERS: Final = {
    "local": {
        "host": LOCAL_BOOTSTRAP,
        "protocol": "kafka",
        "description": "`make run`: a single-node broker, PLAINTEXT.",
    },
    "production": {
        "host": "{bootstrap}",
        "protocol": "kafka-secure",
        "description": "SASL_SSL with SCRAM-SHA-512, certificates from the platform's CA.",
        "variables": {"bootstrap": {"description": "The cluster's bootstrap host:port."}},
        "security": [{"$ref": "#/components/securitySchemes/scram"}],
    },
}
_SECURITY: Final = {
    "scram": {
        "type": "scramSha512",
        "description": "A SCRAM-SHA-512 user per client (each channel its own), over TLS.",
    }
}


class ContractError(ValueError):
    """The event models and the topics do not make a complete contract."""


@dataclass(frozen=True, slots=True)
class ContractDocument:
    """The AsyncAPI document, in the shape FastStream's HTML page takes (`Specification`)."""

    document: Mapping[str, Any]

    @property
    def title(self) -> str:
        """The document's title."""
        return TITLE

    def to_jsonable(self) -> Any:
        """Return the document as plain JSON types."""
        return self.document

    def to_json(self) -> str:
        """Return the document as JSON with sorted keys."""
        return json.dumps(self.document, ensure_ascii=False, sort_keys=True)

    def to_yaml(self) -> str:
        """Return the document as YAML with sorted keys: byte-for-byte stable."""
        return yaml.dump(
            self.document,
            Dumper=_Dumper,
            allow_unicode=True,
            sort_keys=True,
            width=100,
            default_flow_style=False,
        )


class _Dumper(yaml.SafeDumper):
    """Writes multi-line text as a literal block, and never an anchor or alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def event_types() -> tuple[type[events.Envelope], ...]:
    """Return every event model of `AnyEvent`, in its order."""
    union, *_ = typing.get_args(events.AnyEvent)
    return cast(tuple[type[events.Envelope], ...], typing.get_args(union))


def topic_of(event: type[events.Envelope]) -> str:
    """Return the topic `event`'s docstring names; raise `ContractError` when it names none."""
    found = _OWN_TOPIC.match(event.__doc__ or "")
    declared = event.model_fields["event_type"].default
    if found is None or found["event_type"] != declared:
        msg = f'{event.__name__}: its docstring must start with "`{declared}` on `<topic>`"'
        raise ContractError(msg)
    if found["topic"] not in topics.ALL:
        msg = f"{event.__name__} names {found['topic']!r}, which is not in shared/topics.py ALL"
        raise ContractError(msg)
    return found["topic"]


def events_by_topic() -> dict[str, tuple[type[events.Envelope], ...]]:
    """Return the events each topic carries (the raw submissions topic carries none)."""
    found: dict[str, list[type[events.Envelope]]] = {}
    for event in event_types():
        found.setdefault(topic_of(event), []).append(event)
    for topic in topics.ALL:
        if topic != topics.SUBMISSIONS and topic not in found:
            msg = f"no event of shared/events.py AnyEvent names the topic {topic!r}"
            raise ContractError(msg)
    return {topic: tuple(found[topic]) for topic in topics.ALL if topic in found}


def _payload(models: tuple[type[events.Envelope], ...]) -> Any:
    if len(models) == 1:
        return models[0]
    # A discriminated union: FastStream writes a `oneOf` of every event, keyed by event_type.
    return Annotated[Union[models], Field(discriminator="event_type")]  # noqa: UP007


async def _received(body: RawSubmission) -> None:
    """Documentation only: the broker below is never started."""


def _declared() -> KafkaBroker:
    """Return a broker (never connected) declaring every topic of the contract."""
    broker = KafkaBroker(LOCAL_BOOTSTRAP)
    broker.subscriber(
        topics.SUBMISSIONS, title=topics.SUBMISSIONS, description=_describe(topics.SUBMISSIONS)
    )(_received)
    for topic, models in events_by_topic().items():
        broker.publisher(
            topic, title=topic, description=_describe(topic, models), schema=_payload(models)
        )
    return broker


def _describe(topic: str, models: tuple[type[events.Envelope], ...] = ()) -> str:
    carried = ", ".join(f"`{model.model_fields['event_type'].default}`" for model in models)
    default = "Sada events." if carried else "Raw submissions."
    text = _CHANNELS.get(topic, default)
    return f"{text} Events: {carried}." if carried else text


_SCOPE_KEY: Final = {
    "type": "string",
    "description": "The campaign scope (UTF-8): `legislation:<legislation_ref>`, else "
    "`unit:<unit>`. One scope's submissions share a partition, in order, so one campaigns "
    "consumer owns a scope; one submission's routed events share it too.",
}


def _complete(document: dict[str, Any], release: str) -> dict[str, Any]:
    """Add what FastStream 0.7 leaves out: servers, security, keys, headers, examples."""
    document["info"] = {"title": TITLE, "version": release, "description": DESCRIPTION}
    document["servers"] = _SERVERS
    document.setdefault("components", {})["securitySchemes"] = _SECURITY
    for channel in document["channels"].values():
        channel.pop("servers", None)  # no list: every server carries every channel
    schemas: dict[str, Any] = document["components"]["schemas"]
    for event in event_types():
        # Always written (a default, not an option), and a oneOf's discriminator must be required.
        schemas[event.__name__]["required"].append("event_type")
    messages: dict[str, Any] = document["components"]["messages"]
    for name, message in messages.items():
        raw = name.startswith(f"{topics.SUBMISSIONS}:")
        message["name"] = "RawSubmission" if raw else name.split(":", 1)[0]
        message["contentType"] = "application/json"
        message["headers"] = _CONTENT_TYPE
        message["bindings"] = {"kafka": {"key": _key(name, raw=raw), "bindingVersion": "0.4.0"}}
        if raw:
            # A raw submission has no correlation id until intake gives it one.
            message.pop("correlationId", None)
            message["examples"] = [{"name": "opinion", "payload": dict(EXAMPLE_SUBMISSION)}]
        else:
            message["correlationId"] = {
                "description": "Shared by every event one submission caused.",
                "location": "$message.payload#/correlation_id",
            }
    # Round-trip: shared parts become copies, so the YAML has no anchors and callers no aliases.
    return cast(dict[str, Any], json.loads(json.dumps(document)))


def _key(message: str, *, raw: bool) -> Mapping[str, str]:
    if raw:
        return _RAW_KEY
    return _SCOPE_KEY if message.startswith(f"{topics.ROUTED}:") else _EVENT_KEY


@cache
def document(release: str) -> ContractDocument:
    """Return the contract's AsyncAPI 3.0 document, `release` as its version (built once)."""
    return build(release)


def build(release: str) -> ContractDocument:
    """Build the contract's AsyncAPI 3.0 document from the models as they are now."""
    spec = AsyncAPI(_declared(), title=TITLE, version=release, schema_version="3.0.0")
    generated = json.loads(spec.to_specification().to_json())
    return ContractDocument(_complete(generated, release))
