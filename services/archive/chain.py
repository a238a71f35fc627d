"""The per-submission hash chain: how an event is sealed, and how a chain is verified.

Each archived event carries `seq` (0, 1, 2… within its submission), `prev_hash` (the previous
event's `hash`, or `GENESIS` for the first) and `hash` = SHA-256(prev_hash + canonical JSON).
Editing an event, deleting one, or slipping one in breaks a link `verify_chain` reports with the
submission and the position. Status snapshots (see `projection.py`) name the event that set
them, which anchors the chain's tail as well: deleting the last event is found too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import orjson

from services.archive.records import Entry

GENESIS: Final = "0" * 64
"""The `prev_hash` of the first event of every chain."""

Document = dict[str, Any]


def link_hash(prev_hash: str, canonical: str) -> str:
    """Return SHA-256 (hex) over the previous hash followed by the event's canonical JSON."""
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Head:
    """The last event of a chain: its position and hash."""

    seq: int
    hash: str


EMPTY: Final = Head(seq=-1, hash=GENESIS)
"""The head of a chain that has no event yet."""


def seal(entry: Entry, head: Head, archived_at: datetime) -> Document:
    """Return the `events` document for `entry` appended after `head`."""
    doc: Document = {
        "_id": entry.event_id,
        "submission_id": entry.chain_id,
        "seq": head.seq + 1,
        "prev_hash": head.hash,
        "hash": link_hash(head.hash, entry.canonical),
        "event_type": entry.event_type,
        "reference": entry.reference,
        "topic": entry.topic,
        "partition": entry.partition,
        "offset": entry.offset,
        "occurred_at": entry.occurred_at,
        "archived_at": archived_at,
        "event": entry.canonical,
    }
    if entry.facts.receipt_id:
        doc["receipt_id"] = entry.facts.receipt_id
    if entry.key_id:
        doc["key_id"] = entry.key_id  # erase/export find a person's events by it
    return doc


def seal_direct(
    event_id: str,
    chain_id: str,
    event_type: str,
    canonical: str,
    head: Head,
    occurred_at: datetime,
    archived_at: datetime,
) -> Document:
    """Return the `events` document of an event the archive writes itself, after `head`.

    The access log and `privacy.erased` records are not consumed from Kafka: no topic, partition
    or offset, only the chain link.
    """
    return {
        "_id": event_id,
        "submission_id": chain_id,
        "seq": head.seq + 1,
        "prev_hash": head.hash,
        "hash": link_hash(head.hash, canonical),
        "event_type": event_type,
        "occurred_at": occurred_at,
        "archived_at": archived_at,
        "event": canonical,
    }


class BreakKind(StrEnum):
    """What a broken link says happened to the chain."""

    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"


@dataclass(frozen=True, slots=True)
class Break:
    """One broken link: which chain, at which position, and what it looks like."""

    submission_id: str
    seq: int
    kind: BreakKind
    detail: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Anchor:
    """A status snapshot's record of the event that set it (`seq`, `hash`, `event_id`)."""

    seq: int
    hash: str
    event_id: str
    status: str


def verify_chain(
    submission_id: str, docs: Iterable[Mapping[str, Any]], anchors: Iterable[Anchor] = ()
) -> list[Break]:
    """Recompute a chain and return every broken link, in position order.

    - `edited`: a document's hash does not match its event (or its fields contradict the hashed
      event), or a self-consistent event no longer matches its successor's `prev_hash`;
    - `deleted`: positions are missing, or a snapshot names an event that is gone;
    - `inserted`: two events share a position, or an event sits between two that link directly.
    """
    chain = sorted(docs, key=lambda d: (_seq(d), str(d.get("_id"))))
    breaks: dict[tuple[int, BreakKind], Break] = {}

    def report(seq: int, kind: BreakKind, detail: str, event_id: object = None) -> None:
        breaks.setdefault(
            (seq, kind),
            Break(submission_id, seq, kind, detail, str(event_id) if event_id else None),
        )

    expected = 0
    placed: list[Mapping[str, Any]] = []  # the documents accepted at positions 0, 1, 2…
    for doc in chain:
        seq, event_id = _seq(doc), doc.get("_id")
        problem = _content_problem(submission_id, doc)
        if problem is not None:
            report(seq, BreakKind.EDITED, problem, event_id)
        if seq < expected:
            report(seq, BreakKind.INSERTED, "a second event claims this position", event_id)
            continue
        if seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            report(expected, BreakKind.DELETED, f"position(s) {missing} missing", event_id)
        elif problem is None:
            _check_link(doc, placed, report)
        placed.append(doc)
        expected = seq + 1

    by_seq = {_seq(doc): doc for doc in placed}
    for anchor in anchors:
        anchored = by_seq.get(anchor.seq)
        if anchored is None:
            if not any(key[0] == anchor.seq for key in breaks):
                detail = f"the event named by the {anchor.status!r} snapshot is gone"
                report(anchor.seq, BreakKind.DELETED, detail, anchor.event_id)
        elif anchored.get("_id") != anchor.event_id or anchored.get("hash") != anchor.hash:
            detail = f"the event differs from the one named by the {anchor.status!r} snapshot"
            report(anchor.seq, BreakKind.EDITED, detail, anchored.get("_id"))
    return sorted(breaks.values(), key=lambda b: (b.seq, b.kind.value))


def _check_link(
    doc: Mapping[str, Any],
    placed: list[Mapping[str, Any]],
    report: Any,
) -> None:
    """Check `doc.prev_hash` against its predecessor and classify a mismatch."""
    previous = placed[-1] if placed else None
    expected_prev = previous.get("hash") if previous else GENESIS
    if doc.get("prev_hash") == expected_prev:
        return
    seq = _seq(doc)
    before = placed[-2] if len(placed) >= 2 else None
    skipped_to = before.get("hash") if before else (GENESIS if previous else None)
    if previous is not None and doc.get("prev_hash") == skipped_to:
        report(
            seq - 1,
            BreakKind.INSERTED,
            "this event is not linked: its successor links to its predecessor",
            previous.get("_id"),
        )
    elif previous is None:
        report(seq, BreakKind.DELETED, "the first event links to an event that is gone")
    else:
        report(
            seq - 1,
            BreakKind.EDITED,
            "this event was rewritten (or events after it deleted and renumbered): "
            "its successor's prev_hash does not match",
            previous.get("_id"),
        )


def _content_problem(submission_id: str, doc: Mapping[str, Any]) -> str | None:
    """Return why `doc` does not match its own hash and event, or None when it does."""
    event, prev_hash, stored = doc.get("event"), doc.get("prev_hash"), doc.get("hash")
    if not (isinstance(event, str) and isinstance(prev_hash, str) and isinstance(stored, str)):
        return "the event, prev_hash or hash field is missing or not a string"
    if link_hash(prev_hash, event) != stored:
        return "hash does not match the stored event"
    try:
        data = orjson.loads(event)
    except orjson.JSONDecodeError:
        return "the stored event is not JSON"
    if not isinstance(data, dict):
        return "the stored event is not a JSON object"
    if (
        data.get("event_id") != doc.get("_id")
        or data.get("submission_id") != submission_id
        or doc.get("submission_id") != submission_id
        or data.get("event_type") != doc.get("event_type")
    ):
        return "document fields contradict the hashed event"
    return None


def _seq(doc: Mapping[str, Any]) -> int:
    seq = doc.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else -1
