"""The v1 event envelope and every internal event (docs/design.md, "Event envelope").

Each event type is its own frozen model with a literal `event_type`, so `AnyEvent` parses any
of them by discriminator and FastStream's AsyncAPI document shows every payload in full.
Within v1 only additive changes are allowed; consumers ignore fields they do not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, TypeAdapter

from shared import ids
from shared.models import Frozen, Reason, Submission

SCHEMA_VERSION = 1
RAW_TRUNCATE_CHARS = 16_384
"""Raw bytes carried in rejected and dead-letter events are cut to this many characters."""

Door = Literal["kafka", "http"]


class Producer(Frozen):
    """Which service, at which version, produced an event."""

    service: str = Field(description="Service name, e.g. `intake`.")
    version: str = Field(description="The service's release version.")


class SourcePosition(Frozen):
    """Where in Kafka a message came from, for audit and dead-letter replay."""

    topic: str = Field(description="Source topic.")
    partition: int = Field(description="Source partition.")
    offset: int = Field(description="Source offset.")


class Envelope(Frozen):
    """Fields every internal event carries, whatever its payload."""

    event_id: str = Field(
        description="UUIDv5 of submission_id + event_type + discriminator: a replay keeps it."
    )
    event_type: str = Field(description="What happened, e.g. `submission.accepted`.")
    schema_version: int = Field(default=SCHEMA_VERSION, description="Envelope schema version.")
    submission_id: str = Field(description="The submission this event belongs to.")
    reference: str = Field(description="The submission's human reference code.")
    occurred_at: datetime = Field(description="When the producing service made the event (UTC).")
    producer: Producer = Field(description="The producing service and its version.")
    correlation_id: str = Field(description="Shared by every event caused by one submission.")


class AcceptedPayload(Frozen):
    """A submission passed validation and was normalised."""

    submission: Submission = Field(description="The normalised submission.")
    door: Door = Field(description="How it reached intake: Kafka topic or HTTP.")
    source: SourcePosition | None = Field(default=None, description="Kafka position, if any.")


class RejectedPayload(Frozen):
    """A submission failed validation; every problem found is listed."""

    reasons: tuple[Reason, ...] = Field(description="Every problem found, in field order.")
    raw: str = Field(description="The raw bytes as text (invalid UTF-8 replaced), truncated.")
    raw_size_bytes: int = Field(description="Size of the raw message before truncation.")
    raw_sha256: str = Field(description="SHA-256 of the raw bytes.")
    channel: str | None = Field(default=None, description="The claimed channel, if readable.")
    door: Door = Field(description="How it reached intake.")
    source: SourcePosition | None = Field(default=None, description="Kafka position, if any.")


class Match(Frozen):
    """What made a routing rule match."""

    field: str = Field(description="The field that matched, e.g. `legislation_ref` or `body`.")
    value: str = Field(description="The value or keyword that matched.")


class RoutingDecision(Frozen):
    """Where a submission goes and why."""

    unit: str = Field(description="Unit id, e.g. `legislations_office`.")
    mailbox: str = Field(description="The unit's mailbox.")
    rule_id: str = Field(description="The first rule that matched.")
    rules_version: str = Field(description="SHA-256 of the rule file in force.")
    reason: str = Field(description="A sentence a person can read.")
    matched: tuple[Match, ...] = Field(default=(), description="What matched.")


class RoutedPayload(Frozen):
    """A submission was classified to a unit."""

    submission: Submission = Field(description="The submission, as accepted.")
    decision: RoutingDecision = Field(description="The decision and its explanation.")


class CampaignMembership(Frozen):
    """A submission joined a campaign of near-identical submissions (docs/campaigns.md)."""

    campaign_id: str = Field(
        description="UUIDv5 of the scope and the first member's submission id: deterministic."
    )
    size: int = Field(description="The campaign's size when this member joined, itself included.")
    first_reference: str = Field(description="Reference of the campaign's first member.")
    first_submission_id: str = Field(description="Submission id of the campaign's first member.")
    similar_to: str = Field(
        description="Reference of the closest earlier member: an identical copy, or the first."
    )
    similarity: float = Field(
        ge=0, le=1, description="Jaccard similarity of word pairs with `similar_to`; 1 = identical."
    )


class GroupedPayload(RoutedPayload):
    """A routed submission, and whether it joined a campaign of near-identical ones."""

    scope: str = Field(
        description="Where it was compared: `legislation:<ref>`, else `unit:<unit>` "
        "(a rolling window)."
    )
    campaign: CampaignMembership | None = Field(
        default=None,
        description="The campaign it joined; null when it joined none (yet): a first member "
        "is told nothing until a second arrives.",
    )


class DigestRef(Frozen):
    """The digest e-mail that carried a notification (docs/digests.md)."""

    digest_id: str = Field(description="UUIDv5 hex of mailbox, window end and members.")
    items: int = Field(ge=1, description="Submissions in that digest.")
    window_end: datetime = Field(description="End of the last window the digest covers (UTC).")
    why: str = Field(description="Why this submission waited: `surge` or `campaign`.")


class NotificationPayload(Frozen):
    """The outcome of e-mailing a unit about a routed submission."""

    unit: str = Field(description="Unit id.")
    mailbox: str = Field(description="Recipient mailbox.")
    message_id: str = Field(description="The e-mail's deterministic Message-ID.")
    smtp_code: int | None = Field(default=None, description="The SMTP server's last reply code.")
    smtp_reply: str | None = Field(default=None, description="The SMTP server's last reply text.")
    attempts: int = Field(default=1, description="Delivery attempts made.")
    repeat: bool = Field(
        default=False, description="True when the ledger already held this e-mail: none re-sent."
    )
    digest: DigestRef | None = Field(
        default=None,
        description="Set when the submission went out in a digest rather than its own e-mail; "
        "`message_id` is then the digest's.",
    )


class DeferredPayload(NotificationPayload):
    """A notification whose recipient kept refusing it for now (4xx): parked, retried later."""

    deferred_since: datetime = Field(description="When the recipient first refused it (UTC).")
    next_attempt_at: datetime = Field(description="When the next delivery attempt is due (UTC).")
    give_up_at: datetime = Field(
        description="When, still refused, it becomes `notification.failed` (UTC)."
    )


class DeadLetterPayload(Frozen):
    """A message a service could not decode or handle for a non-transient reason."""

    service: str = Field(description="The service that gave up on it.")
    source: SourcePosition = Field(description="Where the message was read from.")
    error: str = Field(description="Error type and message.")
    raw: str = Field(description="The raw bytes as text (invalid UTF-8 replaced), truncated.")
    raw_size_bytes: int = Field(description="Size of the raw message before truncation.")
    key: str | None = Field(
        default=None, description="The message's Kafka key as text, if it had one (for redrive)."
    )


class RedrivePayload(Frozen):
    """An operator re-published a dead-lettered message to its source topic (`sada deadletter`)."""

    deadletter_event_id: str = Field(description="The `message.deadlettered` event redriven.")
    source: SourcePosition = Field(description="Where the message was first read from.")
    target: SourcePosition = Field(description="Where the re-published copy was written.")
    raw_sha256: str = Field(description="SHA-256 of the bytes re-published.")
    raw_size_bytes: int = Field(description="Size of the bytes re-published.")
    raw_from: Literal["source", "deadletter"] = Field(
        description="`source`: the original record, still in its topic; `deadletter`: the raw "
        "text the dead letter carried (used only when it is complete)."
    )


class SubmissionAccepted(Envelope):
    """`submission.accepted` on `feedback.accepted.v1`."""

    event_type: Literal["submission.accepted"] = "submission.accepted"
    payload: AcceptedPayload


class SubmissionRejected(Envelope):
    """`submission.rejected` on `feedback.rejected.v1`."""

    event_type: Literal["submission.rejected"] = "submission.rejected"
    payload: RejectedPayload


class SubmissionRouted(Envelope):
    """`submission.routed` on `feedback.routed.v1`."""

    event_type: Literal["submission.routed"] = "submission.routed"
    payload: RoutedPayload


class SubmissionGrouped(Envelope):
    """`submission.grouped` on `feedback.grouped.v1`: one per routed submission.

    Written by the campaigns service once its decision is durable; the notifier e-mails from
    it, so an e-mail can say "one of 412 near-identical submissions".
    """

    event_type: Literal["submission.grouped"] = "submission.grouped"
    payload: GroupedPayload


class NotificationSent(Envelope):
    """`notification.sent` on `feedback.notifications.v1`."""

    event_type: Literal["notification.sent"] = "notification.sent"
    payload: NotificationPayload


class NotificationFailed(Envelope):
    """`notification.failed` on `feedback.notifications.v1`: a permanent SMTP refusal."""

    event_type: Literal["notification.failed"] = "notification.failed"
    payload: NotificationPayload


class NotificationDeferred(Envelope):
    """`notification.deferred` on `feedback.notifications.v1`: the recipient refuses for now.

    Published once per notification, when its recipient's temporary refusals (450/451/452 to
    RCPT TO) outlast the retry budget; a `notification.sent` (or `.failed`) follows later.
    """

    event_type: Literal["notification.deferred"] = "notification.deferred"
    payload: DeferredPayload


class MessageDeadLettered(Envelope):
    """`message.deadlettered` on `feedback.deadletter.v1`."""

    event_type: Literal["message.deadlettered"] = "message.deadlettered"
    payload: DeadLetterPayload


class MessageRedriven(Envelope):
    """`message.redriven` on `feedback.deadletter.v1`, on the dead letter's chain."""

    event_type: Literal["message.redriven"] = "message.redriven"
    payload: RedrivePayload


