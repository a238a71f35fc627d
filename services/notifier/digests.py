"""Inbox protection: when a submission is e-mailed alone and when it waits for a digest.

Pure functions and values; the store is `services/notifier/pending.py`, the sending loop
`services/notifier/digest_sender.py`, the e-mail `services/notifier/digest_messages.py`.

A unit's mailbox (an *inbox*: the unit and the decision's mailbox) receives one e-mail per
submission while it is calm. Two things send a submission to the next digest instead:

- **a surge**: more than `threshold` submissions would have been e-mailed to the inbox within the
  trailing `rate_seconds` (30 in 10 minutes by default), counted across all notifiers;
- **a campaign copy**: a member of a campaign past its first `campaign_individual` members (3),
  whatever the rate: the first three tell the unit a campaign exists, the rest are counted.

Waiting submissions go out in one digest per inbox per `window_seconds` (5 minutes), in windows
aligned on the clock, so a digest's window and members name it: its Message-ID is derived from
the inbox, the window's end and the members, and a digest sent again after a crash is the same
message (docs/digests.md).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from shared.directory import DigestOverrides, Unit
from shared.events import SubmissionGrouped

DIGEST_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sada:digest")
TEXT_MAX: Final = 300
"""Characters of a submission's text kept for a digest (a campaign's representative text)."""
SUBJECT_MAX: Final = 200

Route = Literal["individual", "surge", "campaign"]
"""Where a fresh notification goes: its own e-mail, or the next digest (and why)."""


@dataclass(frozen=True, slots=True)
class DigestPolicy:
    """When one unit's inbox switches to digests (notifier settings, overridden in units.yaml)."""

    enabled: bool = True
    threshold: int = 30
    """More e-mails than this within `rate_seconds`: digest mode."""
    rate_seconds: float = 600.0
    window_seconds: float = 300.0
    campaign_individual: int = 3
    """Members of a campaign e-mailed one by one; later copies are counted in a digest."""
    list_limit: int = 200
    """Past this many items a digest lists campaigns and counts, and attaches the full list."""
    max_items: int = 10_000
    """Most submissions in one digest e-mail; more wait for the next one (sent at once)."""

    def overridden(self, overrides: DigestOverrides | None) -> DigestPolicy:
        """Return this policy with a unit's own values from units.yaml."""
        if overrides is None:
            return self
        changes = {k: v for k, v in overrides.model_dump().items() if v is not None}
        return DigestPolicy(**{**self.as_dict(), **changes})

    def as_dict(self) -> dict[str, object]:
        """Return the fields as a dict (for `overridden`)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def policies(default: DigestPolicy, units: Mapping[str, Unit]) -> dict[str, DigestPolicy]:
    """Return each unit's policy: `default` with the unit's overrides from units.yaml."""
    return {uid: default.overridden(unit.digest) for uid, unit in units.items()}


def inbox_of(unit: str, mailbox: str) -> str:
    """Return the inbox id of a unit's mailbox: what rates, windows and digests are kept by."""
    return f"{unit}|{mailbox.lower()}"


def route(event: SubmissionGrouped, policy: DigestPolicy, recent: int) -> Route:
    """Return where `event` goes, `recent` being the inbox's e-mails in the trailing window.

    `recent` includes this event when it would be e-mailed alone.
    """
    if not policy.enabled:
        return "individual"
    campaign = event.payload.campaign
    if campaign is not None and campaign.size > policy.campaign_individual:
        return "campaign"
    return "surge" if recent > policy.threshold else "individual"


def window_end(moment: datetime, window_seconds: float) -> datetime:
    """Return the end of the clock-aligned window holding `moment`."""
    seconds = moment.timestamp()
    return datetime.fromtimestamp(
        (math.floor(seconds / window_seconds) + 1) * window_seconds, tz=UTC
    )


