"""The partition log writer: dense indexes in offset order, redeliveries skipped, another
writer's leaves or head detected (the batch is retried), checkpoints of what was advanced."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.archive import checkpoints
from services.archive.merkle import Frontier, leaf_hash
from services.archive.partition_log import Checkpointer, PartitionLog, leaf_data, leaf_of
from services.archive.records import Entry, Facts
from services.archive.status import RecordType, Status
from shared.retry import TransientError
from tests.component.archive_fake import MemoryLogStore

pytestmark = pytest.mark.unit

Document = dict[str, Any]
AT = datetime(2026, 12, 3, tzinfo=UTC)


def _entry(offset: int, partition: int = 0, event_id: str | None = None) -> Entry:
    return Entry(
        event_id=event_id or f"e-{partition}-{offset}",
        chain_id=f"s-{offset}",
        event_type="submission.accepted",
        reference=None,
        topic="t",
        partition=partition,
        offset=offset,
        occurred_at=AT,
        canonical="{}",
        facts=Facts(RecordType.SUBMISSION, Status.RECEIVED),
    )


def _hashes(entries: Sequence[Entry]) -> dict[str, str]:
    return {e.event_id: f"h-{e.event_id}" for e in entries}


async def test_leaves_are_dense_in_offset_order_and_the_head_holds_the_root() -> None:
    store = MemoryLogStore()
    entries = [_entry(o) for o in (5, 3, 4)] + [_entry(0, partition=1)]
    assert await PartitionLog(store).append(entries, _hashes(entries)) == 4
    assert [store.leaf_docs[f"t/0/{i}"]["offset"] for i in range(3)] == [3, 4, 5]
    frontier = Frontier()
    for i in range(3):
        doc = store.leaf_docs[f"t/0/{i}"]
        assert leaf_of(doc) == leaf_hash(
            leaf_data("t", 0, doc["offset"], doc["event_id"], doc["hash"])
        )
        assert doc["leaf"] == leaf_of(doc).hex()  # type: ignore[union-attr]
        frontier.append(bytes.fromhex(doc["leaf"]))
    head = store.heads["t/0"]
    assert (head["size"], head["last_offset"]) == (3, 5)
    assert Frontier.from_hex(3, head["frontier"]).root() == frontier.root()


async def test_a_redelivered_record_is_not_logged_twice_even_by_a_fresh_writer() -> None:
    store = MemoryLogStore()
    entries = [_entry(o) for o in range(4)]
    await PartitionLog(store).append(entries, _hashes(entries))
    again = [*entries[2:], _entry(4)]
    assert await PartitionLog(store).append(again, _hashes(again)) == 1  # reads the head
    assert sorted(store.leaf_docs) == [f"t/0/{i}" for i in range(5)]


async def test_leaves_stored_before_a_crash_are_accepted_when_identical() -> None:
    store = MemoryLogStore()
    entries = [_entry(o) for o in range(3)]
    await PartitionLog(store).append(entries, _hashes(entries))
    store.heads["t/0"] = {
        "_id": "t/0",
        "size": 1,
        "last_offset": 0,
        "frontier": store.heads["t/0"]["frontier"][:0],
    }
    # Rebuild the head of one leaf as the crashed writer left it (leaves 1, 2 stored, head not).
    first = Frontier()
    first.append(bytes.fromhex(store.leaf_docs["t/0/0"]["leaf"]))
    store.heads["t/0"]["frontier"] = first.to_hex()
    assert await PartitionLog(store).append(entries, _hashes(entries)) == 2
    assert store.heads["t/0"]["size"] == 3


async def test_another_writers_leaf_at_the_same_index_makes_the_batch_retry() -> None:
    store = MemoryLogStore()
    stale, other = PartitionLog(store), PartitionLog(store)
    first = [_entry(0)]
    await stale.append(first, _hashes(first))
    taken = [_entry(1, event_id="other")]
    await other.append(taken, _hashes(taken))  # a rebalance: the other writer went on
    mine = [_entry(1, event_id="mine")]
    with pytest.raises(TransientError, match="taken by another record"):
        await stale.append(mine, _hashes(mine))
    retried = [_entry(1, event_id="mine"), _entry(2)]
    assert await stale.append(retried, _hashes(retried)) == 1  # head reloaded: offset 1 logged
    assert store.leaf_docs["t/0/2"]["offset"] == 2


async def test_a_moved_head_makes_the_batch_retry() -> None:
    store = MemoryLogStore()
    writer = PartitionLog(store)
    first = [_entry(0)]
    await writer.append(first, _hashes(first))
    store.heads["t/0"]["size"] = 7  # someone else moved it
    more = [_entry(1)]
    with pytest.raises(TransientError, match="head of log t/0 moved"):
        await writer.append(more, _hashes(more))


async def test_the_checkpointer_signs_only_logs_advanced_since_its_last_checkpoint(
    tmp_path: Path,
) -> None:
    store = MemoryLogStore()
    writer = PartitionLog(store)
    key = Ed25519PrivateKey.generate()
    signer = Checkpointer(writer, key, checkpoints.Witness(tmp_path, "w"), interval=60)
    entries = [_entry(0), _entry(0, partition=1)]
    await writer.append(entries, _hashes(entries))
    written = signer.checkpoint(AT)
    assert sorted(c.log for c in written) == ["t/0", "t/1"]
    assert all(checkpoints.verify(c, key.public_key()) is None for c in written)
    assert signer.checkpoint(AT) == []
    more = [_entry(1)]
    await writer.append(more, _hashes(more))
    (only,) = signer.checkpoint(AT)
    leaves = [bytes.fromhex(store.leaf_docs[f"t/0/{i}"]["leaf"]) for i in range(2)]
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert (only.log, only.size, only.root) == ("t/0", 2, frontier.root().hex())
    lines = (tmp_path / "2026-12-03" / "w.jsonl").read_text().splitlines()
    assert len(lines) == 3


async def test_a_checkpoint_the_witness_refused_is_signed_at_the_next_one(tmp_path: Path) -> None:
    writer = PartitionLog(MemoryLogStore())
    blocked = tmp_path / "witness"
    blocked.write_text("a file where the directory should be")
    signer = Checkpointer(
        writer, Ed25519PrivateKey.generate(), checkpoints.Witness(blocked, "w"), interval=60
    )
    entries = [_entry(0)]
    await writer.append(entries, _hashes(entries))
    with pytest.raises(NotADirectoryError):
        signer.checkpoint(AT)
    blocked.unlink()
    (again,) = signer.checkpoint(AT)
    assert (again.log, again.size) == ("t/0", 1)
