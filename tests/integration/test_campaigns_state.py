"""The campaigns service's decisions on the real FerretDB: restarts, turns, redeliveries, fences."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.campaigns.decisions import Campaigns
from services.campaigns.grouping import Grouping
from services.campaigns.store import (
    Decided,
    MongoCampaignState,
    Position,
    ScopeChanges,
    ScopeConflictError,
)
from shared import events
from shared.kafka import Outgoing, Record
from shared.mongo import Document, make_client
from shared.settings import MongoSettings
from tests import campaign_support, infra

PRODUCER = events.Producer(service="campaigns", version="test")
BATCH = 25


@pytest.fixture(scope="module")
def routed() -> list[events.SubmissionRouted]:
    return campaign_support.corpus_events()


@pytest.fixture(scope="module")
def expected(routed: list[events.SubmissionRouted]) -> dict[str, Grouping]:
    return campaign_support.expected(routed)


@dataclass(frozen=True)
class Database:
    """A scratch database of the real FerretDB."""

    client: AsyncMongoClient[Document]
    name: str

    def state(self) -> MongoCampaignState:
        return MongoCampaignState(self.client, self.name)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    client = make_client(MongoSettings(uri=infra.MONGO_URI), app_name="it-campaigns")
    database = Database(client, infra.unique("it_campaigns"))
    try:
        yield database
    finally:
        await client.drop_database(database.name)
        await client.close()


def campaigns(store: Any, *, max_scopes: int = 16) -> Campaigns:
    return Campaigns(store, producer=PRODUCER, topic="grouped", max_scopes=max_scopes)


def batches(routed: list[events.SubmissionRouted]) -> list[list[Record]]:
    records = [
        campaign_support.record(event, partition, offset)
        for event, partition, offset in campaign_support.partitioned(routed)
    ]
    return [records[i : i + BATCH] for i in range(0, len(records), BATCH)]


def decided(outgoing: Sequence[Outgoing]) -> dict[str, events.SubmissionGrouped]:
    grouped = [events.SubmissionGrouped.model_validate_json(item.value) for item in outgoing]
    return {event.submission_id: event for event in grouped}


def assert_as_one_process(
    published: dict[str, events.SubmissionGrouped],
    routed: list[events.SubmissionRouted],
    expected: dict[str, Grouping],
) -> None:
    assert len(published) == len(routed)
    joined = 0
    for event in routed:
        want, got = expected[event.event_id], published[event.submission_id].payload
        assert got.scope == want.scope
        if want.campaign_id is None:
            assert got.campaign is None, event.reference
            continue
        joined += 1
        assert got.campaign is not None, event.reference
        assert (got.campaign.campaign_id, got.campaign.size) == (
            want.campaign_id,
            want.campaign_size,
        )
        assert (got.campaign.similar_to, got.campaign.similarity) == (
            want.similar_to,
            want.similarity,
        )
        assert got.campaign.first_reference == want.first_reference
    assert joined > len(routed) // 2  # the corpus is mostly campaigns: the test sees them


async def test_two_consumers_taking_turns_decide_as_one_process_would(
    db: Database,
    routed: list[events.SubmissionRouted],
    expected: dict[str, Grouping],
) -> None:
    # Each batch goes to the other consumer: every scope changes hands again and again, as in
    # a rebalance storm; each must rebuild the scope from the database, never from its memory.
    first, second = campaigns(db.state()), campaigns(db.state())
    published: dict[str, events.SubmissionGrouped] = {}
    for n, batch in enumerate(batches(routed)):
        published |= decided(await (first if n % 2 == 0 else second).decide(batch))
    assert_as_one_process(published, routed, expected)


async def test_a_process_holding_fewer_scopes_than_a_batch_touches_decides_the_same(
    db: Database,
    routed: list[events.SubmissionRouted],
    expected: dict[str, Grouping],
) -> None:
    # One scope held at a time: every batch touches several, each reloaded when needed again.
    service = campaigns(db.state(), max_scopes=1)
    published: dict[str, events.SubmissionGrouped] = {}
    for batch in batches(routed):
        published |= decided(await service.decide(batch))
    assert_as_one_process(published, routed, expected)


async def test_a_restart_mid_stream_forgets_nothing(
    db: Database,
    routed: list[events.SubmissionRouted],
    expected: dict[str, Grouping],
) -> None:
    published: dict[str, events.SubmissionGrouped] = {}
    all_batches = batches(routed)
    half = len(all_batches) // 2
    before = campaigns(db.state())
    for batch in all_batches[:half]:
        published |= decided(await before.decide(batch))
    after = campaigns(db.state())  # a new process: empty memory
    for batch in all_batches[half:]:
        published |= decided(await after.decide(batch))
    assert_as_one_process(published, routed, expected)


async def test_a_redelivered_batch_is_published_again_unchanged_and_counted_once(
    db: Database,
    routed: list[events.SubmissionRouted],
    expected: dict[str, Grouping],
) -> None:
    published: dict[str, events.SubmissionGrouped] = {}
    all_batches = batches(routed)
    service = campaigns(db.state())
    for n, batch in enumerate(all_batches):
        first = await service.decide(batch)
        published |= decided(first)
        if n in (3, 9):  # the commit was lost: the same records come again, to a new process
            service = campaigns(db.state())
            again = await service.decide(batch)
            assert decided(again).keys() == decided(first).keys()
            for sid, event in decided(again).items():
                assert event.event_id == published[sid].event_id
                assert event.payload == published[sid].payload
    assert_as_one_process(published, routed, expected)


class _FailsBeforeAdvancing(MongoCampaignState):
    """Writes a batch's texts, sizes and decisions, then fails before advancing any scope."""

    failures = 0

    async def _advance(self, change: ScopeChanges) -> None:
        if self.failures == 0:
            self.failures += 1
            raise ConnectionError("database gone after half a batch")
        await super()._advance(change)