def rate_bucket(moment: datetime, rate_seconds: float) -> datetime:
    """Return the start of the rate bucket (a tenth of the rate window) holding `moment`."""
    size = rate_seconds / 10
    return datetime.fromtimestamp(math.floor(moment.timestamp() / size) * size, tz=UTC)


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One submission waiting for a digest: what the digest shows and what its outcome needs.

    Personal fields (`subject`, `text`) are None for a unit that takes no personal data. The
    item lives only until its digest is out (docs/digests.md).
    """

    key: str
    """The ledger key (`<submission_id>:<unit>`)."""
    submission_id: str
    reference: str
    event_id: str
    """The consumed `submission.grouped` event's id: the outcome event's id derives from it."""
    correlation_id: str
    unit: str
    mailbox: str
    inbox: str
    kind: str
    channel: str
    topic: str | None
    legislation_ref: str | None
    language: str
    received_at: datetime
    pended_at: datetime
    why: Route
    subject: str | None = None
    text: str | None = None
    campaign_id: str | None = None
    campaign_size: int | None = None
    campaign_first_reference: str | None = None
    late: bool = False
    """A view on a draft law sent after its consultation closed."""


def item_from(event: SubmissionGrouped, *, personal: bool, why: Route, at: datetime) -> DigestItem:
    """Return the digest item of `event` (personal fields only when the unit takes them)."""
    submission, decision = event.payload.submission, event.payload.decision
    campaign = event.payload.campaign
    text = submission.body or ""
    return DigestItem(
        key=f"{submission.submission_id}:{decision.unit}",
        submission_id=submission.submission_id,
        reference=submission.reference,
        event_id=event.event_id,
        correlation_id=event.correlation_id,
        unit=decision.unit,
        mailbox=decision.mailbox,
        inbox=inbox_of(decision.unit, decision.mailbox),
        kind=submission.kind,
        channel=submission.channel,
        topic=submission.topic,
        legislation_ref=submission.legislation_ref,
        language=submission.language,
        received_at=submission.received_at,
        pended_at=at,
        why=why,
        subject=(submission.subject or "")[:SUBJECT_MAX] or None if personal else None,
        text=text[:TEXT_MAX] or None if personal else None,
        campaign_id=campaign.campaign_id if campaign else None,
        campaign_size=campaign.size if campaign else None,
        campaign_first_reference=campaign.first_reference if campaign else None,
        late=bool(submission.consultation and submission.consultation.late),
    )


@dataclass(frozen=True, slots=True)
class Digest:
    """One digest e-mail: an inbox's waiting submissions up to the end of a window."""

    inbox: str
    unit: str
    mailbox: str
    window_end: datetime
    """End of the last window it covers: the e-mail's Date and part of its identity."""
    window_seconds: float
    items: tuple[DigestItem, ...]
    digest_id: str = field(default="")
    """UUIDv5 hex of inbox, window end and member keys (`digest_id`); filled in if empty."""

    def __post_init__(self) -> None:
        if not self.digest_id:
            object.__setattr__(self, "digest_id", digest_id(self.inbox, self.window_end, self.keys))

    @property
    def keys(self) -> tuple[str, ...]:
        """The members' ledger keys, in the digest's order."""
        return tuple(item.key for item in self.items)

    @property
    def window_start(self) -> datetime:
        """Start of the last window it covers (earlier leftovers may be older)."""
        return self.window_end - timedelta(seconds=self.window_seconds)


def digest_id(inbox: str, end: datetime, keys: Iterable[str]) -> str:
    """Return a digest's id: the same inbox, window and members always give the same id."""
    members = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
    name = f"{inbox}|{end.astimezone(UTC).isoformat()}|{members}"
    return uuid.uuid5(DIGEST_NAMESPACE, name).hex


def digest_message_id(digest: Digest, domain: str) -> str:
    """Return the digest's Message-ID: a resend after a crash carries the same one."""
    return f"<digest-{digest.digest_id}@{domain}>"
