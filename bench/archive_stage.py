"""Part 2: raw PyMongo `insert_many` into FerretDB vs the archive service ingesting the same events.

The mix is what the archive sees for a submission that went all the way: its
`submission.accepted`, `submission.routed` and `notification.sent` events (built by the real
intake validation, router and the notifier's event shape), on their own topics, keyed by
submission id. The raw baseline inserts the equivalent `events` documents (event id as `_id`,
the canonical event JSON as a string, its identifiers and times) with `insert_many` in batches
of 500 into a fresh database; the archive consumes the three topics with a fresh group into a
fresh database and is timed, like part 1, from its first commit to the last.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pymongo import AsyncMongoClient

from bench import kafka, mix
from bench.router_stage import settle_heap
from bench.stats import median, ratio
from services.archive.app import build
from services.archive.settings import ArchiveSettings, ArchiveTopics
from services.router import config as rules_config
from services.router.routing import routed_event
from shared import events
from shared.kafka import Outgoing
from shared.settings import KafkaSettings, MongoSettings

BATCH = 500
ROUTER = events.Producer(service="router", version="bench")
NOTIFIER = events.Producer(service="notifier", version="bench")


def event_mix(run: str, n: int, names: ArchiveTopics) -> list[Outgoing]:
    """Return `n` records, a third each accepted, routed and notification.sent, by submission."""
    config = rules_config.load(
        rules_config.RULES_PATH,
        units_path=rules_config.UNITS_PATH,
        channels_path=rules_config.CHANNELS_PATH,
    )
    out: list[Outgoing] = []
    for record in mix.accepted_events(run, -(-n // 3), names.accepted):
        accepted = events.SubmissionAccepted.model_validate_json(record.value)
        routed = routed_event(accepted, config, ROUTER)
        decision = routed.payload.decision
        sent = events.build(
            events.NotificationSent,
            submission_id=routed.submission_id,
            reference=routed.reference,
            payload=events.NotificationPayload(
                unit=decision.unit,
                mailbox=decision.mailbox,
                message_id=f"<{routed.submission_id}.{decision.unit}@sada.notifier>",
                smtp_code=250,
                smtp_reply="2.0.0 Message accepted for delivery",
            ),
            discriminator=f"{routed.event_id}:{decision.unit}",
            producer=NOTIFIER,
            correlation_id=routed.correlation_id,
        )
        out.append(record)
        out.append(Outgoing(names.routed, routed.submission_id, routed.model_dump_json().encode()))
        out.append(
            Outgoing(names.notifications, sent.submission_id, sent.model_dump_json().encode())
        )
    return out[:n]


def raw_documents(records: list[Outgoing]) -> list[dict[str, Any]]:
    """Return the `events` documents a plain writer would store for `records`."""
    now = datetime.now(UTC)
    docs = []
    for offset, record in enumerate(records):
        event = orjson.loads(record.value)
        docs.append(
            {
                "_id": event["event_id"],
                "submission_id": event["submission_id"],
                "event_type": event["event_type"],
                "reference": event["reference"],
                "topic": record.topic,
                "partition": 0,
                "offset": offset,
                "occurred_at": datetime.fromisoformat(event["occurred_at"]),
                "archived_at": now,
                "event": orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode(),
            }
        )
    return docs


async def raw_insert(uri: str, docs: list[dict[str, Any]]) -> float:
    """Insert `docs` with insert_many(500) into a fresh database; return docs/s."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    name = f"bench_raw_{uuid.uuid4().hex[:8]}"
    try:
        collection = client[name]["events"]
        await collection.insert_one({"_id": "warm-up"})  # creates the database and collection
        started = time.monotonic()
        for i in range(0, len(docs), BATCH):
            await collection.insert_many([dict(d) for d in docs[i : i + BATCH]], ordered=False)
        return len(docs) / (time.monotonic() - started)
    finally:
        await client.drop_database(name)
        await client.close()


