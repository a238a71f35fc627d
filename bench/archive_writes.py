"""`python -m bench.archive_writes [--n N]`: what the archive asks of FerretDB, per event.

Part 2 says how fast the archive is against raw `insert_many`; this says why. On the bench's
private stack (started if it is not up, left up), it inserts part 2's event mix with raw
`insert_many`, then lets the archive ingest the same records once with a PyMongo command
listener attached, and prints: database round trips and documents by command and collection,
the time spent waiting on each, and CPU per event of FerretDB and of this process (the archive
runs in it) against raw insert's CPU per document. CPU figures hold up better than rates on a
busy machine: the other work on the cores slows both contenders, but does not add to their CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

from pymongo import AsyncMongoClient, monitoring

from bench import archive_stage, end_to_end, kafka

SKIPPED = ("endSessions", "buildInfo", "hello", "isMaster", "ping")
"""Driver housekeeping, not the archive's work."""


class Commands(monitoring.CommandListener):
    """Counts commands, documents and waiting time by "command collection"."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.docs: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self._started: dict[int, tuple[str, float]] = {}
        self.on = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Count a command as it is sent."""
        if not self.on or event.command_name in SKIPPED:
            return
        target = event.command.get(event.command_name)
        key = f"{event.command_name} {target if isinstance(target, str) else ''}".strip()
        sizes = (len(event.command.get(name, ())) for name in ("documents", "updates", "deletes"))
        self.calls[key] += 1
        self.docs[key] += max(sizes)
        self._started[event.request_id] = (key, time.perf_counter())

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Add the command's round trip to its total."""
        self._done(event.request_id)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Add the command's round trip to its total (a refused insert is answered too)."""
        self._done(event.request_id)

    def _done(self, request_id: int) -> None:
        found = self._started.pop(request_id, None)
        if found is not None:
            self.seconds[found[0]] += time.perf_counter() - found[1]


async def measure(n: int) -> dict[str, Any]:
    """Run raw insert and the archive once each on `n` events; return the figures."""
    listener = Commands()
    monitoring.register(listener)
    names, records = await archive_stage.prefill(end_to_end.BOOTSTRAP, n)
    count = len(records)
    docs = archive_stage.raw_documents(records)
    del records
    ferretdb = end_to_end.stack_processes()["ferretdb"]
    before = end_to_end.cpu_seconds(ferretdb), time.process_time()
    raw_rate = await archive_stage.raw_insert(end_to_end.MONGO_URI, docs)
    raw_cpu = end_to_end.cpu_seconds(ferretdb) - before[0], time.process_time() - before[1]
    tag = uuid.uuid4().hex[:8]
    group, database = f"bench-writes-{tag}", f"bench_writes_{tag}"
    listener.on = True
    before = end_to_end.cpu_seconds(ferretdb), time.process_time()
    async with archive_stage.archive_running(
        end_to_end.BOOTSTRAP, end_to_end.MONGO_URI, names, group, database
    ):
        progress = await kafka.watch_commits(end_to_end.BOOTSTRAP, group, count, within=600)
        cpu = end_to_end.cpu_seconds(ferretdb) - before[0], time.process_time() - before[1]
        listener.on = False
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(end_to_end.MONGO_URI)

    def us(seconds: float) -> float:
        return round(1e6 * seconds / count, 1)

    try:
        await client.drop_database(database)
    finally:
        await client.close()
    return {
        "n": count,
        "raw_docs_per_s": round(raw_rate),
        "archive_events_per_s": round(progress.rate()),
        "raw_cpu_us_per_doc": {"ferretdb": us(raw_cpu[0]), "client": us(raw_cpu[1])},
        "archive_cpu_us_per_event": {"ferretdb": us(cpu[0]), "archive": us(cpu[1])},
        "commands": {
            key: {
                "calls": listener.calls[key],
                "docs": listener.docs[key],
                "seconds": round(listener.seconds[key], 3),
            }
            for key in sorted(listener.calls, key=lambda k: -listener.seconds[k])
        },
    }  # fmt: skip


def report(figures: dict[str, Any]) -> str:
    """Return the figures as text."""
    n, raw = figures["n"], figures["raw_cpu_us_per_doc"]
    archive = figures["archive_cpu_us_per_event"]
    cpu_ratio = (raw["ferretdb"] + raw["client"]) / (archive["ferretdb"] + archive["archive"])
    commands = figures["commands"]
    writes = {k: v for k, v in commands.items() if k.split()[0] in ("insert", "update", "delete")}
    lines = [
        f"{n:,} events: raw insert_many {figures['raw_docs_per_s']:,} docs/s, archive "
        f"{figures['archive_events_per_s']:,} events/s "
        f"({figures['archive_events_per_s'] / figures['raw_docs_per_s']:.0%})",
        f"CPU µs per raw document: FerretDB {raw['ferretdb']:.0f} + client {raw['client']:.0f}; "
        f"per archived event: FerretDB {archive['ferretdb']:.0f} + archive "
        f"{archive['archive']:.0f} (CPU ratio {cpu_ratio:.0%})",
        f"round trips {sum(v['calls'] for v in commands.values())} "
        f"({sum(v['calls'] for v in writes.values())} writes); documents written "
        f"{sum(v['docs'] for v in writes.values()):,} "
        f"({sum(v['docs'] for v in writes.values()) / n:.2f} per event)",
        "",
        "| command collection | round trips | documents | waited s |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {key} | {v['calls']} | {v['docs']:,} | {v['seconds']:.2f} |"
        for key, v in commands.items()
    ]
    return "\n".join(lines)  # fmt: skip


def main() -> None:
    """Start the private stack afresh, measure, print."""
    parser = argparse.ArgumentParser(prog="python -m bench.archive_writes", description=__doc__)
    parser.add_argument("--n", type=int, default=6_000)
    args = parser.parse_args()
    from bench.cli import quiet_logs

    quiet_logs()

    async def run() -> dict[str, Any]:
        await end_to_end.start_stack()
        return await measure(args.n)

    print(report(asyncio.run(run())))
    print(f"stack left up: {end_to_end.BOOTSTRAP}, {end_to_end.MONGO_URI}")


if __name__ == "__main__":
    main()
