"""The archiver logs every consumed record, duplicates included, naming the stored event."""

from __future__ import annotations

import pytest

from services.archive.archiver import Archiver
from services.archive.partition_log import PartitionLog, leaf_of
from services.archive.settings import ArchiveTopics
from tests import archive_samples as samples
from tests.archive_samples import record
from tests.component.archive_fake import InMemoryArchiveStore, MemoryLogStore

pytestmark = pytest.mark.component

TOPICS = ArchiveTopics()


async def test_every_record_gets_a_leaf_naming_the_stored_events_hash_even_a_duplicate() -> None:
    store, logs = InMemoryArchiveStore(), MemoryLogStore()
    archiver = Archiver(store, TOPICS, cache_size=100, partition_log=PartitionLog(logs))
    sub = samples.submission()
    accepted = samples.encode(samples.accepted(sub))
    routed = samples.encode(samples.routed(sub))
    await archiver.archive(
        [record(TOPICS.accepted, accepted, offset=0), record(TOPICS.routed, routed, offset=0)]
    )
    # A producer retry (the same event at a new offset) and a redelivery of offset 0.
    await archiver.archive(
        [record(TOPICS.accepted, accepted, offset=0), record(TOPICS.accepted, accepted, offset=1)]
    )
    leaves = sorted(logs.leaf_docs.values(), key=lambda d: (d["topic"], d["index"]))
    assert [(d["topic"], d["index"], d["offset"]) for d in leaves] == [
        (TOPICS.accepted, 0, 0),
        (TOPICS.accepted, 1, 1),
        (TOPICS.routed, 0, 0),
    ]
    stored = {doc["_id"]: doc["hash"] for doc in store.events.values()}
    for leaf in leaves:
        assert leaf["hash"] == stored[leaf["event_id"]]
        assert leaf_of(leaf).hex() == leaf["leaf"]  # type: ignore[union-attr]
    assert leaves[0]["event_id"] == leaves[1]["event_id"]
    assert leaves[0]["reference"] == sub.reference


async def test_a_batch_whose_leaves_fail_is_retried_without_duplicating_anything() -> None:
    store, logs = InMemoryArchiveStore(), MemoryLogStore()
    archiver = Archiver(store, TOPICS, cache_size=100, partition_log=PartitionLog(logs))
    sub = samples.submission()
    batch = [record(TOPICS.accepted, samples.encode(samples.accepted(sub)), offset=7)]
    failing = logs.insert_leaves

    async def down(docs: object) -> set[int]:
        raise ConnectionError("database gone (fake)")

    logs.insert_leaves = down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await archiver.archive(batch)
    assert len(store.events) == 1
    assert not logs.leaf_docs
    logs.insert_leaves = failing  # type: ignore[method-assign]
    await archiver.archive(batch)  # the redelivery: the event is a repeat, its leaf is new
    assert [(d["index"], d["offset"]) for d in logs.leaf_docs.values()] == [(0, 7)]
    assert logs.heads[f"{TOPICS.accepted}/0"]["last_offset"] == 7
