"""Part 7: scale-out — router, notifier and archive at 1 and 2 replicas, and rebalancing.

`python -m bench --only scale` (router and notifier scaled, `bench.cli.SCALE_STAGES`) or
`python -m bench.scale_out` (its own stack; `--stages`, `--kill`, `--rate`, `--runs 0`). The
topics have 6 partitions, as in production (docs/topics.md), so a second replica has partitions
to take. Intake and campaigns run as one process each throughout; the router, the notifier
(digests off: every submission its own e-mail) and the archive are the stages under test, on
the same broker and database, in the same consumer groups:

1. `one`: N submissions blasted into the Kafka door with one replica of each stage;
2. `two`: the same with two replicas of each scaled stage (separate processes), started and
   settled first; 1 and 2 alternate `--runs` times;
3. `rebalance`: a steady rate (half the slowest stage's one-replica rate) for 105 s, one replica
   of each at the start; every 15 s one change, one stage at a time: each scaled stage's second
   replica starts, later its first (older) one stops (SIGTERM, or SIGKILL with `--kill`).

Per stage: its rate (N ÷ (when its group's commits covered the blast − first send); the archive
consumes five records per submission), the end-to-end rate (e-mails ÷ (last e-mail − first
send)), the CPU time per submission of every process (replicas summed, less idle use), and for
`rebalance` the longest pause in each stage's output before any change and in the 15 s after
each of its own. Output is what a stage hands on: the router's `submission.routed` records
(Kafka timestamps), the e-mails the SMTP sink stored (its `X-Sada-Sink-Received-At` header), the
archive's committed offsets (it produces nothing). A pause shows only when all of a stage's
output stops: a stall of the partitions one replica held shows as a slower rate (the latency of
the submissions on them is the better measure; bench/README.md has it for one run). Duplicates
and losses are counted where the unit and the auditor would see them: routed events produced
twice (same `event_id`), e-mails stored twice (same `Message-ID`), `notification.sent` records
flagged `repeat` (the ledger answered, no e-mail), archive events per submission and type (the
archive dedupes by `_id`), submissions with no e-mail or no archived event, and the chain
conflicts the archive logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from bench import end_to_end, kafka, machine
from bench.cli import quiet_logs
from bench.end_to_end import BOOTSTRAP, MAILDIR, MONGO_URI, RUN, BenchService, cpu_seconds
from bench.stats import median, percentile
from deploy.local.topics import ensure_topics
from shared import topics
from tests import workload

PARTITIONS = 6
"""Partitions of every topic in this part: production's count (deploy/config/topics.yaml)."""
STAGES = ("router", "notifier", "archive")
"""The services run at 1 and 2 replicas; intake and campaigns stay at one process each."""
GROUPS = {"router": "sada-router", "notifier": "sada-notifier", "archive": "sada-archive"}
ARCHIVE_RECORDS_PER_SUBMISSION = 5
"""The archive reads the raw submission, accepted, routed, grouped and notification.sent."""
AFTER_CHANGE_S = 15.0
"""A pause after a change is looked for in this window."""
WARM_S = 5.0
"""The steady flow of the rebalance run is taken to start this long after the first send."""
QUIET_S = 60.0
"""A run ends when no e-mail arrived for this long (something is stuck: reported as lost)."""
DRAIN_LIMIT_S = 900.0
"""Longest wait for a run's e-mails and archived records."""
REBALANCE_SECONDS = 105.0
"""The rebalance run offers a steady rate this long, with a change every 15 s."""
REBALANCE_SHARE = 0.5
"""Its rate: this share of the slowest stage's rate with one replica (room to catch up)."""
REBALANCE_MAX_RATE = 150.0
SETTLE_S = 15.0
"""Wait after starting replicas before a blast, for the groups to settle."""
ARCHIVED_TYPES = ("submission.accepted", "submission.routed", "notification.sent")
"""Event types the archive must hold exactly once per submission."""
OUTPUT_TOPICS = (topics.ACCEPTED, topics.ROUTED, topics.NOTIFICATIONS)
LATENCY_BIN_S = 5.0
"""The rebalance run's accepted → e-mailed latency is reported by when submissions were accepted,
in bins this wide: a stall of one replica's partitions shows there, not as a pause in output."""


