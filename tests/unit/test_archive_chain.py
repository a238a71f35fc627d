"""The hash chain: sealing and verification find every edit, deletion and insertion."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from services.archive import records
from services.archive.chain import (
    EMPTY,
    GENESIS,
    Anchor,
    BreakKind,
    Head,
    link_hash,
    seal,
    verify_chain,
)
from services.archive.settings import ArchiveTopics
from tests import archive_samples as samples
from tests.archive_samples import record

NOW = datetime(2026, 11, 30, tzinfo=UTC)
TOPICS = ArchiveTopics()


def _chain(length: int = 4) -> tuple[str, list[dict[str, Any]]]:
    sub = samples.submission()
    chain_events = [samples.accepted(sub), samples.routed(sub), samples.notified(sub)]
    extra = [samples.notified(sub, unit=f"unit_{i}") for i in range(length - 3)]
    docs, head = [], EMPTY
    for i, event in enumerate([*chain_events, *extra]):
        entry = records.read(record(TOPICS.accepted, samples.encode(event), offset=i), TOPICS)
        doc = seal(entry, head, NOW)
        head = Head(doc["seq"], doc["hash"])
        docs.append(doc)
    return sub.submission_id, docs


def _rehash(doc: dict[str, Any]) -> None:
    doc["hash"] = link_hash(doc["prev_hash"], doc["event"])


def test_hash_is_sha256_of_previous_hash_and_canonical_event() -> None:
    _, docs = _chain()
    assert docs[0]["prev_hash"] == GENESIS
    expected = hashlib.sha256((GENESIS + docs[0]["event"]).encode()).hexdigest()
    assert docs[0]["hash"] == expected
    assert [d["seq"] for d in docs] == [0, 1, 2, 3]
    assert all(docs[i]["prev_hash"] == docs[i - 1]["hash"] for i in range(1, 4))


def test_intact_chain_has_no_break() -> None:
    chain, docs = _chain()
    anchors = [Anchor(d["seq"], d["hash"], d["_id"], "x") for d in docs]
    assert verify_chain(chain, reversed(docs), anchors) == []


def test_edited_event_is_reported_at_its_position() -> None:
    chain, docs = _chain()
    docs[1]["event"] = docs[1]["event"].replace("legislations_office", "voice_of_customer")
    breaks = verify_chain(chain, docs)
    assert [(b.seq, b.kind) for b in breaks] == [(1, BreakKind.EDITED)]
    assert breaks[0].event_id == docs[1]["_id"]
    assert breaks[0].submission_id == chain


def test_edited_and_rehashed_event_breaks_the_next_link() -> None:
    chain, docs = _chain()
    docs[1]["event"] = docs[1]["event"].replace("legislations_office", "voice_of_customer")
    _rehash(docs[1])
    assert [(b.seq, b.kind) for b in verify_chain(chain, docs)] == [(1, BreakKind.EDITED)]


def test_edited_field_outside_the_hash_contradicting_the_event_is_reported() -> None:
    chain, docs = _chain()
    docs[2]["event_type"] = "submission.rejected"
    assert [(b.seq, b.kind) for b in verify_chain(chain, docs)] == [(2, BreakKind.EDITED)]


def test_deleted_event_leaves_a_gap_that_is_reported() -> None:
    chain, docs = _chain()
    del docs[1]
    assert [(b.seq, b.kind) for b in verify_chain(chain, docs)] == [(1, BreakKind.DELETED)]


def test_deleted_first_event_is_reported_at_position_zero() -> None:
    chain, docs = _chain()
    del docs[0]
    assert [(b.seq, b.kind) for b in verify_chain(chain, docs)] == [(0, BreakKind.DELETED)]


def test_deleted_and_renumbered_events_still_break_a_link() -> None:
    chain, docs = _chain()
    del docs[1]
    for i, doc in enumerate(docs):
        doc["seq"] = i
    breaks = verify_chain(chain, docs)
    assert [b.seq for b in breaks] == [0]
    assert breaks[0].kind is BreakKind.EDITED  # indistinguishable from a rewrite of seq 0


def test_inserted_event_between_two_is_reported() -> None:
    chain, docs = _chain()
    forged = dict(docs[3])
    forged["_id"] = "forged"
    forged["prev_hash"] = docs[0]["hash"]
    forged["event"] = forged["event"].replace(docs[3]["_id"], "forged")
    _rehash(forged)
    forged["seq"] = 1
    for doc in docs[1:]:
        doc["seq"] += 1
    breaks = verify_chain(chain, [docs[0], forged, *docs[1:]])
    assert [(b.seq, b.kind) for b in breaks] == [(1, BreakKind.INSERTED)]
    assert breaks[0].event_id == "forged"


def test_two_events_at_one_position_are_reported_as_inserted() -> None:
    chain, docs = _chain()
    twin = dict(docs[2])
    twin["_id"] = "zz-twin"
    breaks = verify_chain(chain, [*docs, twin])
    assert (2, BreakKind.INSERTED) in [(b.seq, b.kind) for b in breaks]


def test_deleted_last_event_is_found_through_its_status_snapshot() -> None:
    chain, docs = _chain(3)
    anchors = [Anchor(d["seq"], d["hash"], d["_id"], "notified") for d in docs[-1:]]
    breaks = verify_chain(chain, docs[:-1], anchors)
    assert [(b.seq, b.kind) for b in breaks] == [(2, BreakKind.DELETED)]


def test_rewritten_last_event_is_found_through_its_status_snapshot() -> None:
    chain, docs = _chain(3)
    anchors = [Anchor(docs[2]["seq"], docs[2]["hash"], docs[2]["_id"], "notified")]
    docs[2]["event"] = docs[2]["event"].replace("legislations_office", "x")
    _rehash(docs[2])
    assert [(b.seq, b.kind) for b in verify_chain(chain, docs, anchors)] == [(2, BreakKind.EDITED)]


def test_chain_whose_events_all_vanished_is_reported_from_its_snapshots() -> None:
    breaks = verify_chain("s-1", [], [Anchor(0, "a" * 64, "e-1", "accepted")])
    assert [(b.seq, b.kind) for b in breaks] == [(0, BreakKind.DELETED)]


def test_document_moved_to_another_chain_is_reported() -> None:
    chain, docs = _chain()
    docs[3]["submission_id"] = "other"
    breaks = verify_chain(chain, [*docs[:3], docs[3]])
    assert (3, BreakKind.EDITED) in [(b.seq, b.kind) for b in breaks]