AnyEvent = Annotated[
    SubmissionAccepted
    | SubmissionRejected
    | SubmissionRouted
    | SubmissionGrouped
    | NotificationSent
    | NotificationFailed
    | NotificationDeferred
    | MessageDeadLettered
    | MessageRedriven,
    Field(discriminator="event_type"),
]
ANY_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


class AccessPayload(Frozen):
    """One read of the archive's API: who, which endpoint, about what; never personal data."""

    client: str = Field(description="The API client's configured name, e.g. `auditor-1`.")
    endpoint: str = Field(description="The route template, e.g. `/v1/submissions/{key}`.")
    method: str = Field(default="GET", description="The HTTP method.")
    status: int = Field(description="The HTTP status answered.")
    submission_id: str | None = Field(
        default=None, description="The submission (chain) read, when the endpoint reads one."
    )
    query: dict[str, str] = Field(
        default_factory=dict,
        description="The validated query parameters (enums, identifiers, times, cursors).",
    )
    personal_data: bool = Field(
        description="True when the answer could include personal data (client's scope)."
    )
    request_id: str = Field(description="A random id of the request (one event per read).")


class ArchiveAccessed(Frozen):
    """`archive.accessed`: written by the archive into its own store, never on a topic.

    Access events form hash chains of their own, one per client, UTC day and archive process
    (`submission_id` = `access:<day>:<client>:<writer>`), verified like every other chain.
    """

    event_id: str = Field(description="UUIDv5 of the chain and the request id.")
    event_type: Literal["archive.accessed"] = "archive.accessed"
    schema_version: int = Field(default=SCHEMA_VERSION, description="Envelope schema version.")
    submission_id: str = Field(
        description="The access chain this event is on (every archived event names its chain "
        "here); the submission read is `payload.submission_id`."
    )
    occurred_at: datetime = Field(description="When the read was answered (UTC).")
    producer: Producer = Field(description="The archive and its version.")
    payload: AccessPayload


