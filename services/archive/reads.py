"""The read side of the audit API: listings with cursors, a timeline, the export, campaigns.

A listing shows each submission once, by its *current* snapshot (the highest rank and revision):
snapshots matching the filters are read in keyset order and any that another supersedes is
skipped. The campaign listing is one read of the `campaigns` projection, plus, for a client
with the `personal_data` scope only, one read of the first members' events for their text.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from services.archive import campaigns
from services.archive.campaigns import CampaignPosition, Text
from services.archive.envelope import PERSONAL
from services.archive.personal_data import redact
from services.archive.privacy import KeyVault
from services.archive.projection import current, snapshot_order
from services.archive.records import STATUS_OF, canonical_json
from services.archive.status import RANK, RecordType
from services.archive.store import ArchiveStore, Position, SnapshotQuery

Document = dict[str, Any]

MAX_LIMIT = 200
MAX_CHUNKS = 10
"""Reads per listing page before a short page is returned with a cursor to go on."""


class BadCursorError(ValueError):
    """The cursor is not one this API issued."""


def encode_cursor(position: Position) -> str:
    """Return an opaque cursor for `position`."""
    raw = orjson.dumps([position.at.isoformat(), position.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """Return the position of a cursor made by `encode_cursor`; raise `BadCursorError`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ident = orjson.loads(raw)
        moment = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadCursorError("cursor is not valid") from exc
    if not isinstance(ident, str) or moment.tzinfo is None or len(ident) > 200:
        raise BadCursorError("cursor is not valid")
    return Position(moment, ident)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: current snapshots and where to go on, if anywhere."""

    items: list[Document]
    next: Position | None


async def list_submissions(
    store: ArchiveStore, query: SnapshotQuery, after: Position | None, limit: int
) -> Page:
    """Return a page of submissions matching `query`, each by its current state."""
    chunk_size = min(limit * 2, 2 * MAX_LIMIT)
    items: list[Document] = []
    exhausted = False
    for _ in range(MAX_CHUNKS):
        chunk = await store.list_snapshots(query, after, chunk_size)
        if not chunk:
            exhausted = True
            break
        family = _by_chain(await store.snapshots(sorted({d["submission_id"] for d in chunk})))
        for doc in chunk:
            after = Position(doc["created_at"], doc["_id"])
            mine = family.get(doc["submission_id"], [doc])
            if snapshot_order(doc) == max(snapshot_order(s) for s in mine):
                items.append(current(mine) or doc)
                if len(items) == limit:
                    break
        if len(items) == limit:
            break
        if len(chunk) < chunk_size:
            exhausted = True
            break
    return Page(items, None if exhausted else after)


@dataclass(frozen=True, slots=True)
class CampaignListing:
    """One page of campaigns, the representatives' texts (with scope only), where to go on."""

    items: list[Document]
    texts: dict[str, Text]
    """First member's submission id -> its text; empty for a client without `personal_data`."""
    next: CampaignPosition | None


async def list_campaigns(
    store: ArchiveStore,
    scope: str,
    after: CampaignPosition | None,
    limit: int,
    *,
    personal_data: bool,
    keys: KeyVault | None = None,
) -> CampaignListing:
    """Return a page of `scope`'s campaigns, largest first, then by id.

    One more campaign than asked is read to know whether a next page exists, so the last page
    has no cursor. The first members' texts are read only for a client allowed to see them:
    one query for the page (on FerretDB, a scan of `events`; never one per campaign).
    """
    found = await store.list_campaigns(scope, after, limit + 1)
    items = found[:limit]
    texts: dict[str, Text] = {}
    if personal_data and items:
        firsts = sorted({str(doc.get("first_submission_id")) for doc in items})
        docs = await store.chain_events(firsts)
        if keys is not None:
            docs = await clear_documents(keys, docs)
        texts = campaigns.representative_text(docs)
    after = None
    if len(found) > limit and items:
        after = CampaignPosition(int(items[-1]["size"]), str(items[-1]["_id"]))
    return CampaignListing(items, texts, after)


@dataclass(frozen=True, slots=True)
class Found:
    """A chain's current state (None when no snapshot exists yet) and its full timeline."""

    chain_id: str
    state: Document
    timeline: list[Document]


async def find_submission(store: ArchiveStore, key: str) -> Found | None:
    """Return a submission (by id or reference) with every event, its raw receipt included."""
    chain = await store.chain_for_reference(key) if key.startswith("SADA-") else key
    if chain is None:
        return None
    snapshots = await store.snapshots([chain])
    events = await store.chain_events([chain])
    if not snapshots and not events:
        return None
    receipts = sorted({str(d["receipt_id"]) for d in events if d.get("receipt_id")} - {chain})
    if receipts:
        events += await store.chain_events(receipts)
    events.sort(key=_timeline_order)
    state = current(snapshots) or _state_from_events(chain, events)
    return Found(chain, state, events)