@contextlib.asynccontextmanager
async def archive_running(
    bootstrap: str, uri: str, names: ArchiveTopics, group: str, database: str
) -> AsyncIterator[None]:
    """Run the real archive app (its lifespan: broker, subscriber, store) in-process."""
    settings = ArchiveSettings(
        topics=names,
        group_id=group,
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        mongo=MongoSettings(uri=uri, database=database),
    )
    app = build(settings)
    async with app.router.lifespan_context(app):
        yield


async def archive_run(bootstrap: str, uri: str, names: ArchiveTopics, n: int) -> dict[str, Any]:
    """Let the archive ingest the pre-filled topics into a fresh database; return its rate."""
    tag = uuid.uuid4().hex[:8]
    group, database = f"bench-archive-{tag}", f"bench_archive_{tag}"
    started = time.monotonic()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        async with archive_running(bootstrap, uri, names, group, database):
            progress = await kafka.watch_commits(bootstrap, group, n, within=600)
        written = {
            name: await client[database][name].count_documents({})
            for name in ("events", "submissions")
        }
    finally:
        await client.drop_database(database)
        await client.close()
    rate = progress.rate()
    return {
        "docs_per_s": round(rate),
        "documents_written": written,
        "written_docs_per_s": round(rate * sum(written.values()) / n),
        "wall_s": round(time.monotonic() - started, 2),
    }


async def prefill(bootstrap: str, n: int) -> tuple[ArchiveTopics, list[Outgoing]]:
    """Create unique topics and fill them with the mix."""
    tag = uuid.uuid4().hex[:8]
    names = ArchiveTopics(
        **{field: f"bench.archive.{field}-{tag}" for field in ArchiveTopics.model_fields}
    )
    await kafka.create_topics(bootstrap, list(names.all()))
    records = event_mix(f"bench-a-{tag}", n, names)
    await kafka.fill(bootstrap, records)
    return names, records


async def run(bootstrap: str, uri: str, *, n: int, runs: int) -> dict[str, Any]:
    """Alternate raw insert_many and the archive `runs` times on the same events."""
    names, records = await prefill(bootstrap, n)
    docs = raw_documents(records)
    described, count = mix.describe(records), len(records)
    del records
    settle_heap()
    results: dict[str, list[dict[str, Any]]] = {"raw": [], "archive": []}
    for index in range(runs):
        raw = round(await raw_insert(uri, docs))
        results["raw"].append({"docs_per_s": raw})
        print(f"  archive part, run {index + 1}/{runs}: raw     {raw:>8,} docs/s")
        outcome = await archive_run(bootstrap, uri, names, count)
        results["archive"].append(outcome)
        print(
            f"  archive part, run {index + 1}/{runs}: archive {outcome['docs_per_s']:>8,} events/s"
            f" ({outcome['written_docs_per_s']:,} documents/s written: events + status snapshots)"
        )
    raw_median = median([r["docs_per_s"] for r in results["raw"]])
    archive_median = median([r["docs_per_s"] for r in results["archive"]])
    written_median = median([r["written_docs_per_s"] for r in results["archive"]])
    return {
        "n": count,
        "mix": described,
        "mix_label": "⅓ each submission.accepted, submission.routed, notification.sent",
        "runs": results,
        "median": {
            "raw_docs_per_s": raw_median,
            "archive_docs_per_s": archive_median,
            "archive_written_docs_per_s": written_median,
        },
        "ratio": round(ratio(archive_median, raw_median), 3),
        "written_ratio": round(ratio(written_median, raw_median), 3),
    }


async def profile(bootstrap: str, uri: str, n: int, contender: str) -> Path:
    """Profile part 2's `contender` ("rawmongo" or "archive") under py-spy."""
    from bench.profile import py_spy

    names, records = await prefill(bootstrap, n)
    async with py_spy(contender) as out:
        if contender == "archive":
            result = await archive_run(bootstrap, uri, names, len(records))
            print(f"archive: {result['docs_per_s']:,} docs/s under py-spy")
        else:
            print(f"raw insert_many: {await raw_insert(uri, raw_documents(records)):,.0f} docs/s")
    return out
