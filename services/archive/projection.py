"""The `submissions` projection: append-only status snapshots, and the chain-state cache.

A submission's current state is its snapshot with the highest (`rank`, `revision`), where
`_id` = `<submission_id>:<rank>:<revision>` and `revision` counts the facts it knows. So
out-of-order events never move a status backwards, and the projection is written with inserts
only (a repeat is a harmless duplicate key). When a late, lower-ranked event brings facts the
current snapshot lacks (the `accepted` event archived after `notified`, say), a new revision at
the same rank is inserted. Each snapshot is self-contained (reference, channel, kind, unit, rule,
times) so a listing reads one document per submission, and it names an event of the chain
(`event_id`, `seq`, `hash`), which anchors the chain's tail for `verify`.

Why not one document per submission updated in place? On FerretDB 1.24 (SQLite) every update
and every read other than an insert scans the whole collection (its `_id` index is not used by
its own queries): an upsert costs ~130 ms at 10k documents and grows linearly, which would make
the archive fall hopelessly behind. Inserts stay constant-time.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.archive.chain import EMPTY, Anchor, Head
from services.archive.records import Entry
from services.archive.status import RANK, RecordType, Status, rank_of

Document = dict[str, Any]

FACT_FIELDS = ("channel", "kind", "language", "unit", "rule_id", "receipt_id")
_SLOT = {name: i for i, name in enumerate(FACT_FIELDS)}
_SHARED = frozenset(FACT_FIELDS) - {"receipt_id"}
"""Facts whose values repeat across submissions (a channel, a unit): one string each, interned."""
Facts = tuple[str | None, ...]
"""A chain's facts in `FACT_FIELDS` order, None where unknown: a tuple, not a dict, because the
cache holds one per chain (88 bytes against 272 for six entries: services/archive/README.md)."""
NO_FACTS: Facts = (None,) * len(FACT_FIELDS)


@dataclass(slots=True)
class ChainState:
    """What the archive knows about one chain: its head and the submission's facts."""

    head: Head = EMPTY
    record: RecordType | None = None
    reference: str | None = None
    facts: Facts = NO_FACTS
    created_at: datetime | None = None
    first_event_at: datetime | None = None
    best_rank: int | None = None
    """The highest rank of a snapshot known to be stored; None when unknown."""
    revision: int = -1
    """The revision (facts known) of that snapshot."""
    status_at: datetime | None = None
    """When the status of that snapshot was reached."""

    @property
    def known(self) -> int:
        """How many facts are known: a snapshot's revision."""
        return sum(value is not None for value in self.facts) + (1 if self.reference else 0)

    def fact(self, name: str) -> str | None:
        """Return the known value of the fact `name`, or None."""
        return self.facts[_SLOT[name]]

    def add_fact(self, name: str, value: object) -> None:
        """Keep `value` for `name` unless one is known (first value wins; facts do not change)."""
        slot = _SLOT[name]
        if not value or not isinstance(value, str) or self.facts[slot] is not None:
            return
        facts = list(self.facts)
        shared = name in _SHARED and type(value) is str  # an enum member is one object already
        facts[slot] = sys.intern(value) if shared else value
        self.facts = tuple(facts)

    def learn(self, entry: Entry) -> None:
        """Merge what `entry` says (first value wins; a submission's facts do not change)."""
        self.record = _better_record(self.record, entry.facts.record)
        self.reference = self.reference or entry.reference
        for name in FACT_FIELDS:
            self.add_fact(name, getattr(entry.facts, name))
        if self.first_event_at is None or entry.occurred_at < self.first_event_at:
            self.first_event_at = entry.occurred_at


def _better_record(current: RecordType | None, new: RecordType) -> RecordType:
    # A chain holding any submission event is a submission; a receipt's dead letter stays a receipt.
    if current is None or new is RecordType.SUBMISSION:
        return new
    return current


