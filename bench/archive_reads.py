"""Bench part 6: the archive API's reads at N archived submissions (`--only reads`).

Seeds a fresh database with N submissions' `events` and `submissions` documents exactly as the
archive writes them: each submission's `submission.accepted` (intake's validation of the
samples), `submission.routed` (the router's decision) and `notification.sent`, each topic's
records of a block of submissions handed to the archive's own batch code (`Archiver`'s chain
append and status projection, with personal data sealed by the key vault) in its own batch, as
the archive's parallel topic consumers do, so each submission has its several snapshots. Only the
writes are redirected: what a batch would insert is bulk-inserted (`insert_many`, unordered), a
block at a time, with no Kafka in between; memory holds one block.

Then the real audit API (`api.install` on a FastAPI app, the access log writing every read's
`archive.accessed` event) is called in-process through httpx's ASGI transport, and each read is
timed `--reads` times: one submission by reference and by id, with and without the
`personal_data` scope; the first listing page, a next page by cursor, and the listing filtered by
unit and by channel. Reported: p50 and p99 milliseconds of each.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from bench.archive_stage import event_mix
from services.archive import api, privacy
from services.archive.access import AccessLog
from services.archive.archiver import _Batch
from services.archive.clients import PERSONAL_DATA, READ, ApiClientConfig
from services.archive.projection import ChainCache
from services.archive.records import read
from services.archive.settings import ArchiveSettings, ArchiveTopics
from services.archive.store import MongoArchiveStore
from shared import events
from shared.kafka import Record
from shared.settings import MongoSettings

Document = dict[str, Any]

BLOCK = 500
"""Submissions seeded per block: one archive batch per topic, as a consumer would fetch it."""
INSERT_CHUNK = 1000
"""Documents per `insert_many`."""
TOKENS = {"plain": "bench-reads-plain-token", "personal": "bench-reads-personal-token"}
PRODUCER = events.Producer(service="archive", version="bench")


class _Capture:
    """The store the archive's batch code writes to: it keeps the documents for a bulk insert.

    No event is ever refused (the database is fresh and every chain starts empty), so the batch
    code never reads back.
    """

    def __init__(self) -> None:
        self.events: list[Document] = []
        self.snapshots: list[Document] = []

    async def insert_events(self, docs: Sequence[Document]) -> set[int]:
        self.events.extend(docs)
        return set()

    async def find_events(self, event_ids: Sequence[str]) -> dict[str, Document]:
        return {}

    async def insert_snapshots(self, docs: Sequence[Document]) -> None:
        self.snapshots.extend(docs)


def _record(topic: str, offset: int, key: str, value: bytes) -> Record:
    return ConsumerRecord(
        topic=topic,
        partition=offset % 3,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=(),
    )


async def seed(uri: str, database: str, n: int) -> dict[str, Any]:
    """Write `n` submissions' documents into `database`; return counts and the time taken."""
    names = ArchiveTopics()
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    store = MongoArchiveStore(client, database)
    await store.ensure_indexes()
    keys = privacy.vault(client, database, privacy.keyring_from(_master_key()), 1000)
    cache = ChainCache(4 * BLOCK)
    started = time.monotonic()
    clock = datetime.now(UTC) - timedelta(days=30)
    counts = {"events": 0, "snapshots": 0}
    offset = 0
    try:
        for start in range(0, n, BLOCK):
            size = min(BLOCK, n - start)
            records = event_mix(f"r{start:07d}", 3 * size, names)
            capture = _Capture()
            for topic in (names.accepted, names.routed, names.notifications):
                mine = [r for r in records if r.topic == topic]
                batch_records = []
                for r in mine:
                    batch_records.append(_record(topic, offset, r.key or "", r.value))
                    offset += 1
                entries = [read(r, names) for r in batch_records]
                clock += timedelta(milliseconds=400)
                entries = await keys.protect(entries, clock)
                batch = _Batch(cache, capture, now=clock)  # type: ignore[arg-type]
                appended, repeated = await batch.append(entries)
                await batch.project(appended, repeated)
                batch.release()
            for collection, docs in (
                (store.events, capture.events),
                (store.submissions, capture.snapshots),
            ):
                for i in range(0, len(docs), INSERT_CHUNK):
                    await collection.insert_many(docs[i : i + INSERT_CHUNK], ordered=False)
            counts["events"] += len(capture.events)
            counts["snapshots"] += len(capture.snapshots)
            if (start // BLOCK) % 40 == 0:
                print(f"  seeded {start + size:,} submissions ({time.monotonic() - started:.0f} s)")
    finally:
        await client.close()
    return {**counts, "submissions": n, "seconds": round(time.monotonic() - started, 1)}


def _master_key() -> str:
    return ArchiveSettings().master_key()


def _settings(uri: str, database: str) -> ArchiveSettings:
    return ArchiveSettings(
        mongo=MongoSettings(uri=uri, database=database),
        api_clients=[
            ApiClientConfig(name="bench-plain", token=SecretStr(TOKENS["plain"]), scopes=(READ,)),
            ApiClientConfig(
                name="bench-personal",
                token=SecretStr(TOKENS["personal"]),
                scopes=(READ, PERSONAL_DATA),
            ),
        ],
    )


async def _sample_keys(store: MongoArchiveStore, count: int) -> list[tuple[str, str]]:
    """Return up to `count` (submission id, reference) pairs picked across the archive.

    Read by `_id` ranges of the snapshots would scan on FerretDB; a sampled `$sample` would too:
    the pairs are picked once, before the clock runs, from one sweep's random positions.
    """
    rng = random.Random(18)
    picked: list[tuple[str, str]] = []
    total = await store.submissions.estimated_document_count()
    wanted = sorted(rng.sample(range(total), min(count, total)))
    position = 0
    cursor = store.submissions.find({}, {"submission_id": 1, "reference": 1}, batch_size=5000)
    want = iter(wanted)
    target = next(want, None)
    async for doc in cursor:
        if target is None:
            break
        if position == target:
            if doc.get("reference"):
                picked.append((str(doc["submission_id"]), str(doc["reference"])))
            target = next(want, None)
        position += 1
    await cursor.close()
    return picked


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 1),
        "n": len(ordered),
    }