# --- pure helpers ---------------------------------------------------------------------------


def longest_gap(times: Iterable[float], start: float, end: float) -> float:
    """Return the longest interval in [start, end] with no output, the window's edges included.

    `times` are output instants. A stage that produced nothing in the window has paused for
    all of it; the edges count so that a stall running into the window's end is not missed.
    """
    inside = sorted(t for t in times if start <= t <= end)
    points = [start, *inside, end]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


def span_rate(times: Iterable[float]) -> float:
    """Return outputs per second between the first output and the last; NaN for fewer than 2."""
    ordered = sorted(times)
    if len(ordered) < 2 or ordered[-1] <= ordered[0]:
        return float("nan")
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def progress_rate(series: Sequence[tuple[float, int]]) -> float:
    """Return records/s from a (time, committed) series, from the poll before the first movement
    (the first batch's work counts) to the last movement; NaN when nothing moved.
    """
    moved = [i for i in range(1, len(series)) if series[i][1] > series[i - 1][1]]
    if not moved:
        return float("nan")
    start_t, start_n = series[moved[0] - 1]
    end_t, end_n = series[moved[-1]]
    return (end_n - start_n) / (end_t - start_t) if end_t > start_t else float("nan")


def movements(series: Sequence[tuple[float, int]]) -> list[float]:
    """Return the instants at which a committed count moved (a stage's visible progress)."""
    return [t for (_, before), (t, n) in itertools.pairwise(series) if n > before]


def crossing(series: Sequence[tuple[float, int]], target: int) -> float | None:
    """Return the first instant the committed count reached `target`, None if it never did."""
    return next((t for t, n in series if n >= target), None)


def chain_conflicts(log_text: str) -> int:
    """Return the chain appends an archive log reports as lost races (stale heads).

    The archiver logs `chain position taken; re-reading heads` with the number of chains; each
    costs re-reading those chains' heads, a collection scan on FerretDB 1.24.
    """
    total = 0
    for line in log_text.splitlines():
        if "chain position taken" in line:
            with contextlib.suppress(ValueError, TypeError):
                total += int(orjson.loads(line).get("chains", 0))
    return total


def duplicates(counts: Counter[str]) -> int:
    """Return how many extra copies a count holds (an item seen 3 times is 2 duplicates)."""
    return sum(n - 1 for n in counts.values() if n > 1)


def mail_headers(raw: bytes, names: Sequence[str]) -> dict[str, str]:
    """Return the first value of each header in `names` (case-insensitive) of a stored e-mail.

    Reads the header block only (up to the first empty line); folded lines are joined.
    """
    head = raw.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n").decode("utf-8", "replace")
    wanted = {name.lower() for name in names}
    found: dict[str, str] = {}
    current: str | None = None
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and current is not None:
            found[current] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        current = None
        key = name.strip().lower()
        if sep and key in wanted and key not in found:
            found[key] = value.strip()
            current = key
    return found


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port free right now: each replica needs its own HTTP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Installation:
    """The service processes of this part: intake, campaigns, and 1-2 replicas of each stage."""

    replicas: dict[str, list[BenchService]] = field(default_factory=dict)
    retired: list[BenchService] = field(default_factory=list)
    counter: int = 0

    def _new(self, name: str) -> BenchService:
        port = free_port()
        self.counter += 1
        env = end_to_end.INDIVIDUAL if name == "notifier" else None
        return BenchService(
            name,
            port,
            RUN / "logs" / f"scale-{name}-{self.counter}.log",
            env=end_to_end.service_env(port, env),
        )

    async def add(self, name: str) -> BenchService:
        """Start one more process of `name` and wait until it is healthy."""
        service = self._new(name)
        service.start()
        self.replicas.setdefault(name, []).append(service)
        await service.wait_healthy(within=120)
        return service

    async def retire(self, name: str, sig: int) -> None:
        """Stop the oldest process of `name` with `sig` (it leaves its group)."""
        service = self.replicas[name].pop(0)
        self.retired.append(service)
        await asyncio.to_thread(service.kill, sig)

    def pids(self) -> dict[str, list[int]]:
        """Return the live pids by service, the stack's FerretDB, Kafka and sink included."""
        found = {
            name: [s.process.pid for s in group if s.process and s.alive()]
            for name, group in self.replicas.items()
        }
        for name in ("kafka", "ferretdb", "smtp"):
            pid_file = RUN / "pids" / f"{name}.pid"
            if pid_file.exists():
                found[name if name != "smtp" else "smtp sink"] = [int(pid_file.read_text())]
        return found

    def stop(self) -> None:
        """Stop every process (SIGTERM)."""
        for group in self.replicas.values():
            for service in group:
                service.kill(signal.SIGTERM)


