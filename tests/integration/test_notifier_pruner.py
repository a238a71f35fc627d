"""The notifier's pruner on the real FerretDB: only documents past the window go, redeliveries
inside it are still recognised, and one replica sweeps per interval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.notifier import deferred, ledger, pending
from services.notifier.ledger import LedgerEntry, MongoLedger
from services.notifier.pending import MongoPendingStore
from services.notifier.pruner import LEASE_NAME, LEASES, MongoDeleter, Pruner, mongo_lease
from services.notifier.retention import DAY_SECONDS, Sweep, Window
from shared.mongo import Document
from tests import infra
from tests import notifier_support as support
from tests.integration.archive_support import eventually
from tests.integration.notifier_harness import running_notifier, settings_for

WINDOW = Window(ledger_seconds=52 * DAY_SECONDS, personal_seconds=6 * DAY_SECONDS)
NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=53)
RECENT = NOW - timedelta(days=51)


@pytest.fixture
async def db() -> AsyncIterator[tuple[AsyncMongoClient[Document], str]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.MONGO_URI, tz_aware=True)
    database = infra.unique("it_notifier_pruner")
    try:
        yield client, database
    finally:
        await client.drop_database(database)
        await client.close()


def _entry(key: str, at: datetime) -> LedgerEntry:
    return LedgerEntry(
        key=key,
        submission_id=key.split(":")[0],
        reference="SADA-TEST-0001",
        unit="voice_of_customer",
        mailbox="voc@moj.gov.sa",
        status="sent",
        message_id=f"<{key}@sada.notifier>",
        smtp_code=250,
        smtp_reply="2.0.0 queued",
        attempts=1,
        recorded_at=at,
    )


def _pruner(client: AsyncMongoClient[Document], database: str, holder: str) -> Pruner:
    lease = mongo_lease(client, database, every_seconds=DAY_SECONDS, holder=holder)
    return Pruner(
        deleter=MongoDeleter(client, database),
        lease=lease,
        window=WINDOW,
        poll_seconds=60,
        clock=lambda: NOW,
    )


async def _ids(client: AsyncMongoClient[Document], database: str, name: str) -> set[str]:
    return {str(d["_id"]) async for d in client[database][name].find({}, {"_id": 1})}


async def test_the_pruner_deletes_only_what_is_past_the_window_and_redeliveries_stay_known(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    old_key, recent_key = "old:voice_of_customer", "recent:voice_of_customer"
    store = MongoLedger(client, database)
    await client[database][ledger.CLAIMS].insert_many(
        [{"_id": old_key, "claimed_at": OLD}, {"_id": recent_key, "claimed_at": RECENT}]
    )
    await store.record_many([_entry(old_key, OLD), _entry(recent_key, RECENT)])
    await client[database][pending.PENDING].insert_many(
        [
            {"_id": f"k:{old_key}", "marked_at": OLD},
            {"_id": f"k:{recent_key}", "marked_at": RECENT},
            {"_id": "k:legacy:voice_of_customer"},  # a marker from before `marked_at`: kept
            {"_id": "b:waiting", "items": []},  # a bucket is never pruned by time
        ]
    )
    await client[database][deferred.LEASES].insert_many(
        [
            {"_id": f"{old_key}:1:0", "key": old_key, "taken_at": OLD},
            {"_id": f"{recent_key}:1:0", "key": recent_key, "taken_at": RECENT},
        ]
    )

    assert await _pruner(client, database, "a").run_due() == 4
    assert await _pruner(client, database, "b").run_due() == 0  # the day's term is taken

    assert await _ids(client, database, ledger.COLLECTION) == {recent_key}
    assert await _ids(client, database, ledger.CLAIMS) == {recent_key}
    assert await _ids(client, database, pending.PENDING) == {
        f"k:{recent_key}",
        "k:legacy:voice_of_customer",
        "b:waiting",
    }
    assert await _ids(client, database, deferred.LEASES) == {f"{recent_key}:1:0"}
    # A redelivery inside the window is still de-duplicated: its outcome is found, and its
    # digest marker says it waits; the pruned key is new again (Kafka cannot redeliver it).
    assert await store.claim([recent_key, old_key]) == {recent_key: _entry(recent_key, RECENT)}
    waiting = await MongoPendingStore(client, database).waiting([recent_key, old_key])
    assert waiting == {recent_key}


async def test_markers_and_deferred_leases_written_now_carry_the_time_the_pruner_reads(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    item = support.digest_item({**support.ENGLISH_SAMPLE, "channel_ref": "PRUNE-1"})
    head = pending.Head(
        "b:1", "voc", item.unit, item.mailbox, NOW, NOW + timedelta(minutes=5), 300.0, 1
    )
    await MongoPendingStore(client, database).pend([pending.Bucket(head, (item,))])
    marker = await client[database][pending.PENDING].find_one({"_id": f"k:{item.key}"})
    assert marker is not None
    assert abs(marker["marked_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    queue = deferred.MongoDeferredQueue(client, database)
    assert await queue.take("k1:voice_of_customer", 1, 0)
    lease = await client[database][deferred.LEASES].find_one({"key": "k1:voice_of_customer"})
    assert lease is not None
    assert abs(lease["taken_at"] - datetime.now(UTC)) < timedelta(minutes=1)


async def test_a_sweep_larger_than_a_chunk_deletes_in_time_slices_ties_included(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    claims = client[database][ledger.CLAIMS]
    # 5 claims of one batch share a time (the oldest), then 7 older than the cut, 2 recent.
    batch = [{"_id": f"tie{i}", "claimed_at": OLD - timedelta(days=5)} for i in range(5)]
    older = [{"_id": f"old{i}", "claimed_at": OLD - timedelta(hours=i)} for i in range(7)]
    recent = [{"_id": f"new{i}", "claimed_at": RECENT + timedelta(hours=i)} for i in range(2)]
    await claims.insert_many(batch + older + recent)
    sweep = Sweep(ledger.CLAIMS, "claimed_at", NOW - timedelta(days=52))
    assert await MongoDeleter(client, database, chunk=3).delete(sweep) == 12
    assert await _ids(client, database, ledger.CLAIMS) == {"new0", "new1"}


async def test_a_running_notifier_prunes_at_start_up_under_the_prune_lease() -> None:
    settings = settings_for(infra.SMTP_PORT)
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.MONGO_URI, tz_aware=True)
    database = settings.mongo.database
    try:
        store = MongoLedger(client, database)
        await store.record_many([_entry("old:unit", OLD), _entry("recent:unit", RECENT)])
        async with running_notifier(settings):

            async def pruned() -> bool:
                return "old:unit" not in await _ids(client, database, ledger.COLLECTION)

            await eventually(pruned)
            assert await _ids(client, database, ledger.COLLECTION) == {"recent:unit"}
            terms = await client[database][LEASES].find({"name": LEASE_NAME}).to_list()
            assert [t["term"] for t in terms] == [0]  # one sweep for the day, by one replica
    finally:
        await client.close()
