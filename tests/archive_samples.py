"""Realistic events for the archive's tests, built with the shared contract."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import ConsumerRecord

from shared import events, ids
from shared.events import Producer
from shared.kafka import Record
from shared.models import Kind, Reason, Submission, Submitter
from shared.scopes import campaign_scope

PRODUCER = Producer(service="test", version="1")


LEGISLATION_REF = "MOJ-DRAFT-2026-003"
BODY = "أرى أن تمديد المدة يحقق العدالة. a.harbi@example.sa"


def submission(
    channel: str = "istitlaa",
    kind: Kind = Kind.OPINION,
    *,
    ref: str | None = None,
    legislation_ref: str | None = LEGISLATION_REF,
    subject: str = "مشروع نظام الإثبات",
    body: str = BODY,
) -> Submission:
    """Return a normalised submission with personal data in it (as real ones have)."""
    channel_ref = ref or f"T-{uuid.uuid4().hex[:12]}"
    sid = ids.submission_id(channel, channel_ref, "")
    return Submission(
        channel=channel,
        channel_ref=channel_ref,
        kind=kind,
        legislation_ref=legislation_ref,
        subject=subject,
        body=body,
        submitter=Submitter(name="عبدالله الحربي", email="a.harbi@example.sa"),
        submitted_at=datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
        submission_id=sid,
        reference=ids.reference(sid),
        language="ar",
        received_at=datetime.now(UTC),
    )


def accepted(
    sub: Submission, source: events.SourcePosition | None = None
) -> events.SubmissionAccepted:
    """Return intake's acceptance of `sub` (from Kafka when `source` is given)."""
    return events.build(
        events.SubmissionAccepted,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=events.AcceptedPayload(
            submission=sub, door="kafka" if source else "http", source=source
        ),
        discriminator="accepted",
        producer=PRODUCER,
    )


def routed(sub: Submission, unit: str = "legislations_office") -> events.SubmissionRouted:
    """Return the router's decision for `sub`."""
    decision = events.RoutingDecision(
        unit=unit,
        mailbox="LegislationsOffice@moj.gov.sa",
        rule_id="legislation-reference",
        rules_version="0" * 64,
        reason="legislation_ref MOJ-DRAFT-2026-003 present",
    )
    return events.build(
        events.SubmissionRouted,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=events.RoutedPayload(submission=sub, decision=decision),
        discriminator="routed",
        producer=PRODUCER,
    )


CAMPAIGN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sada:campaign").bytes
"""As the campaigns service names campaigns (docs/campaigns.md, "The decision")."""


def member(
    first: Submission,
    size: int,
    *,
    unit: str = "legislations_office",
    similar_to: Submission | None = None,
) -> events.CampaignMembership:
    """Return the campaign membership of the `size`-th member of the campaign `first` founded."""
    scope = campaign_scope(first.legislation_ref, unit)
    return events.CampaignMembership(
        campaign_id=ids.uuid5(CAMPAIGN_NAMESPACE, f"{scope}\x1f{first.submission_id}"),
        size=size,
        first_reference=first.reference,
        first_submission_id=first.submission_id,
        similar_to=(similar_to or first).reference,
        similarity=1.0 if similar_to is None else 0.8,
    )


def grouped(
    sub: Submission,
    campaign: events.CampaignMembership | None = None,
    unit: str = "legislations_office",
) -> events.SubmissionGrouped:
    """Return the campaigns service's decision on `sub`: the campaign it joined, or none."""
    decision = routed(sub, unit).payload.decision
    return events.build(
        events.SubmissionGrouped,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=events.GroupedPayload(
            submission=sub,
            decision=decision,
            scope=campaign_scope(sub.legislation_ref, unit),
            campaign=campaign,
        ),
        discriminator="grouped",
        producer=PRODUCER,
    )


def notified(sub: Submission, unit: str = "legislations_office") -> events.NotificationSent:
    """Return the notifier's report of the e-mail about `sub`."""
    return events.build(
        events.NotificationSent,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=events.NotificationPayload(
            unit=unit, mailbox="LegislationsOffice@moj.gov.sa", message_id=f"<{sub.reference}@x>"
        ),
        discriminator=unit,
        producer=PRODUCER,
    )


def rejected(
    channel: str = "email", source: events.SourcePosition | None = None
) -> events.SubmissionRejected:
    """Return intake's rejection of an unreadable message."""
    raw = b'{"channel": "email", "body": "call me on +966 55 123 4567"'
    sid = ids.submission_id(channel, None, ids.digest(raw + uuid.uuid4().bytes))
    return events.build(
        events.SubmissionRejected,
        submission_id=sid,
        reference=ids.reference(sid),
        payload=events.RejectedPayload(
            reasons=(Reason(code="invalid_json", field=None, message="not JSON"),),
            raw=events.raw_text(raw),
            raw_size_bytes=len(raw),
            raw_sha256=ids.digest(raw),
            channel=channel,
            door="kafka" if source else "http",
            source=source,
        ),
        discriminator="rejected",
        producer=PRODUCER,
    )


def dead_letter(topic: str, partition: int, offset: int) -> events.MessageDeadLettered:
    """Return a dead letter for the record at (topic, partition, offset)."""
    sid = ids.position_id(topic, partition, offset)
    return events.build(
        events.MessageDeadLettered,
        submission_id=sid,
        reference=ids.reference(sid),
        payload=events.DeadLetterPayload(
            service="router",
            source=events.SourcePosition(topic=topic, partition=partition, offset=offset),
            error="ValueError: boom",
            raw="{not json",
            raw_size_bytes=9,
        ),
        discriminator="router",
        producer=PRODUCER,
    )


def encode(event: events.Envelope) -> bytes:
    """Return an event as it travels on Kafka."""
    return event.model_dump_json().encode()


def raw_submission(channel: str = "istitlaa", ref: str | None = None) -> bytes:
    """Return a raw message as an upstream channel sends it."""
    return orjson.dumps(
        {
            "channel": channel,
            "channel_ref": ref or f"T-{uuid.uuid4().hex[:12]}",
            "kind": "opinion",
            "body": "رأيي في المادة 12",
            "submitter": {"email": "someone@example.sa"},
            "submitted_at": "2026-11-25T10:00:00+03:00",
        }
    )


def record(
    topic: str,
    value: bytes | None,
    *,
    partition: int = 0,
    offset: int = 0,
    key: bytes | None = None,
) -> Record:
    """Return a consumed Kafka record, as the batch runner hands it to the work."""
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=1_764_480_000_000,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=(),
    )