class CpuMeter:
    """CPU seconds used by each service (replicas summed) between the first sample and the last,
    less what its processes use idle (`idle`: cores per process, by service name).
    """

    def __init__(self, installation: Installation, idle: dict[str, float] | None = None) -> None:
        self._installation = installation
        self._idle = idle or {}
        self._base: dict[int, tuple[float, float]] = {}
        self._last: dict[int, tuple[str, float, float]] = {}

    def sample(self) -> None:
        """Remember every live process's CPU time (a stopped one keeps its last sample)."""
        now = time.monotonic()
        for name, pids in self._installation.pids().items():
            for pid in pids:
                used = cpu_seconds(pid)
                if used == used:  # not NaN: the process still exists
                    self._base.setdefault(pid, (now, used))
                    self._last[pid] = (name, now, used)

    def per_submission_ms(self, n: int) -> dict[str, float]:
        """Return CPU ms per submission by service since the first sample, less idle use."""
        self.sample()
        total: dict[str, float] = {}
        for pid, (name, at, used) in self._last.items():
            since, base = self._base[pid]
            busy = used - base - self._idle.get(name, 0.0) * (at - since)
            total[name] = total.get(name, 0.0) + busy
        return {name: round(max(0.0, s) * 1000 / n, 2) for name, s in sorted(total.items())}


async def idle_cores(installation: Installation, seconds: float = 10.0) -> dict[str, float]:
    """Return the CPU each service's process uses with no load (cores): polls, timers."""
    before = {name: [cpu_seconds(p) for p in pids] for name, pids in installation.pids().items()}
    await asyncio.sleep(seconds)
    after = {name: [cpu_seconds(p) for p in pids] for name, pids in installation.pids().items()}
    return {
        name: round((sum(after[name]) - sum(before[name])) / seconds / len(before[name]), 4)
        for name in before
        if name in after and len(after[name]) == len(before[name]) and before[name]
    }


# --- observation ----------------------------------------------------------------------------


class Commits:
    """Polls the stages' groups' committed offsets: (time, committed records since the start)."""

    def __init__(self, every: float = 0.2) -> None:
        self.series: dict[str, list[tuple[float, int]]] = {stage: [] for stage in STAGES}
        self._base: dict[str, int] = {}
        self._every = every
        self._admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="sada-scale")
        self._task: asyncio.Task[None] | None = None

    async def _committed(self, group: str) -> int:
        offsets = await self._admin.list_consumer_group_offsets(group)
        return sum(max(0, meta.offset) for meta in offsets.values())

    async def start(self) -> None:
        """Take the groups' current positions as zero and start polling."""
        await self._admin.start()
        for stage in STAGES:
            self._base[stage] = await self._committed(GROUPS[stage])
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            for stage in STAGES:
                with contextlib.suppress(KafkaError):
                    done = await self._committed(GROUPS[stage]) - self._base[stage]
                    self.series[stage].append((time.time(), done))
            await asyncio.sleep(self._every)

    def done(self, stage: str) -> int:
        """Return the records `stage` has committed since `start`."""
        series = self.series[stage]
        return series[-1][1] if series else 0

    async def stop(self) -> None:
        """Stop polling."""
        await kafka.cancel(self._task)
        await self._admin.close()


