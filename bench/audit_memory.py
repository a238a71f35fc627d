"""The archive's verification sweep on a generated archive: its extra memory and its time.

`python -m bench.audit_memory --submissions 50000` builds an archive of N submissions in a
fresh database, the way the archive builds it: for each submission a raw receipt on
`feedback.submissions.v1`, intake's `submission.accepted` (validated from the sample workload,
linked to the receipt), the router's `submission.routed` and the notifier's `notification.sent`,
fed through the real `Archiver` in batches of `--batch` records per topic (so 2 chains, 4 events
and 4 status snapshots per submission, in the store's real format). Then it runs the sweep
(`audit.verify_all`, what `sada audit verify` and the hourly sweep run) in fresh subprocesses:

- `rss`: peak RSS (`VmHWM`) during the sweep less the RSS just before it (imports done, client
  connected), and the sweep's wall time;
- `tracemalloc`: the peak of Python allocations during the sweep (slower: not timed).

While each sweep runs, the database server's RSS is sampled (`--server-pid`, e.g. a private
FerretDB's pid), since FerretDB 1.24 sorts in its own memory. `--compare` also measures the
previous algorithm (every snapshot anchor loaded before the events) the same way. The database
is dropped at the end unless `--keep`; `--database` reuses an existing one (no generation).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymongo
from aiokafka import ConsumerRecord
from pymongo import AsyncMongoClient

from services.archive import audit
from services.archive.archiver import Archiver
from services.archive.chain import Anchor, verify_chain
from services.archive.projection import anchors_of
from services.archive.settings import ArchiveMongoSettings, ArchiveSettings, ArchiveTopics
from services.archive.store import ArchiveStore, MongoArchiveStore
from services.intake.outcomes import Destinations, outcome_of
from services.router import config as rules_config
from services.router.routing import routed_event
from shared import events
from shared.consultations import load_consultations
from shared.directory import load_channels
from shared.kafka import Record
from shared.mongo import make_client
from tests import workload

TOPICS = ArchiveTopics()
INTAKE = events.Producer(service="intake", version="bench")
ROUTER = events.Producer(service="router", version="bench")
NOTIFIER = events.Producer(service="notifier", version="bench")
Document = dict[str, Any]


def _record(topic: str, offset: int, value: bytes, key: bytes | None = None) -> Record:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=int(time.time() * 1000),
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=(),
    )


def batches(run: str, submissions: int, size: int) -> Iterator[list[list[Record]]]:
    """Yield, per `size` submissions, their records by topic: receipts, accepted, routed, sent."""
    channels = frozenset(load_channels())
    consultations = load_consultations()
    config = rules_config.load(
        rules_config.RULES_PATH,
        units_path=rules_config.UNITS_PATH,
        channels_path=rules_config.CHANNELS_PATH,
    )
    to = Destinations(accepted=TOPICS.accepted, rejected=TOPICS.rejected)
    offset = 0
    for start in range(0, submissions, size):
        count = min(size, submissions - start)
        items = workload.build(f"{run}-{start}", count, resubmit_share=0.0)
        by_topic: list[list[Record]] = [[], [], [], []]
        for item in items:
            raw = item.encoded()
            source = events.SourcePosition(topic=TOPICS.submissions, partition=0, offset=offset)
            by_topic[0].append(_record(TOPICS.submissions, offset, raw))
            outcome = outcome_of(
                raw,
                channels=channels,
                consultations=consultations,
                now=datetime.now(UTC),
                door="kafka",
                source=source,
                producer=INTAKE,
                to=to,
            )
            accepted = events.SubmissionAccepted.model_validate_json(outcome.outgoing.value)
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
                discriminator=decision.unit,
                producer=NOTIFIER,
                correlation_id=routed.correlation_id,
            )
            by_topic[1].append(_record(TOPICS.accepted, offset, outcome.outgoing.value))
            by_topic[2].append(_record(TOPICS.routed, offset, routed.model_dump_json().encode()))
            by_topic[3].append(
                _record(TOPICS.notifications, offset, sent.model_dump_json().encode())
            )
            offset += 1
        yield by_topic


async def generate(uri: str, database: str, submissions: int, batch: int) -> dict[str, Any]:
    """Fill `database` with `submissions` submissions through the real archiver."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    try:
        store = MongoArchiveStore(client, database)
        archiver = Archiver(store, TOPICS, cache_size=4 * batch)
        started, done = time.monotonic(), 0
        for by_topic in batches(uuid.uuid4().hex[:8], submissions, batch):
            for records in by_topic:
                await archiver.archive(records)
            done += len(by_topic[0])
            if done % (10 * batch) == 0 or done == submissions:
                rate = done / (time.monotonic() - started)
                print(f"  generated {done:,} submissions ({rate:,.0f}/s)", file=sys.stderr)
        db = client[database]
        return {
            "events": await db["events"].count_documents({}),
            "snapshots": await db["submissions"].count_documents({}),
            "generate_seconds": round(time.monotonic() - started, 1),
        }
    finally:
        await client.close()