class ChainCache:
    """Least-recently-used chain states, so appending needs no database read."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._states: OrderedDict[str, ChainState] = OrderedDict()

    def get(self, chain_id: str) -> ChainState | None:
        """Return the cached state, marking it recently used."""
        state = self._states.get(chain_id)
        if state is not None:
            self._states.move_to_end(chain_id)
        return state

    def put(self, chain_id: str, state: ChainState) -> ChainState:
        """Store `state`, evicting the least recently used beyond the size."""
        if self._size <= 0:
            return state
        self._states[chain_id] = state
        self._states.move_to_end(chain_id)
        while len(self._states) > self._size:
            self._states.popitem(last=False)
        return state

    def __contains__(self, chain_id: str) -> bool:
        return chain_id in self._states

    def __len__(self) -> int:
        return len(self._states)


def state_from_store(
    events: Iterable[Mapping[str, Any]], snapshots: Iterable[Mapping[str, Any]]
) -> ChainState:
    """Rebuild a chain's state from its stored events (head) and snapshots (facts)."""
    state = ChainState()
    archived: list[datetime] = []
    for doc in events:
        seq = doc.get("seq")
        if isinstance(seq, int) and seq > state.head.seq:
            state.head = Head(seq=seq, hash=str(doc.get("hash")))
        if isinstance(doc.get("archived_at"), datetime):
            archived.append(doc["archived_at"])
    for snap in sorted(snapshots, key=snapshot_order, reverse=True):
        record = snap.get("record")
        if isinstance(record, str) and record in set(RecordType):
            state.record = _better_record(state.record, RecordType(record))
        state.reference = state.reference or snap.get("reference")
        for name in FACT_FIELDS:
            state.add_fact(name, snap.get(name))
        for name in ("created_at", "first_event_at"):
            value = snap.get(name)
            if isinstance(value, datetime) and (
                getattr(state, name) is None or value < getattr(state, name)
            ):
                setattr(state, name, value)
        rank, revision = snapshot_order(snap)
        if rank >= 0 and (rank, revision) > (_or_minus_one(state.best_rank), state.revision):
            state.best_rank, state.revision = rank, revision
            at = snap.get("status_at")
            state.status_at = at if isinstance(at, datetime) else None
    if state.created_at is None and archived:
        state.created_at = min(archived)
    return state


def snapshot(
    state: ChainState,
    status: Status,
    status_at: datetime,
    anchor: Anchor,
    chain_id: str,
    archived_at: datetime,
) -> Document:
    """Return the `submissions` snapshot of `chain_id` at `status`, with every known fact."""
    rank, revision = RANK[status], state.known
    facts = {name: value for name, value in zip(FACT_FIELDS, state.facts, strict=True) if value}
    doc: Document = {
        "_id": f"{chain_id}:{rank}:{revision}",
        "submission_id": chain_id,
        "record": (state.record or RecordType.SUBMISSION).value,
        "status": status.value,
        "rank": rank,
        "revision": revision,
        "reference": state.reference,
        **facts,
        "created_at": state.created_at or archived_at,
        "first_event_at": state.first_event_at or status_at,
        "status_at": status_at,
        "archived_at": archived_at,
        "event_id": anchor.event_id,
        "seq": anchor.seq,
        "hash": anchor.hash,
    }
    if doc["reference"] is None:
        del doc["reference"]  # absent fields cost nothing to store; readers use .get
    return doc


def anchors_of(snapshots: Iterable[Mapping[str, Any]]) -> list[Anchor]:
    """Return the chain anchors named by stored snapshots (malformed ones are skipped)."""
    anchors = []
    for snap in snapshots:
        seq, digest, event_id = snap.get("seq"), snap.get("hash"), snap.get("event_id")
        if isinstance(seq, int) and isinstance(digest, str) and isinstance(event_id, str):
            anchors.append(Anchor(seq, digest, event_id, str(snap.get("status"))))
    return anchors


def current(snapshots: Iterable[Mapping[str, Any]]) -> Document | None:
    """Return a submission's current state: its highest-ranked snapshot, gaps filled from the rest.

    Facts missing on the current snapshot (possible after a restart) are taken from lower ones.
    """
    ordered = sorted(snapshots, key=snapshot_order, reverse=True)
    if not ordered:
        return None
    merged = dict(ordered[0])
    for older in ordered[1:]:
        for name in (*FACT_FIELDS, "reference"):
            if merged.get(name) is None and older.get(name) is not None:
                merged[name] = older[name]
        for name in ("created_at", "first_event_at"):
            if isinstance(older.get(name), datetime) and (
                not isinstance(merged.get(name), datetime) or older[name] < merged[name]
            ):
                merged[name] = older[name]
    return merged


def snapshot_order(snapshot: Mapping[str, Any]) -> tuple[int, int]:
    """Return what makes a snapshot current: the highest (rank, revision) wins."""
    revision = snapshot.get("revision", 0)
    return (
        rank_of(snapshot.get("status"), snapshot.get("rank")),
        revision if isinstance(revision, int) else 0,
    )


def _or_minus_one(rank: int | None) -> int:
    return -1 if rank is None else rank