@dataclass
class Outputs:
    """Every routed event and notification record seen, and the e-mails the sink stored."""

    routed_at: list[float] = field(default_factory=list)
    routed_events: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    repeats: int = 0
    message_ids: dict[str, str] = field(default_factory=dict)
    accepted_at: dict[str, float] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)


class Reader(kafka.TailReader):
    """Reads the routed and notifications topics from their ends (all 6 partitions)."""

    def __init__(self) -> None:
        super().__init__(BOOTSTRAP, OUTPUT_TOPICS, PARTITIONS)
        self.out = Outputs()

    async def _read(self) -> None:
        out = self.out
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == topics.ACCEPTED:  # keyed by submission id
                        out.accepted_at.setdefault(record.key.decode(), record.timestamp / 1000)
                        continue
                    event = orjson.loads(record.value)
                    if tp.topic == topics.ROUTED:
                        out.routed_at.append(record.timestamp / 1000)
                        out.routed_events[event["event_id"]] += 1
                    elif event.get("event_type") == "notification.sent":
                        payload = event.get("payload", {})
                        sid = event["submission_id"]
                        out.sent[sid] += 1
                        out.sent_at.setdefault(sid, record.timestamp / 1000)
                        out.repeats += bool(payload.get("repeat"))
                        out.message_ids[payload.get("message_id", "")] = sid


def mail_count() -> int:
    """Return how many e-mails the sink's Maildir holds (no reading: cheap to poll)."""
    return sum(
        sum(1 for _ in os.scandir(MAILDIR / sub))
        for sub in ("new", "cur")
        if (MAILDIR / sub).exists()
    )


def stored_mail() -> list[tuple[str, float]]:
    """Return (Message-ID, received at) of every e-mail in the sink's Maildir."""
    found = []
    for sub in ("new", "cur"):
        folder = MAILDIR / sub
        if not folder.exists():
            continue
        for entry in os.scandir(folder):
            try:
                with open(entry.path, "rb") as handle:
                    raw = handle.read(16_384)
            except FileNotFoundError:
                continue
            head = mail_headers(raw, ("Message-ID", "X-Sada-Sink-Received-At"))
            received = head.get("x-sada-sink-received-at")
            when = (
                datetime.fromisoformat(received).timestamp()
                if received
                else Path(entry.path).stat().st_mtime
            )
            found.append((head.get("message-id", ""), when))
    return found


async def archived(submissions: set[str]) -> dict[str, int]:
    """Return, over `submissions`, archive events held twice or more and ones missing."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        MONGO_URI, socketTimeoutMS=120_000, serverSelectionTimeoutMS=10_000
    )
    try:
        events = client["sada_archive"]["events"]
        pipeline: list[dict[str, Any]] = [
            {"$match": {"event_type": {"$in": list(ARCHIVED_TYPES)}}},
            {"$group": {"_id": {"s": "$submission_id", "t": "$event_type"}, "n": {"$sum": 1}}},
        ]
        counts: Counter[tuple[str, str]] = Counter()
        async for row in await events.aggregate(pipeline):
            key = (row["_id"]["s"], row["_id"]["t"])
            if key[0] in submissions:
                counts[key] = row["n"]
    finally:
        await client.close()
    expected = len(submissions) * len(ARCHIVED_TYPES)
    return {
        "events": sum(counts.values()),
        "expected": expected,
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "missing": expected - len(counts),
    }


# --- one blast --------------------------------------------------------------------------------


async def wait_until(check: Any, within: float, every: float = 0.5) -> bool:
    """Wait until `check()` is true or `within` seconds passed; return whether it became true."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(every)
    return bool(check())


Change = tuple[float, str, str]
"""(seconds after the first send, "up" or "down", stage): a replica started or stopped."""