async def verify_all_in_memory(store: ArchiveStore) -> audit.Summary:
    """The sweep before it streamed: every snapshot anchor in memory, then the events."""
    anchors: dict[str, list[Anchor]] = defaultdict(list)
    async for snap in store.all_snapshots():
        anchors[str(snap.get("submission_id"))].extend(anchors_of([snap]))
    summary = audit.Summary()
    chain: str | None = None
    docs: list[Document] = []
    async for doc in store.all_events():
        if doc.get("submission_id") != chain:
            if chain is not None:
                _add(summary, chain, docs, anchors.pop(chain, []))
            chain, docs = str(doc.get("submission_id")), []
        docs.append(doc)
    if chain is not None:
        _add(summary, chain, docs, anchors.pop(chain, []))
    for orphan, orphan_anchors in anchors.items():
        _add(summary, orphan, [], orphan_anchors)
    return summary


def _add(summary: audit.Summary, chain: str, docs: list[Document], anchors: list[Anchor]) -> None:
    summary.chains += 1
    summary.events += len(docs)
    summary.breaks.extend(verify_chain(chain, docs, anchors))


def _status_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


async def sweep_child(uri: str, database: str, mode: str, algorithm: str) -> dict[str, Any]:
    """Run one sweep in this (fresh) process and measure it."""
    settings = ArchiveSettings(mongo=ArchiveMongoSettings(uri=uri, database=database))
    client = make_client(settings.mongo, app_name="bench-audit")  # the service's timeouts
    store = MongoArchiveStore(client, database)
    await client.admin.command("ping")
    limit = settings.verify_timeout_seconds
    gc.collect()
    before = _status_kib("self", "VmRSS")
    if mode == "tracemalloc":
        tracemalloc.start()
    started = time.monotonic()
    if algorithm == "streaming":  # what `sada audit verify` and the hourly sweep run
        summary = await audit.verify_all(store, time_limit=limit)
    else:
        with pymongo.timeout(limit):
            summary = await verify_all_in_memory(store)
    seconds = time.monotonic() - started
    result: dict[str, Any] = {
        "chains": summary.chains,
        "events": summary.events,
        "breaks": len(summary.breaks),
    }
    if mode == "tracemalloc":
        result["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    else:
        result["rss_before_mib"] = round(before / 1024, 1)
        result["rss_peak_mib"] = round(_status_kib("self", "VmHWM") / 1024, 1)
        result["rss_extra_mib"] = round((_status_kib("self", "VmHWM") - before) / 1024, 1)
        result["seconds"] = round(seconds, 1)
    await client.close()
    return result


def run_sweep(
    uri: str, database: str, mode: str, algorithm: str, server_pid: int | None
) -> dict[str, Any]:
    """Run a sweep in a subprocess; sample the server's RSS meanwhile."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while server_pid and not stop.wait(0.2):
            peak[0] = max(peak[0], _status_kib(server_pid, "VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    server_before = _status_kib(server_pid, "VmRSS") if server_pid else 0
    sampler.start()
    args = ["--uri", uri, "--database", database, "--mode", mode, "--algorithm", algorithm]
    child = subprocess.run(
        [sys.executable, "-m", "bench.audit_memory", "sweep", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    stop.set()
    sampler.join()
    result: dict[str, Any] = json.loads(child.stdout)
    if server_pid:
        result["server_rss_before_mib"] = round(server_before / 1024, 1)
        result["server_rss_peak_mib"] = round(peak[0] / 1024, 1)
    return result


def machine() -> str:
    """Return a one-line description of this machine."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = _status_kib_meminfo() / 2**20
    python = platform.python_version()
    return f"{cpu}, {os.cpu_count()} cores, {mem:.1f} GiB RAM, Python {python}"


def _status_kib_meminfo() -> int:
    line = Path("/proc/meminfo").read_text().splitlines()[0]
    return int(line.split()[1])


async def _drop(uri: str, database: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    await client.drop_database(database)
    await client.close()


def main(argv: list[str] | None = None) -> None:
    """Generate an archive, sweep it, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.audit_memory", description=__doc__)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "sweep"])
    parser.add_argument("--submissions", type=int, default=50_000)
    parser.add_argument(
        "--uri", default=os.environ.get("SADA_MONGO__URI", "mongodb://127.0.0.1:27017/")
    )
    parser.add_argument("--database", help="sweep this existing database (no generation)")
    parser.add_argument("--batch", type=int, default=1000, help="records per archived batch")
    parser.add_argument("--server-pid", type=int, help="database server pid, to sample its RSS")
    parser.add_argument("--compare", action="store_true", help="also sweep the old way")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--mode", default="rss", choices=["rss", "tracemalloc"])
    parser.add_argument("--algorithm", default="streaming", choices=["streaming", "in-memory"])
    args = parser.parse_args(argv)
    if args.command == "sweep":
        result = asyncio.run(sweep_child(args.uri, args.database, args.mode, args.algorithm))
        print(json.dumps(result))
        return
    database = args.database or f"bench_audit_{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "python -m bench.audit_memory "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "submissions": args.submissions,
        "database": database,
    }
    try:
        if args.database is None:
            print(f"generating {args.submissions:,} submissions into {database}", file=sys.stderr)
            report |= asyncio.run(generate(args.uri, database, args.submissions, args.batch))
        algorithms = ["streaming", "in-memory"] if args.compare else ["streaming"]
        for algorithm in algorithms:
            for mode in ("rss", "tracemalloc"):
                print(f"sweeping ({algorithm}, {mode})", file=sys.stderr)
                found = run_sweep(args.uri, database, mode, algorithm, args.server_pid)
                report[f"{algorithm}_{mode}"] = found
                print(f"  {json.dumps(found)}", file=sys.stderr)
    finally:
        if not args.keep and args.database is None:
            asyncio.run(_drop(args.uri, database))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