def _timeline_order(doc: Document) -> tuple[Any, int, int]:
    """Order a timeline by time, then by lifecycle stage, then by chain position.

    Events are stamped to the millisecond (BSON dates), so a fast pipeline gives several events
    of one submission the same instant; and the archive reads each topic on its own, so arrival
    order (`seq`) may put a routed event before the acceptance it follows. The lifecycle stage
    (received, accepted, routed, notified) breaks such ties the way they really happened.
    """
    status = STATUS_OF.get(str(doc.get("event_type")))
    return doc.get("occurred_at"), RANK[status] if status else len(RANK), doc["seq"]


def _state_from_events(chain: str, events: list[Document]) -> Document:
    """Return a minimal state for a chain whose snapshot is not written yet."""
    own = [d for d in events if d.get("submission_id") == chain]
    status = max(
        (STATUS_OF[d["event_type"]] for d in own if d.get("event_type") in STATUS_OF),
        key=lambda s: RANK[s],
    )
    return {
        "submission_id": chain,
        "record": RecordType.SUBMISSION.value,
        "status": status.value,
        "rank": RANK[status],
        "reference": next((d.get("reference") for d in own if d.get("reference")), None),
        "created_at": min(d["archived_at"] for d in own),
        "archived_at": max(d["archived_at"] for d in own),
    }


async def clear_documents(keys: KeyVault, docs: list[Document]) -> list[Document]:
    """Return `docs` with each sealed event's text in clear (or `[erased]`), for reading only."""
    clear = await keys.reveal(docs)
    return [
        {**doc, "event": canonical_json(clear[doc["_id"]])} if doc["_id"] in clear else doc
        for doc in docs
    ]


async def export_lines(
    store: ArchiveStore,
    since: datetime,
    until: datetime,
    page_size: int,
    *,
    personal_data: bool,
    keys: KeyVault | None = None,
) -> AsyncIterator[bytes]:
    """Yield every event archived in [since, until) as JSON lines, oldest first.

    `event` is the exact canonical text that was hashed, so an auditor can recompute
    SHA-256(prev_hash + event) without trusting this service; without `personal_data`, an
    event holding personal data is redacted instead (see `export_record`).
    """
    after: Position | None = None
    while True:
        page = await store.events_between(since, until, after, page_size)
        clear = await keys.reveal(page) if keys is not None and personal_data else {}
        for doc in page:
            line = export_record(doc, personal_data=personal_data, clear=clear.get(doc["_id"]))
            yield orjson.dumps(line) + b"\n"
        if len(page) < page_size:
            return
        after = Position(page[-1]["archived_at"], page[-1]["_id"])


def export_record(
    doc: Mapping[str, Any], *, personal_data: bool = True, clear: Document | None = None
) -> Document:
    """Return the exported form of an event document.

    `event` is always the stored text (its personal data sealed: `[encrypted]` values and a
    `personal` ciphertext); with `personal_data`, `clear` is that event opened (`[erased]`
    values where its data key is destroyed).

    Without `personal_data`, an event holding personal data is exported as the canonical JSON of
    its redacted form with `redacted: true`: its `hash` and `prev_hash` still link the chain,
    but its content hash can only be checked by the archive (`/verify`) or a reader with scope.
    """
    event, redacted = doc.get("event"), False
    if not personal_data and isinstance(event, str):
        event, redacted = _redacted(event)
    record: Document = {
        "event_id": doc["_id"],
        "submission_id": doc.get("submission_id"),
        "seq": doc.get("seq"),
        "prev_hash": doc.get("prev_hash"),
        "hash": doc.get("hash"),
        "event_type": doc.get("event_type"),
        "reference": doc.get("reference"),
        "topic": doc.get("topic"),
        "partition": doc.get("partition"),
        "offset": doc.get("offset"),
        "occurred_at": _iso(doc.get("occurred_at")),
        "archived_at": _iso(doc.get("archived_at")),
        "event": event,
        "redacted": redacted,
    }
    if clear is not None:
        record["clear"] = canonical_json(clear)
    return record


def _redacted(event: str) -> tuple[str, bool]:
    """Return the event text with personal data redacted, and whether any was."""
    try:
        data = orjson.loads(event)
    except orjson.JSONDecodeError:
        return "", True  # tampered beyond JSON: nothing of it can be shown safely
    if isinstance(data, dict):
        data.pop(PERSONAL, None)  # the ciphertext: nothing a reader without scope can use
    cleaned, changed = redact(data)
    return (canonical_json(cleaned), True) if changed else (event, False)


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _by_chain(snapshots: Iterable[Document]) -> dict[str, list[Document]]:
    family: dict[str, list[Document]] = defaultdict(list)
    for snap in snapshots:
        family[snap["submission_id"]].append(snap)
    return family