def schedule(seconds: float, scaled: Sequence[str] = STAGES) -> list[Change]:
    """Return the rebalance run's changes over an offer of `seconds`: one stage at a time.

    Each stage gets its second replica, then loses its first, at its own time, so that a pause
    in one stage's output is not another stage's: router, notifier, archive up in the first half
    of the offer, down in the second half, evenly spaced.
    """
    step = seconds / 7
    ups = [(step * (i + 1), "up", stage) for i, stage in enumerate(STAGES) if stage in scaled]
    downs = [(step * (i + 4), "down", s) for i, s in enumerate(STAGES) if s in scaled]
    return ups + downs


async def observe(
    installation: Installation,
    gen: end_to_end.Generator,
    items: Sequence[workload.Item],
    rate: float | None,
    *,
    idle: dict[str, float] | None = None,
    changes_at: Sequence[Change] = (),
    sig: int = signal.SIGTERM,
) -> dict[str, Any]:
    """Offer `items` at `rate` (None: at once), make the `changes_at`, wait for every e-mail
    and every archived record; return the figures (`summarise`).
    """
    n = len(items)
    end_to_end.clear_mail()
    reader, commits, cpu = Reader(), Commits(), CpuMeter(installation, idle)
    await reader.start()
    await commits.start()
    cpu.sample()
    targets = {"router": n, "notifier": n, "archive": n * ARCHIVE_RECORDS_PER_SUBMISSION}
    changes: dict[str, dict[str, float]] = {stage: {} for stage in STAGES}
    expected = {end_to_end.submission_id(item) for item in items}
    sent_at = time.time()

    async def change(after: float, what: str, stage: str) -> None:
        await asyncio.sleep(max(0.0, sent_at + after - time.time()))
        changes[stage][what] = time.time()
        if what == "up":
            await installation.add(stage)
            changes[stage]["up_healthy"] = time.time()
        else:
            cpu.sample()
            await installation.retire(stage, sig)
            changes[stage]["down_done"] = time.time()

    log_offsets = archive_log_sizes()
    tasks = [asyncio.create_task(change(*c)) for c in changes_at]
    offered = await gen.offer(items, rate)
    await asyncio.gather(*tasks)
    progress = {"count": -1, "at": time.monotonic()}

    def finished() -> bool:
        mails, now = mail_count(), time.monotonic()
        if mails != progress["count"]:
            progress.update(count=mails, at=now)
        archive_done = commits.done("archive") >= targets["archive"]
        return (mails >= n and archive_done) or now - progress["at"] > QUIET_S

    await wait_until(finished, DRAIN_LIMIT_S, 1.0)
    archive_seen = {"count": -1, "at": time.monotonic()}

    def archived_all() -> bool:
        done, now = commits.done("archive"), time.monotonic()
        if done != archive_seen["count"]:
            archive_seen.update(count=done, at=now)
        return done >= targets["archive"] or now - archive_seen["at"] > QUIET_S

    await wait_until(archived_all, DRAIN_LIMIT_S, 1.0)
    cpu_ms = cpu.per_submission_ms(n)
    await asyncio.sleep(1)
    await reader.stop()
    await commits.stop()
    return summarise(
        n=n,
        sent_at=sent_at,
        sent_s=offered["sent_s"],
        expected=expected,
        out=reader.out,
        mail=stored_mail(),
        series=commits.series,
        changes=changes,
        cpu_ms=cpu_ms,
        archive=await archived_or_unknown(expected),
        conflicts=sum(chain_conflicts(text) for text in archive_logs_since(log_offsets)),
        archive_behind=max(0, targets["archive"] - commits.done("archive")),
    )


async def archived_or_unknown(submissions: set[str]) -> dict[str, int | None]:
    """Return `archived`, or unknowns when the database does not answer in time (a FerretDB
    busy with a stuck archive's retries scans slowly)."""
    try:
        return dict(await archived(submissions))
    except PyMongoError as exc:
        print(f"    archive check failed: {type(exc).__name__}", flush=True)
        return {"events": None, "expected": None, "duplicates": None, "missing": None}


