"""The `campaigns` projection: one document per campaign, kept from `submission.grouped` events.

The campaigns service (docs/campaigns.md) publishes one grouped event per routed submission;
a member of a campaign carries `campaign` = {campaign_id, size when it joined (itself
included), first member}. A campaign's first member is told nothing on its own event (it was
alone when decided): it becomes known when the second member's event names it. So a campaign
document is made of what any member says about it, and every member says the same first member:

- `_id` = `campaign_id`; `$setOnInsert` of `scope`, `legislation_ref`, `unit`, the first member
  (`first_submission_id`, `first_reference`) and `created_at` (when the archive first heard);
- `$max` of `size` and of `last_seen_at` (the latest member's `occurred_at`).

`$max` and `$setOnInsert` make the update idempotent and order-free: a redelivered member, a
replay of the topic or a member archived after a later one (size 3 before size 2) leaves the
same document. Each batch writes one upsert per campaign it mentions, whatever the number of
members (`changes`), because on FerretDB 1.24 every update scans the collection; the collection
holds campaigns, not members, so it stays small next to `events` and `submissions`.

Why not insert-only, like `submissions`? A listing sorted by size needs each campaign's current
size in one document; size marks per member would make every page skip over every smaller mark
of every larger campaign (a 10,000-member campaign is 9,999 stale marks).

The representative text of a campaign is its first member's subject and body, read from the
first member's own archived events when a client with the `personal_data` scope lists
campaigns (`representative_text`): the projection itself holds no personal data.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from shared import events

Document = dict[str, Any]

_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_REFERENCE: Final = re.compile(r"SADA-[0-9A-Z]{4}-[0-9A-Z]{4}")
_UNIT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LEGISLATION_REF: Final = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
"""A draft law's reference as a channel gave it (at most 64 characters, no control ones)."""

LEGISLATION_SCOPE: Final = "legislation:"
UNIT_SCOPE: Final = "unit:"

TEXT_EVENTS: Final = ("submission.grouped", "submission.routed", "submission.accepted")
"""Events that carry the submission as accepted, in the order a representative's text is taken
from: the grouped event is the text the campaigns service compared (its lowest position, for an
edited resubmission grouped twice), the others stand in while it is not archived yet."""


@dataclass(frozen=True, slots=True)
class Membership:
    """What one grouped event says about the campaign its submission joined (no personal data)."""

    campaign_id: str
    scope: str
    size: int
    first_submission_id: str
    first_reference: str
    legislation_ref: str | None
    unit: str | None
    occurred_at: datetime


def membership(event: events.SubmissionGrouped) -> Membership | None:
    """Return the campaign membership a grouped event reports, or None.

    None when the submission joined no campaign (yet), and when a field is not of the form the
    projection keeps (an identifier, a reference, a known scope): such an event is archived on
    its chain like any other but not projected.
    """
    joined = event.payload.campaign
    if joined is None:
        return None
    scope = event.payload.scope
    legislation_ref = unit = None
    if scope.startswith(LEGISLATION_SCOPE):
        legislation_ref = scope.removeprefix(LEGISLATION_SCOPE)
        if not _LEGISLATION_REF.fullmatch(legislation_ref):
            return None
    elif scope.startswith(UNIT_SCOPE):
        unit = scope.removeprefix(UNIT_SCOPE)
        if not _UNIT.fullmatch(unit):
            return None
    else:
        return None
    decided_unit = event.payload.decision.unit
    ids_ok = _ID.fullmatch(joined.campaign_id) and _ID.fullmatch(joined.first_submission_id)
    if not (ids_ok and _REFERENCE.fullmatch(joined.first_reference) and joined.size >= 1):
        return None
    return Membership(
        campaign_id=joined.campaign_id,
        scope=scope,
        size=joined.size,
        first_submission_id=joined.first_submission_id,
        first_reference=joined.first_reference,
        legislation_ref=legislation_ref,
        unit=unit or (decided_unit if _UNIT.fullmatch(decided_unit) else None),
        occurred_at=event.occurred_at,
    )