class ErasurePayload(Frozen):
    """One destruction of data keys: why, how many, which (random ids); never who."""

    request_id: str = Field(description="The erasure's id (a data subject's request, or a run).")
    reason: str = Field(
        max_length=500,
        description="Why, as the operator gave it (`retention` for the automatic destruction); "
        "must not hold personal data.",
    )
    trigger: Literal["request", "retention"] = Field(
        description="`request` (`sada privacy erase`) or `retention` (the archive's own sweep)."
    )
    keys: int = Field(description="Data keys destroyed by the whole erasure.")
    events: int | None = Field(
        description="Archived events sealed under them (null when not counted: retention)."
    )
    key_ids: list[str] = Field(
        description="The random ids of the keys destroyed (of this part): events name their "
        "key id, never the person."
    )
    part: int = Field(default=0, description="Which part of a large erasure this event is.")
    parts: int = Field(default=1, description="How many `privacy.erased` events it took.")
    requested_by: str = Field(description="Who ran it: the operator's login, or `archive`.")


class PrivacyErased(Frozen):
    """`privacy.erased`: written by `sada privacy erase` or the archive's retention, not on a topic.

    Each erasure has a chain of its own (`submission_id` = `privacy:<request id>`), verified like
    every other chain: what was destroyed stays on record without any personal data.
    """

    event_id: str = Field(description="UUIDv5 of the chain and the part.")
    event_type: Literal["privacy.erased"] = "privacy.erased"
    schema_version: int = Field(default=SCHEMA_VERSION, description="Envelope schema version.")
    submission_id: str = Field(description="The erasure's chain, `privacy:<request id>`.")
    occurred_at: datetime = Field(description="When the keys were destroyed (UTC).")
    producer: Producer = Field(description="The archive and its version.")
    payload: ErasurePayload


E = TypeVar("E", bound=Envelope)


def build(
    cls: type[E],
    *,
    submission_id: str,
    reference: str,
    payload: Any,
    discriminator: str,
    producer: Producer,
    correlation_id: str | None = None,
) -> E:
    """Build an event with its deterministic `event_id`; `correlation_id` defaults to the id."""
    event_type = cls.model_fields["event_type"].default
    return cls(
        event_id=ids.event_id(submission_id, event_type, discriminator),
        event_type=event_type,
        submission_id=submission_id,
        reference=reference,
        occurred_at=datetime.now(UTC),
        producer=producer,
        correlation_id=correlation_id or submission_id,
        payload=payload,
    )


def raw_text(raw: bytes) -> str:
    """Return raw bytes as safe text for an event: UTF-8 with replacement, NUL-free, truncated."""
    return (
        raw[: RAW_TRUNCATE_CHARS * 4]
        .decode("utf-8", "replace")
        .replace("\x00", "\ufffd")[:RAW_TRUNCATE_CHARS]
    )