def archive_log_sizes() -> dict[Path, int]:
    """Return the size of every archive replica's log now (the run's lines come after)."""
    return {path: path.stat().st_size for path in (RUN / "logs").glob("scale-archive-*.log")}


def archive_logs_since(sizes: dict[Path, int]) -> list[str]:
    """Return what each archive replica's log gained since `sizes` (new logs: all of it)."""
    found = []
    for path in (RUN / "logs").glob("scale-archive-*.log"):
        with path.open("rb") as handle:
            handle.seek(sizes.get(path, 0))
            found.append(handle.read().decode("utf-8", "replace"))
    return found


def summarise(
    *,
    n: int,
    sent_at: float,
    sent_s: float,
    expected: set[str],
    out: Outputs,
    mail: list[tuple[str, float]],
    series: dict[str, list[tuple[float, int]]],
    changes: dict[str, dict[str, float]],
    cpu_ms: dict[str, float],
    archive: dict[str, int | None],
    conflicts: int = 0,
    archive_behind: int = 0,
) -> dict[str, Any]:
    """Return one run's figures: rates, pauses around changes, duplicates, losses, CPU."""
    mail_ids = Counter(mid for mid, _ in mail)
    mailed = {out.message_ids[mid] for mid in mail_ids if mid in out.message_ids}
    mail_times = [t for _, t in mail]
    outputs = {
        "router": out.routed_at,
        "notifier": mail_times,
        "archive": movements(series["archive"]),
    }
    targets = {"router": n, "notifier": n, "archive": n * ARCHIVE_RECORDS_PER_SUBMISSION}
    done_s = {}
    for stage in STAGES:
        at = crossing(series[stage], targets[stage])
        done_s[stage] = round(at - sent_at, 2) if at is not None else None
    last = max(mail_times, default=sent_at)
    figures: dict[str, Any] = {
        "n": n,
        "sent_per_s": round(n / sent_s, 1) if sent_s > 0 else None,
        "end_to_end_per_s": round(len(mailed) / (last - sent_at), 1) if mailed else 0.0,
        "drain_s": round(last - sent_at, 1),
        "stage_done_s": done_s,
        "stage_per_s": {k: round(n / v, 1) if v else None for k, v in done_s.items()},
        "output_span_per_s": {
            "router": round(span_rate(out.routed_at), 1),
            "notifier": round(span_rate(mail_times), 1),
        },
        "cpu_ms_per_submission": cpu_ms,
        "duplicates": {
            "routed_events": duplicates(out.routed_events),
            "emails": duplicates(mail_ids),
            "sent_records": duplicates(out.sent),
            "repeat_records": out.repeats,
            "archive_events": archive["duplicates"],
        },
        "lost": {
            "not_emailed": len(expected - mailed),
            "not_archived_at_end": archive["missing"],
            "archive_records_behind_at_end": archive_behind,
        },
        "archive_chain_conflicts": conflicts,
    }
    if any(changes.values()):
        figures["pauses"] = pauses(outputs, changes, sent_at)
        figures["latency_bins"] = latency_bins(
            {sid: t for sid, t in out.accepted_at.items() if sid in expected},
            out.sent_at,
            sent_at,
        )
        figures["change_at_s"] = {
            stage: {what: round(at - sent_at, 1) for what, at in c.items()}
            for stage, c in changes.items()
        }
    return figures