async def test_a_batch_that_failed_half_way_is_redone_as_if_it_never_ran(
    db: Database,
    routed: list[events.SubmissionRouted],
    expected: dict[str, Grouping],
) -> None:
    published: dict[str, events.SubmissionGrouped] = {}
    all_batches = batches(routed)
    good = campaigns(db.state())
    for batch in all_batches[:6]:
        published |= decided(await good.decide(batch))
    flaky = _FailsBeforeAdvancing(db.client, db.name)
    service = campaigns(flaky)
    with pytest.raises(ConnectionError):
        await service.decide(all_batches[6])
    for batch in all_batches[6:]:  # the runner retries the batch, then goes on
        published |= decided(await service.decide(batch))
    assert flaky.failures == 1
    assert_as_one_process(published, routed, expected)


async def test_a_consumer_deciding_from_a_stale_position_is_fenced_off(
    db: Database,
) -> None:
    store = db.state()
    now = datetime.now(UTC)
    first = ScopeChanges("legislation:x", Position(), sizes={"a": (2, 1, now)})
    first.decisions.append(Decided("e1", 1, 0, 10, Grouping("legislation:x", *[None] * 4)))
    await store.save([first])
    assert (await store.positions(["legislation:x"]))["legislation:x"] == Position(1, 0, 10)
    # Another consumer still believes the scope is new: its save must not go through.
    stale = ScopeChanges("legislation:x", Position())
    stale.decisions.append(Decided("e2", 1, 0, 11, Grouping("legislation:x", *[None] * 4)))
    with pytest.raises(ScopeConflictError):
        await store.save([stale])
    behind = ScopeChanges("legislation:x", Position(5, 0, 8))
    behind.decisions.append(Decided("e3", 6, 0, 12, Grouping("legislation:x", *[None] * 4)))
    with pytest.raises(ScopeConflictError):
        await store.save([behind])
    assert (await store.positions(["legislation:x"]))["legislation:x"] == Position(1, 0, 10)


async def test_a_batch_touching_150_existing_campaigns_saves_without_wedging_ferretdb(
    db: Database,
) -> None:
    # FerretDB 1.24 never answers an update command of 100 statements on existing documents
    # (shared/mongo.py UPDATES_PER_COMMAND): the sizes go in small commands.
    store, now, scope = db.state(), datetime.now(UTC), "legislation:many"
    position = Position()
    for round_ in (1, 2):
        change = ScopeChanges(scope, position)
        change.sizes = {f"founder-{n}": (round_ + 1, round_, now) for n in range(150)}
        change.decisions.append(
            Decided(f"e{round_}", round_, 0, round_, Grouping(scope, *[None] * 4))
        )
        async with asyncio.timeout(60):
            await store.save([change])
        position = change.after
    sizes = db.client[db.name]["campaign_sizes"]
    assert await sizes.count_documents({"scope": scope, "size": 3}) == 150