async def _timed(
    http: httpx.AsyncClient, token: str, path: str, params: dict[str, str] | None = None
) -> tuple[float, Document]:
    started = time.perf_counter()
    response = await http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
    return elapsed, response.json()


async def measure(uri: str, database: str, reads: int) -> dict[str, Any]:
    """Time the API's reads on the seeded `database`; return p50/p99 per read."""
    settings = _settings(uri, database)
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    store = MongoArchiveStore(client, database)
    keys = privacy.vault(client, database, privacy.keyring_from(settings.master_key()), 1000)
    accesses = AccessLog(
        store,
        producer=PRODUCER,
        queue_size=settings.access_queue_size,
        batch_size=settings.access_batch_size,
        timeout=settings.access_timeout_seconds,
    )
    app = FastAPI()
    api.install(app, store, settings, clients=_load_clients(settings), accesses=accesses, keys=keys)
    await store.ensure_indexes()
    await accesses.start()
    results: dict[str, Any] = {}
    try:
        pairs = await _sample_keys(store, reads)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://archive") as http:
            await _timed(http, TOKENS["plain"], "/v1/submissions")  # warm-up
            cases = {
                "by_reference": ("plain", 1),
                "by_id": ("plain", 0),
                "by_reference_personal": ("personal", 1),
                "by_id_personal": ("personal", 0),
            }
            for name, (who, which) in cases.items():
                samples = []
                for pair in pairs:
                    elapsed, body = await _timed(
                        http, TOKENS[who], f"/v1/submissions/{pair[which]}"
                    )
                    if not body["timeline"]:
                        raise RuntimeError(f"{name}: empty timeline")
                    samples.append(elapsed)
                results[name] = _percentiles(samples)
            pages = max(5, reads // 10)
            results["list_first"] = _percentiles(
                [(await _timed(http, TOKENS["plain"], "/v1/submissions"))[0] for _ in range(pages)]
            )
            samples, cursor = [], None
            for _ in range(pages):
                params = {"cursor": cursor} if cursor else None
                elapsed, body = await _timed(http, TOKENS["plain"], "/v1/submissions", params)
                if cursor is not None:
                    samples.append(elapsed)
                cursor = body["next_cursor"]
            results["list_next"] = _percentiles(samples)
            for name, params in (
                ("list_unit", {"unit": "voice_of_customer"}),
                ("list_channel", {"channel": "email"}),
            ):
                results[name] = _percentiles(
                    [
                        (await _timed(http, TOKENS["plain"], "/v1/submissions", params))[0]
                        for _ in range(pages)
                    ]
                )
    finally:
        await accesses.stop()
        await client.close()
    return results


def _load_clients(settings: ArchiveSettings) -> Any:
    from services.archive import clients

    return clients.load(settings)


async def run(
    uri: str, *, n: int, reads: int, database: str | None = None, keep: bool = False
) -> dict[str, Any]:
    """Seed `n` submissions into a fresh database, time the reads, drop the database.

    With `database` (a name), a database of that name seeded before is timed again as it is, and
    one that does not exist is seeded; `keep` leaves it for the next run (before/after figures
    on one seeding).
    """
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    name = database or f"bench_reads_{uuid.uuid4().hex[:8]}"
    try:
        present = name in await client.list_database_names()
        seeded: dict[str, Any] = {"reused": name}
        if not present:
            print(f"seeding {n:,} submissions into {name} ...")
            seeded = await seed(uri, name, n)
            print(f"  {seeded}")
        try:
            timings = await measure(uri, name, reads)
        finally:
            if not keep:
                await client.drop_database(name)
    finally:
        await client.close()
    return {"seed": seeded, "reads": timings}
