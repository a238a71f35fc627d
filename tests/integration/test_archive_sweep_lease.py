"""The sweep's lease on the real FerretDB: two replicas contend, exactly one sweeps per term."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.archive.archiver import Archiver
from services.archive.audit import Summary, Sweeper
from services.archive.settings import ArchiveTopics
from services.archive.store import MongoArchiveStore
from shared.lease import LEASES, SWEEP_LEASE, MongoLease
from shared.mongo import make_client
from shared.settings import MongoSettings
from tests import archive_samples as samples
from tests import infra

TTL = 3600.0
Document = dict[str, Any]


class Replica:
    """One archive replica's view: its own client, store and lease holder name."""

    def __init__(self, database: str, holder: str) -> None:
        self.client = make_client(MongoSettings(uri=infra.MONGO_URI), app_name=f"it-{holder}")
        self.store = MongoArchiveStore(self.client, database)
        self.lease = MongoLease(self.client[database][LEASES], SWEEP_LEASE, ttl=TTL, holder=holder)


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[Replica, Replica]]:
    database = infra.unique("it_archive_lease")
    pair = (Replica(database, "replica-a"), Replica(database, "replica-b"))
    try:
        yield pair
    finally:
        await pair[0].client.drop_database(database)
        for replica in pair:
            await replica.client.close()


async def test_two_contenders_never_both_hold_a_term(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    start = datetime.now(UTC)
    winners = []
    for term in range(8):
        now = start + timedelta(seconds=term * (TTL + 1))  # each round, the last term expired
        won = await asyncio.gather(a.lease.acquire(now), b.lease.acquire(now))
        assert sorted(won) == [False, True], f"term {term}: {won}"
        winners.append("a" if won[0] else "b")
        later = now + timedelta(seconds=TTL / 2)  # while the term runs, nobody takes another
        assert list(await asyncio.gather(a.lease.acquire(later), b.lease.acquire(later))) == [
            False,
            False,
        ]
    terms = await a.client[a.store.events.database.name][LEASES].find({}).to_list()
    assert sorted(doc["term"] for doc in terms) == list(range(8))
    holders = {doc["term"]: doc["holder"] for doc in terms}
    assert [holders[t][-1] for t in range(8)] == winners
    latest = await b.lease.latest()
    assert latest is not None
    assert latest["term"] == 7
    assert latest["expires_at"] > latest["taken_at"]


async def test_only_one_replica_sweeps_per_interval(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    topics = ArchiveTopics()
    sub = samples.submission()
    await Archiver(a.store, topics, cache_size=10).archive(
        [samples.record(topics.accepted, samples.encode(samples.accepted(sub)))]
    )
    sweepers = [Sweeper(r.store, TTL, lease=r.lease) for r in (a, b)]
    first = await asyncio.gather(*(s.sweep_if_due() for s in sweepers))
    swept = [summary for summary in first if summary is not None]
    assert len(swept) == 1
    assert isinstance(swept[0], Summary)
    assert (swept[0].chains, swept[0].events, swept[0].breaks) == (1, 1, [])
    again = await asyncio.gather(*(s.sweep_if_due() for s in sweepers))
    assert again == [None, None]  # the term runs for the whole interval
