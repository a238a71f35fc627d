"""The archive's store on the real FerretDB: what its duplicate-key errors say, and indexes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo.errors import BulkWriteError

from services.archive.store import MongoArchiveStore
from shared.mongo import DUPLICATE_KEY, make_client
from shared.settings import MongoSettings
from tests import infra


@pytest.fixture
async def store() -> AsyncIterator[MongoArchiveStore]:
    client = make_client(MongoSettings(uri=infra.MONGO_URI), app_name="it-archive")
    database = infra.unique("it_archive_store")
    store = MongoArchiveStore(client, database)
    await store.ensure_indexes()
    try:
        yield store
    finally:
        await client.drop_database(database)
        await client.close()


def _doc(event_id: str, chain: str, seq: int) -> dict[str, object]:
    return {"_id": event_id, "submission_id": chain, "seq": seq, "hash": f"h-{event_id}"}


async def test_bulk_write_error_of_ferretdb_carries_code_11000_and_the_index_of_each_refusal(
    store: MongoArchiveStore,
) -> None:
    await store.events.insert_many([_doc("e1", "s", 0)])
    with pytest.raises(BulkWriteError) as caught:
        await store.events.insert_many(
            [_doc("e1", "s", 7), _doc("e2", "s", 1), _doc("e3", "s", 0)], ordered=False
        )
    errors = caught.value.details["writeErrors"]
    assert [(e["index"], e["code"]) for e in errors] == [(0, DUPLICATE_KEY), (2, DUPLICATE_KEY)]
    assert caught.value.details["nInserted"] == 1
    # Which index refused is not reliably said (FerretDB 1.24 gives neither keyPattern nor an
    # index name), which is why the archive reads the refused ids back to tell them apart.


async def test_refused_events_are_told_apart_redelivery_from_lost_race(
    store: MongoArchiveStore,
) -> None:
    assert await store.insert_events([_doc("e1", "s", 0), _doc("e2", "s", 1)]) == set()
    refused = await store.insert_events(
        [_doc("e1", "s", 5), _doc("e9", "s", 1), _doc("e4", "t", 0)]
    )
    assert refused == {0, 1}
    stored = await store.find_events(["e1", "e9"])
    assert set(stored) == {"e1"}  # e1 is a redelivery (a no-op); e9 lost position 1
    assert (stored["e1"]["submission_id"], stored["e1"]["seq"]) == ("s", 0)
    assert [d["_id"] for d in await store.chain_events(["s", "t"])] == ["e1", "e2", "e4"]


async def test_an_ordered_append_stops_at_the_first_refusal_and_stores_nothing_after_it(
    store: MongoArchiveStore,
) -> None:
    assert await store.append_events([_doc("a1", "c", 0)]) == 1
    appended = await store.append_events(
        [_doc("a2", "c", 1), _doc("a3", "c", 0), _doc("a4", "c", 2), _doc("a5", "d", 0)]
    )
    assert appended == 1  # a3 takes a used position: a4 (linked after it) and a5 are not stored
    assert [d["_id"] for d in await store.chain_events(["c", "d"])] == ["a1", "a2"]
    assert await store.append_events([]) == 0


async def test_an_existing_snapshot_is_left_as_it_is(store: MongoArchiveStore) -> None:
    await store.insert_snapshots([{"_id": "s:3:1", "submission_id": "s", "status": "accepted"}])
    await store.insert_snapshots(
        [
            {"_id": "s:3:1", "submission_id": "s", "status": "tampered"},
            {"_id": "s:4:1", "submission_id": "s", "status": "routed"},
        ]
    )
    assert sorted(d["status"] for d in await store.snapshots(["s"])) == ["accepted", "routed"]


async def test_on_ferretdb_auto_creates_only_the_unique_chain_index(
    store: MongoArchiveStore,
) -> None:
    assert await store.wants_query_indexes() is False  # FerretDB never uses them for queries
    events = await store.events.index_information()
    assert events["chain"]["unique"] is True
    assert events["chain"]["key"] == [("submission_id", 1), ("seq", 1)]
    assert set(events) == {"_id_", "chain"}


async def test_query_indexes_for_every_listing_are_created_when_asked_and_idempotent(
    store: MongoArchiveStore,
) -> None:
    forced = MongoArchiveStore(store.client, store.events.database.name, query_indexes="always")
    await forced.ensure_indexes()
    await forced.ensure_indexes()  # again: FerretDB 1.24 would panic on a multi-index repeat
    assert {"chain", "export"} <= set(await store.events.index_information())
    names = set(await store.submissions.index_information())
    assert {
        "chain",
        "reference",
        "list",
        "list_status",
        "list_unit",
        "list_channel",
        "list_kind",
    } <= names