def latency_bins(
    accepted: dict[str, float], sent: dict[str, float], start: float, width: float = LATENCY_BIN_S
) -> list[dict[str, Any]]:
    """Return accepted → notified latency (p50, max) of submissions by when they were accepted.

    Bins of `width` seconds from `start`; a submission never notified counts in `missing`.
    """
    bins: dict[int, list[float]] = {}
    missing: Counter[int] = Counter()
    for sid, accepted_at in accepted.items():
        index = int((accepted_at - start) // width)
        if sid in sent:
            bins.setdefault(index, []).append(sent[sid] - accepted_at)
        else:
            missing[index] += 1
    return [
        {
            "accepted_s": round(index * width, 1),
            "n": len(values) + missing[index],
            "p50_s": round(percentile(values, 50), 2),
            "max_s": round(max(values, default=float("nan")), 2),
            "missing": missing[index],
        }
        for index in sorted(set(bins) | set(missing))
        for values in [bins.get(index, [])]
    ]


def pauses(
    outputs: dict[str, list[float]], changes: dict[str, dict[str, float]], sent_at: float
) -> dict[str, Any]:
    """Return, per stage, its longest output pause before any change and after each of its own.

    Before: from `WARM_S` after the first send to the first change of any stage (steady flow).
    After a start: from the start to `AFTER_CHANGE_S` after the replica was healthy (it joins
    the group then). After a stop: from the signal to `AFTER_CHANGE_S` later. A window is cut at
    the stage's last output (a stage that has finished is not paused); None when none is left.
    """
    first_change = min((at for c in changes.values() for at in c.values()), default=sent_at)
    found: dict[str, Any] = {}
    for stage, at in changes.items():
        times = outputs[stage]
        last = max(times, default=sent_at)

        def gap(start: float, end: float) -> float | None:
            end = min(end, last)  # noqa: B023 - used at once, in this iteration
            return round(longest_gap(times, start, end), 2) if end > start else None  # noqa: B023

        entry: dict[str, Any] = {"before_s": gap(sent_at + WARM_S, first_change)}
        if "up" in at:
            healthy = at.get("up_healthy", at["up"])
            entry["after_start_s"] = gap(at["up"], healthy + AFTER_CHANGE_S)
            entry["start_to_healthy_s"] = round(healthy - at["up"], 1)
        if "down" in at:
            entry["after_stop_s"] = gap(at["down"], at["down"] + AFTER_CHANGE_S)
            entry["stop_took_s"] = round(at.get("down_done", at["down"]) - at["down"], 1)
        entry["p99_gap_s"] = round(percentile(gaps(times), 99), 3)
        found[stage] = entry
    return found


def gaps(times: Iterable[float]) -> list[float]:
    """Return the intervals between consecutive outputs."""
    ordered = sorted(times)
    return [b - a for a, b in itertools.pairwise(ordered)]


# --- the part -------------------------------------------------------------------------------


async def start_stack() -> None:
    """Start the private stack afresh with every topic at `PARTITIONS` partitions."""
    print(f"starting the private stack (.run/bench), topics at {PARTITIONS} partitions ...")
    end_to_end.infra("reset")
    end_to_end.infra("up")
    await ensure_topics(BOOTSTRAP, PARTITIONS, single_node=True)
    await kafka.ready_for_groups(BOOTSTRAP)


def report(label: str, f: dict[str, Any]) -> None:
    """Print one blast's figures as it ends."""
    stages = ", ".join(f"{k} {v}/s" for k, v in f["stage_per_s"].items())
    print(f"  {label}: end to end {f['end_to_end_per_s']}/s ({stages}); drain {f['drain_s']} s")
    print(f"    duplicates {f['duplicates']}; lost {f['lost']}")
    print(f"    archive chain conflicts (lost races, re-read heads) {f['archive_chain_conflicts']}")
    if "pauses" in f:
        print(f"    pauses {f['pauses']}")
    print(f"    CPU ms/submission {f['cpu_ms_per_submission']}", flush=True)


async def run(
    *,
    n: int,
    runs: int,
    kill: bool = False,
    rate: float | None = None,
    scaled: Sequence[str] = STAGES,
) -> dict[str, Any]:
    """Blast `n` at 1 and at 2 replicas of each stage, `runs` times (alternating), then the
    rebalance run (1 → 2 → 1 replicas under a steady rate); return the figures.

    The rebalance run's rate is `rate`, else `REBALANCE_SHARE` of the slowest stage's median
    with one replica; `runs=0` with a `rate` runs the rebalance alone. Only the `scaled`
    stages get a second replica; the others stay at one.
    """
    installation = Installation()
    for name in ("intake", "campaigns", *STAGES):
        await installation.add(name)
    gen = end_to_end.Generator()
    await gen.start()
    tag = uuid.uuid4().hex[:6]
    results: dict[str, Any] = {
        "partitions": PARTITIONS,
        "n": n,
        "stop_signal": "SIGKILL" if kill else "SIGTERM",
        "notifier_env": end_to_end.INDIVIDUAL,
        "scaled": list(scaled),
        "one": [],
        "two": [],
    }
    try:
        warm = workload.build(f"swarm-{tag}", 300, http_share=0.0, resubmit_share=0.0)
        await observe(installation, gen, warm, 100)
        idle = results["idle_cores"] = await idle_cores(installation)
        for index in range(runs):
            for replicas in ("one", "two"):
                items = workload.build(f"{replicas}{index}-{tag}", n, http_share=0.0,
                                       resubmit_share=0.0, seed=index)  # fmt: skip
                figures = await observe(installation, gen, items, None, idle=idle)
                results[replicas].append(figures)
                report(
                    f"run {index + 1}/{runs}, {replicas} replica(s) each, {n:,} blasted", figures
                )
                for stage in scaled:
                    if replicas == "one":
                        await installation.add(stage)
                    else:
                        await installation.retire(stage, signal.SIGTERM)
                await asyncio.sleep(SETTLE_S)
        if runs:
            results["median"] = {k: run_medians(results[k]) for k in ("one", "two")}
        if rate is None:
            slowest = min(v for v in results["median"]["one"]["stage_per_s"].values() if v)
            rate = round(min(REBALANCE_MAX_RATE, REBALANCE_SHARE * slowest))
        items = workload.build(f"reb-{tag}", int(rate * REBALANCE_SECONDS), http_share=0.0,
                               resubmit_share=0.0)  # fmt: skip
        changes = schedule(REBALANCE_SECONDS, scaled)
        sig = signal.SIGKILL if kill else signal.SIGTERM
        moved = await observe(
            installation, gen, items, rate, idle=idle, changes_at=changes, sig=sig
        )
        moved["offered_per_s"] = rate
        moved["schedule"] = changes
        moved["seconds"] = REBALANCE_SECONDS
        report(f"rebalance: {rate}/s for {REBALANCE_SECONDS:.0f} s, replicas 1 → 2 → 1", moved)
        results["rebalance"] = moved
        results["load_average"] = machine.load_average()
    finally:
        await gen.stop()
        installation.stop()
    return results


def run_medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the median of the rates and of each process's CPU across runs."""

    def med(values: Iterable[Any]) -> float | None:
        found = [v for v in values if v is not None and v == v]
        return round(median(found), 2) if found else None

    return {
        "end_to_end_per_s": med(r["end_to_end_per_s"] for r in runs),
        "stage_per_s": {s: med(r["stage_per_s"][s] for r in runs) for s in STAGES},
        "cpu_ms_per_submission": {
            name: med(r["cpu_ms_per_submission"].get(name) for r in runs)
            for name in runs[0]["cpu_ms_per_submission"]
        },
    }


def main() -> None:
    """`python -m bench.scale_out`: the part alone, printing JSON (a stack of its own)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4_000)
    parser.add_argument("--runs", type=int, default=2, help="0: the rebalance run alone")
    parser.add_argument("--rate", type=float, help="the rebalance run's rate (default: derived)")
    parser.add_argument("--kill", action="store_true", help="retire replicas with SIGKILL")
    parser.add_argument("--keep-stack", action="store_true")
    parser.add_argument(
        "--stages",
        type=lambda text: tuple(text.split(",")),
        default=STAGES,
        help="stages given a second replica, comma-separated (default: router,notifier,archive)",
    )
    args = parser.parse_args()

    async def go() -> dict[str, Any]:
        await start_stack()
        try:
            return await run(
                n=args.n, runs=args.runs, kill=args.kill, rate=args.rate, scaled=args.stages
            )
        finally:
            if not args.keep_stack:
                end_to_end.stop_stack()

    quiet_logs()
    print(orjson.dumps(asyncio.run(go()), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
