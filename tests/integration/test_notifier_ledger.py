"""The notifier's ledger on the real FerretDB: claims, outcomes, and what a redelivery reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.notifier.ledger import LedgerEntry, MongoLedger
from shared.mongo import Document
from tests import infra


class Finds(monitoring.CommandListener):
    """Counts the `find` commands a client sends (the reads the ledger makes)."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += event.command_name == "find"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@pytest.fixture
async def ledger() -> AsyncIterator[tuple[MongoLedger, Finds]]:
    finds = Finds()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        infra.MONGO_URI, event_listeners=[finds], tz_aware=True
    )
    database = infra.unique("it_notifier_ledger")
    try:
        yield MongoLedger(client, database), finds
    finally:
        await client.drop_database(database)
        await client.close()


def _entry(key: str) -> LedgerEntry:
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
        recorded_at=datetime.now(UTC).replace(microsecond=0),
    )


async def test_new_keys_are_claimed_without_a_single_read(
    ledger: tuple[MongoLedger, Finds],
) -> None:
    store, finds = ledger
    keys = [f"s{i}:voice_of_customer" for i in range(50)]
    assert await store.claim(keys) == {}
    assert finds.count == 0


async def test_a_redelivered_key_gets_its_recorded_outcome_and_an_unfinished_one_none(
    ledger: tuple[MongoLedger, Finds],
) -> None:
    store, finds = ledger
    done, unfinished, new = "a:voice_of_customer", "b:voice_of_customer", "c:voice_of_customer"
    await store.claim([done, unfinished])
    await store.record_many([_entry(done)])
    found = await store.claim([done, unfinished, new])
    assert found == {done: _entry(done)}  # `unfinished` was claimed, never answered: send it
    assert finds.count == 1  # one read, for the two keys claimed before
    await store.record_many([_entry(done)])  # a second record of the same key is kept as it was
    assert await store.claim([new]) == {}  # claimed again, still unanswered: sent again