def changes(members: Iterable[Membership]) -> list[Membership]:
    """Return one membership per campaign: its largest size and latest time in `members`.

    The first member and the scope are the same on every member of a campaign; the first one
    seen is kept, as `$setOnInsert` keeps the first one stored.
    """
    merged: dict[str, Membership] = {}
    for member in members:
        known = merged.get(member.campaign_id)
        if known is None:
            merged[member.campaign_id] = member
            continue
        merged[member.campaign_id] = Membership(
            campaign_id=known.campaign_id,
            scope=known.scope,
            size=max(known.size, member.size),
            first_submission_id=known.first_submission_id,
            first_reference=known.first_reference,
            legislation_ref=known.legislation_ref,
            unit=known.unit,
            occurred_at=max(known.occurred_at, member.occurred_at),
        )
    return list(merged.values())


def update(member: Membership, now: datetime) -> Document:
    """Return the idempotent, order-free upsert of `member`'s campaign (see the module doc)."""
    on_insert: Document = {
        "scope": member.scope,
        "first_submission_id": member.first_submission_id,
        "first_reference": member.first_reference,
        "created_at": now,
    }
    if member.legislation_ref is not None:
        on_insert["legislation_ref"] = member.legislation_ref
    if member.unit is not None:
        on_insert["unit"] = member.unit
    return {
        "$setOnInsert": on_insert,
        "$max": {"size": member.size, "last_seen_at": member.occurred_at},
    }


def scope_of(legislation_ref: str | None, unit: str | None) -> str:
    """Return the scope a listing asks for: the draft law's, else the unit's."""
    if legislation_ref is not None:
        return f"{LEGISLATION_SCOPE}{legislation_ref}"
    return f"{UNIT_SCOPE}{unit}"


@dataclass(frozen=True, slots=True)
class CampaignPosition:
    """A keyset position in the campaign listing: size (descending), then id (ascending)."""

    size: int
    id: str


class BadCursorError(ValueError):
    """The cursor is not one this API issued."""


def encode_cursor(position: CampaignPosition) -> str:
    """Return an opaque cursor for `position`."""
    raw = orjson.dumps([position.size, position.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> CampaignPosition:
    """Return the position of a cursor made by `encode_cursor`; raise `BadCursorError`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        size, ident = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadCursorError("cursor is not valid") from exc
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
        raise BadCursorError("cursor is not valid")
    if not (isinstance(ident, str) and _ID.fullmatch(ident)):
        raise BadCursorError("cursor is not valid")
    return CampaignPosition(size, ident)


def listing_filter(scope: str, after: CampaignPosition | None) -> Document:
    """Return the MongoDB filter of a listing page; `scope` is built from validated values."""
    found: Document = {"scope": scope}
    if after is not None:
        found["$or"] = [
            {"size": {"$lt": after.size}},
            {"size": after.size, "_id": {"$gt": after.id}},
        ]
    return found


@dataclass(frozen=True, slots=True)
class Text:
    """A submission's own words: personal data, served only with the `personal_data` scope."""

    subject: str | None
    body: str | None


def representative_text(chain_events: Sequence[Mapping[str, Any]]) -> dict[str, Text]:
    """Return each chain's submission text, from its archived events (see `TEXT_EVENTS`).

    A chain with no readable text event is left out. An event whose stored text is not JSON
    (tampered: `verify` says so) is passed over.
    """
    best: dict[str, tuple[tuple[int, int], Text]] = {}
    for doc in chain_events:
        kind = doc.get("event_type")
        if kind not in TEXT_EVENTS:
            continue
        order = (TEXT_EVENTS.index(str(kind)), _int(doc.get("seq")))
        chain = str(doc.get("submission_id"))
        if chain in best and best[chain][0] <= order:
            continue
        text = _text(doc.get("event"))
        if text is not None:
            best[chain] = (order, text)
    return {chain: text for chain, (_, text) in best.items()}


def _text(stored: object) -> Text | None:
    try:
        event = orjson.loads(stored) if isinstance(stored, str) else None
    except orjson.JSONDecodeError:
        return None
    payload = event.get("payload") if isinstance(event, dict) else None
    sub = payload.get("submission") if isinstance(payload, dict) else None
    if not isinstance(sub, dict):
        return None
    subject, body = sub.get("subject"), sub.get("body")
    return Text(
        subject=subject if isinstance(subject, str) else None,
        body=body if isinstance(body, str) else None,
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) else 1 << 62
