"""`make soak`: a year of traffic in one sitting — 200,000 submissions through the five services.

`python -m bench.soak [--n 200000]` starts the private bench stack (`bench.end_to_end`: Kafka,
FerretDB and the SMTP sink under `.run/bench` on the `SADA_BENCH_*_PORT` ports, reset first) and
the five services as processes with their deployed defaults (digests on: a mailbox past 30
e-mails in 10 minutes gets 5-minute digests; the archive signs checkpoints), then offers N
submissions and checks what a year of national traffic would show:

- **exactly once**: every submission archived once (its `submission.accepted` and its
  `notification.sent` in the archive's `events`, read in one streaming pass), notified once on
  Kafka (`notification.sent` records that are not repeats, alone or with `payload.digest`) and
  once in the mailboxes (a single e-mail's `X-Sada-Reference`, or a digest's listed members);
  nothing missing, nothing twice;
- **flat memory**: each service's RSS, sampled every few seconds while the load runs, grows by
  less than 10% over the second half of the run (growth to a cap in the first half is allowed;
  a leak is not);
- **reads at size**: the archive API's p99 for one submission (≤ 50 ms) and for a list page
  (≤ 200 ms) once everything is archived;
- `sada audit verify --checkpoints` (wall time, and the peak RSS of that child from `wait4`)
  and one consultation report's time, printed.

The mix (`item`): 30% copies of campaign texts (two templates per draft law, varied as people
vary them: `tests/campaign_corpus.py`) on 5 draft laws, 20% comments on those draft laws in
the submitters' own words, 50% ordinary feedback (the sample submissions that go to the Voice of
the Customer, each with its own text); about 10% through intake's HTTP door, the rest through
Kafka. Items are made from their index when sent, so the tool holds sets of ids, never the
workload or the archive.

The offer is paced at `--rate` per second with **backpressure**: the generator holds off while
more than `MAX_UNGROUPED` submissions are offered but not yet through the router and campaigns
(the `submission.grouped` record), or while any service's consumer group lags more than
`MAX_LAG` records; so the run neither stalls the stack nor builds an unbounded backlog, and the
achieved rate is what this machine sustains. After the offer the tool waits for the last digests
(the window is 5 minutes) and for every consumer group to catch up, then checks.

`--minutes` bounds the offer in time: the checks then cover what was offered, and "all N
offered" fails, saying how many went. Exits 1 when a check fails. Writes `bench/soak.json`
(`--out`) and, for a full-size run (or with `--readme`), the results block of bench/README.md,
after every phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from bench import end_to_end as e2e
from bench import kafka, machine
from bench.stats import median, percentile
from shared import ids, topics
from tests import campaign_corpus
from tests.e2e import harness
from tests.workload import VOC, Item, expected_unit, load_samples

DEFAULT_N = 200_000
DEFAULT_RATE = 300.0
"""Offered per second unless backpressure holds the generator off (above what this machine
sustains with digests on, ~165/s in the last quiet bench, so the backpressure sets the pace)."""
CAMPAIGN_SHARE, COMMENT_SHARE, HTTP_SHARE = 0.3, 0.2, 0.1
CONSULTATIONS = (
    "MOJ-DRAFT-2026-003",
    "MOJ-DRAFT-2026-007",
    "SOAK-DRAFT-2026-101",
    "SOAK-DRAFT-2026-102",
    "SOAK-DRAFT-2026-103",
)
"""Five draft laws: two of the registry (one open, one closed: its views are marked late) and
three that are not in it (reported as unregistered)."""
REPORTED = CONSULTATIONS[0]
"""The consultation whose report is timed at the end."""
TEMPLATES_PER_CONSULTATION = 2
MAX_UNGROUPED = 3_000
"""Offered but not yet grouped: about 20 s of the sustained rate (the stack's working set)."""
MAX_LAG = 20_000
"""Records a consumer group may lag (the archive reads six topics: ~5 records a submission)."""
RSS_EVERY_S = 5.0
FLAT_GROWTH = 0.10
"""RSS may grow at most this much over the second half of the run."""
ONE_P99_MS, PAGE_P99_MS = 50.0, 200.0
READS_ONE, READS_PAGES = 200, 100
READS_BUDGET_S = 120.0
"""Each kind of read stops after this long (fewer samples, then): slow reads fail their check
without holding up the rest of the run for hours."""
QUIET_S = 300.0 + 180.0
"""The drain gives up when nothing was notified for this long: the deployed 5-minute digest
window, its settle time and a margin."""
SETTLED_S = 30.0
"""The drain also ends when nothing is on its way (`settled`) for this long."""
CATCH_UP_S = 900.0
VERIFY_LIMIT_S = 3600.0
PROGRESS_EVERY_S = 30.0
HTTP_BASE = int(os.environ.get("SADA_SOAK_HTTP_PORT", "28101"))
PORTS = {
    name: HTTP_BASE + offset
    for name, offset in (
        ("intake", 0),
        ("router", 1),
        ("notifier", 2),
        ("archive", 3),
        ("campaigns", 4),
    )
}
"""The services' HTTP ports: apart from `make bench`'s (28001-28005), so both can run at once;
`SADA_SOAK_HTTP_PORT` moves them (intake's; the others follow)."""
ARCHIVE_URL = f"http://127.0.0.1:{PORTS['archive']}"
ARCHIVE_TOKEN = "local-dev-token"  # the archive's documented local-mode token
OUT = Path(__file__).with_name("soak.json")
README = Path(__file__).with_name("README.md")
START, END = "<!-- soak:results:start -->", "<!-- soak:results:end -->"


# --------------------------------------------------------------------------------------------
# The workload: item i is made from i alone, when it is sent.


@dataclass(frozen=True)
class Mix:
    """What the workload is made of: templates per draft law and the ordinary samples."""

    templates: tuple[tuple[str, str, str], ...]
    """(legislation_ref, language, text) of every campaign template."""
    ordinary: tuple[dict[str, Any], ...]
    """Sample submissions the routing rules send to the Voice of the Customer."""


def mix(seed: int = 18) -> Mix:
    """Return the campaign templates (two per draft law) and the ordinary samples."""
    rng = random.Random(seed)
    templates = []
    for n, ref in enumerate(CONSULTATIONS):
        language = "ar" if n % 2 == 0 else "en"
        words = campaign_corpus.AR_WORDS if language == "ar" else campaign_corpus.EN_WORDS
        for _ in range(TEMPLATES_PER_CONSULTATION):
            opening = campaign_corpus.sentence(rng, words, rng.randint(22, 30))
            request = campaign_corpus.sentence(rng, words, rng.randint(8, 14))
            templates.append((ref, language, f"{opening}\n\n{request}"))
    ordinary = tuple(s for s in load_samples() if expected_unit(s) == VOC)
    return Mix(tuple(templates), ordinary)


def kind_of(index: int) -> str:
    """Return what submission `index` is: `campaign` (3 in 10), `comment` (2 in 10), `ordinary`."""
    slot = index % 10
    if slot < round(CAMPAIGN_SHARE * 10):
        return "campaign"
    if slot < round((CAMPAIGN_SHARE + COMMENT_SHARE) * 10):
        return "comment"
    return "ordinary"


def item(run: str, index: int, workload: Mix) -> Item:
    """Return submission `index` of run `run`: the same every time it is asked for."""
    rng = random.Random(f"{run}:{index}")
    door = "http" if rng.random() < HTTP_SHARE else "kafka"
    ref_no = f"{run}-{index:07d}"
    what = kind_of(index)
    if what == "ordinary":
        sample = workload.ordinary[index % len(workload.ordinary)]
        body = campaign_corpus.sentence(rng, campaign_corpus.EN_WORDS, rng.randint(20, 60))
        raw = {**sample, "channel_ref": ref_no, "body": body}
    else:
        if what == "campaign":
            ref, language, template = workload.templates[rng.randrange(len(workload.templates))]
            body = campaign_corpus.variant(rng, template, language)
        else:
            ref = CONSULTATIONS[(index // 10) % len(CONSULTATIONS)]
            language = "ar" if CONSULTATIONS.index(ref) % 2 == 0 else "en"
            words = campaign_corpus.AR_WORDS if language == "ar" else campaign_corpus.EN_WORDS
            body = campaign_corpus.sentence(rng, words, rng.randint(20, 70))
        raw = {
            "channel": "istitlaa",
            "channel_ref": ref_no,
            "kind": "consultation_response",
            "legislation_ref": ref,
            "language": language,
            "body": body,
            "submitted_at": "2026-12-03T10:00:00+03:00",
        }
    return Item(raw, door, expected_unit(raw))


def submission_id(run: str, index: int, workload: Mix) -> str:
    """Return the id intake gives submission `index` (its channel and channel_ref)."""
    channel = "istitlaa" if kind_of(index) != "ordinary" else None
    if channel is None:
        channel = workload.ordinary[index % len(workload.ordinary)]["channel"]
    return ids.submission_id(channel, f"{run}-{index:07d}", "")


# --------------------------------------------------------------------------------------------
# The pure checks (unit-tested on fabricated inputs).


@dataclass
class Tally:
    """How often each expected id was seen: the exactly-once verdict of one source."""

    source: str
    expected: int
    missing: int = 0
    twice: int = 0
    """Ids seen more than once."""
    unexpected: int = 0
    """Ids seen that were never offered."""
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Return True when every expected id was seen exactly once and nothing else was."""
        return self.missing == 0 and self.twice == 0 and self.unexpected == 0


def exactly_once(source: str, expected: Collection[str], seen: Mapping[str, int]) -> Tally:
    """Compare how often each id was `seen` with the `expected` ids (each exactly once).

    `expected` may hold an id more than once only as a multiset (`Counter`): then that many.
    """
    wanted: Mapping[str, int] = (
        expected if isinstance(expected, Counter) else dict.fromkeys(expected, 1)
    )
    tally = Tally(source, sum(wanted.values()))
    missing = [k for k, n in wanted.items() if seen.get(k, 0) < n]
    twice = [k for k, n in seen.items() if k in wanted and n > wanted[k]]
    unexpected = [k for k in seen if k not in wanted]
    tally.missing = sum(wanted[k] - seen.get(k, 0) for k in missing)
    tally.twice, tally.unexpected = len(twice), len(unexpected)
    tally.examples = {
        name: sorted(found)[:5]
        for name, found in (("missing", missing), ("twice", twice), ("unexpected", unexpected))
        if found
    }
    return tally


Sample = tuple[float, float]
"""(seconds since the run began, RSS in MB)."""


def second_half_growth(
    samples: Sequence[Sample], *, edge: float = 0.05, every: float = RSS_EVERY_S
) -> float | None:
    """Return the RSS growth over the second half of the samples' span, as a share.

    The RSS at the half is the median of the samples in the first `edge` of the second half,
    the RSS at the end the median of those in its last `edge` (at least 1.5 sampling intervals
    `every`, so each holds a sample): single spikes (a large batch being parsed) neither make
    nor hide a trend. None with too few samples to tell.
    """
    if len(samples) < 4:
        return None
    first, last = samples[0][0], samples[-1][0]
    half = (first + last) / 2
    width = max((last - half) * edge, every * 1.5)
    at_half = [mb for t, mb in samples if half <= t <= half + width]
    at_end = [mb for t, mb in samples if t >= last - width]
    if not at_half or not at_end:
        return None
    base = median(at_half)
    return (median(at_end) - base) / base if base > 0 else None


def flat(growth: float | None) -> bool:
    """Return True when the second half grew less than `FLAT_GROWTH` (unknown is not flat)."""
    return growth is not None and growth < FLAT_GROWTH


def p99_ms(seconds: Sequence[float]) -> float:
    """Return the 99th percentile of `seconds`, in milliseconds."""
    return round(percentile([s * 1000 for s in seconds], 99), 1)


@dataclass
class Pacer:
    """When the next submission is due: `rate` per second, never a burst after a hold.

    A hold (backpressure) or a slow send moves the schedule, rather than being caught up at
    full speed afterwards: at most `slack` seconds of submissions go out back to back.
    """

    rate: float
    next_due: float
    slack: float = 0.5

    def due(self, now: float) -> float:
        """Return when the next submission is due (≥ now − slack) and advance the schedule."""
        self.next_due = max(self.next_due, now - self.slack)
        due = self.next_due
        self.next_due += 1 / self.rate
        return due


# --------------------------------------------------------------------------------------------
# Watching the run: Kafka records by submission, consumer-group lag, RSS.


@dataclass
class Counts:
    """What the Kafka records say, by submission id (sets and counters of ids, nothing more)."""

    accepted: set[str] = field(default_factory=set)
    grouped: set[str] = field(default_factory=set)
    sent: Counter[str] = field(default_factory=Counter)
    """`notification.sent` records that are not repeats."""
    repeats: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    """`submission.rejected` records: none of the workload should be."""
    digested: set[str] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)


class Watcher(kafka.TailReader):
    """Reads the accepted, grouped and notifications topics from their ends."""

    def __init__(self) -> None:
        watched = (topics.ACCEPTED, topics.REJECTED, topics.GROUPED, topics.NOTIFICATIONS)
        super().__init__(e2e.BOOTSTRAP, watched, kafka.PARTITIONS)
        self.counts = Counts()

    async def _read(self) -> None:
        counts = self.counts
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == topics.ACCEPTED:
                        counts.accepted.add(record.key.decode())
                    elif tp.topic == topics.GROUPED:
                        counts.grouped.add(record.key.decode())
                    elif tp.topic == topics.REJECTED:
                        counts.rejected += 1
                    else:
                        self._notification(record.value)

    def _notification(self, value: bytes) -> None:
        event = orjson.loads(value)
        sid, payload = event["submission_id"], event["payload"]
        if event["event_type"] == "notification.failed":
            self.counts.failed[sid] += 1
        elif event["event_type"] != "notification.sent":
            return
        elif payload.get("repeat"):
            self.counts.repeats += 1
        else:
            self.counts.sent[sid] += 1
            if payload.get("digest"):
                self.counts.digested.add(sid)
                self.counts.digests.add(payload["digest"]["digest_id"])


class Lags:
    """Each service's consumer-group lag (records), refreshed every `every` seconds."""

    def __init__(self, every: float = 2.0) -> None:
        self.lag: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self._every = every
        self._admin = AIOKafkaAdminClient(bootstrap_servers=e2e.BOOTSTRAP, client_id="sada-soak")
        self._ends = AIOKafkaConsumer(bootstrap_servers=e2e.BOOTSTRAP, enable_auto_commit=False)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and start polling."""
        await self._admin.start()
        await self._ends.start()
        self._task = asyncio.create_task(self._poll())

    async def refresh(self) -> dict[str, int]:
        """Read every `sada-*` group's committed offsets against the partitions' ends."""
        groups = [g[0] for g in await self._admin.list_consumer_groups() if g[0].startswith("sada")]
        found: dict[str, int] = {}
        for group in groups:
            offsets = await self._admin.list_consumer_group_offsets(group)
            parts = [tp for tp, meta in offsets.items() if meta.offset >= 0]
            ends = await self._ends.end_offsets(parts) if parts else {}
            found[group] = sum(max(0, ends[tp] - offsets[tp].offset) for tp in parts)
        self.lag = found
        for group, lag in found.items():
            self.peak[group] = max(lag, self.peak.get(group, 0))
        return found

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a slow broker answer: the next poll will do
                await self.refresh()
            await asyncio.sleep(self._every)

    async def stop(self) -> None:
        """Stop polling and disconnect."""
        await kafka.cancel(self._task)
        await self._ends.stop()
        await self._admin.close()


def rss_mb(pid: int) -> float | None:
    """Return the resident set size of `pid` in MB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples each process's RSS every `RSS_EVERY_S` (a few hundred points per process)."""

    def __init__(self, pids: Mapping[str, int], began: float) -> None:
        self.samples: dict[str, list[Sample]] = {name: [] for name in pids}
        self._pids = dict(pids)
        self._began = began
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling."""
        self._task = asyncio.create_task(self._sample())

    def take(self) -> None:
        """Take one sample of every process."""
        now = time.monotonic() - self._began
        for name, pid in self._pids.items():
            mb = rss_mb(pid)
            if mb is not None:
                self.samples[name].append((round(now, 1), round(mb, 1)))

    async def _sample(self) -> None:
        while True:
            self.take()
            await asyncio.sleep(RSS_EVERY_S)

    async def stop(self) -> None:
        """Stop sampling (one last sample first); again is a no-op."""
        if self._task and not self._task.done():
            self.take()
            await kafka.cancel(self._task)


# --------------------------------------------------------------------------------------------
# The generator: both doors, paced, with backpressure.


class Offer:
    """Sends the workload through the Kafka door (producer) and the HTTP door (httpx)."""

    def __init__(self, run: str, workload: Mix, counts: Counts, lags: Lags) -> None:
        self.run, self.workload, self.counts, self.lags = run, workload, counts, lags
        self.offered = 0
        self.http = 0
        self.http_failures: Counter[str] = Counter()
        self.http_retries = 0
        self.held_s = 0.0
        self._producer = kafka.producer(e2e.BOOTSTRAP)
        self._client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{PORTS['intake']}",
            timeout=60.0,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self._gate = asyncio.Semaphore(32)

    def held(self) -> str | None:
        """Return why the generator must wait now (None: it may send)."""
        ungrouped = self.offered - len(self.counts.grouped)
        if ungrouped > MAX_UNGROUPED:
            return f"{ungrouped:,} offered but not yet grouped"
        lagging = {g: n for g, n in self.lags.lag.items() if n > MAX_LAG}
        if lagging:
            return ", ".join(f"{g} lags {n:,}" for g, n in lagging.items())
        return None

    async def _post(self, entry: Item) -> None:
        """POST one submission as a channel does: a 502/503/504 or a broken connection is tried
        again (intake is idempotent by channel reference), up to 30 times a second apart; every
        retry is counted, and any final answer but 202 is a failure."""
        headers = {
            "Authorization": f"Bearer local-{entry.raw['channel']}-key",
            "Content-Type": "application/json",
        }
        outcome = "no answer"
        try:
            for attempt in range(30):
                if attempt:
                    self.http_retries += 1
                    await asyncio.sleep(1.0)
                try:
                    answer = await self._client.post(
                        "/v1/submissions", content=entry.encoded(), headers=headers
                    )
                except httpx.TransportError as exc:
                    outcome = type(exc).__name__
                    continue
                outcome = str(answer.status_code)
                if answer.status_code not in {502, 503, 504}:
                    break
            if outcome != "202":
                self.http_failures[outcome] += 1
        finally:
            self._gate.release()

    async def send(
        self, n: int, rate: float, report: Callable[[], None], limit_s: float | None = None
    ) -> float:
        """Offer submissions 0..n-1 at `rate`/s, holding off under backpressure; return seconds.

        With `limit_s`, stop offering after that long (`self.offered` says how many went).
        """
        await self._producer.start()
        loop = asyncio.get_running_loop()
        began = loop.time()
        pacer = Pacer(rate, began)
        acks: list[asyncio.Future[Any]] = []
        posts: set[asyncio.Task[None]] = set()
        last_report = began
        try:
            for index in range(n):
                if limit_s is not None and loop.time() - began > limit_s:
                    break
                while self.held():
                    waited = loop.time()
                    await asyncio.sleep(0.2)
                    self.held_s += loop.time() - waited
                    if loop.time() - last_report >= PROGRESS_EVERY_S:
                        last_report = loop.time()
                        report()
                delay = pacer.due(loop.time()) - loop.time()
                if delay > 0.001:
                    await asyncio.sleep(delay)
                entry = item(self.run, index, self.workload)
                if entry.door == "http":
                    await self._gate.acquire()
                    task = asyncio.create_task(self._post(entry))
                    posts.add(task)
                    task.add_done_callback(posts.discard)
                    self.http += 1
                else:
                    key = entry.raw["channel_ref"].encode()
                    acks.append(
                        await self._producer.send(topics.SUBMISSIONS, entry.encoded(), key=key)
                    )
                    if len(acks) >= 500:
                        await asyncio.gather(*acks)
                        acks.clear()
                self.offered += 1
                if loop.time() - last_report >= PROGRESS_EVERY_S:
                    last_report = loop.time()
                    report()
            await asyncio.gather(*acks)
            await asyncio.gather(*posts)
        finally:
            await self._producer.stop()
            await self._client.aclose()
        return loop.time() - began


# --------------------------------------------------------------------------------------------
# The checks at the end.


def mailbox_counts(maildir: Path) -> tuple[Counter[str], int, int]:
    """Count each reference's notifications in the sink: (counts, single e-mails, digests).

    A single e-mail names its submission in X-Sada-Reference; a digest (X-Sada-Digest) counts
    once for each reference it lists (its text's items, or its attached CSV's rows).
    """
    from services.notifier.digest_messages import listed_references

    counts: Counter[str] = Counter()
    singles = digests = 0
    headers_only = BytesHeaderParser(policy=policy.default)
    whole = BytesParser(policy=policy.default)
    new = maildir / "new"
    for entry in os.scandir(new) if new.exists() else ():
        with open(entry.path, "rb") as handle:
            headers = headers_only.parse(handle)
            if headers["X-Sada-Digest"] is None:
                counts[str(headers["X-Sada-Reference"])] += 1
                singles += 1
                continue
            handle.seek(0)
            message = whole.parse(handle)
        assert isinstance(message, EmailMessage)
        counts.update(listed_references(message))
        digests += 1
    return counts, singles, digests


async def archive_counts() -> tuple[Counter[str], Counter[str], int]:
    """Stream the archive's events once: (accepted per submission, sent per submission, events).

    One unsorted, projected pass (FerretDB 1.24 decodes every document for any filter, so a
    filter would cost the same): two counters of ids are all that is kept.
    """
    from pymongo import AsyncMongoClient

    from services.archive.settings import ArchiveSettings

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        e2e.MONGO_URI, socketTimeoutMS=600_000, serverSelectionTimeoutMS=30_000
    )
    accepted: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    total = 0
    try:
        events = client[ArchiveSettings().mongo.database]["events"]
        cursor = events.find({}, {"_id": 0, "submission_id": 1, "event_type": 1}, batch_size=5000)
        async for doc in cursor:
            total += 1
            kind = doc.get("event_type")
            if kind == "submission.accepted":
                accepted[doc["submission_id"]] += 1
            elif kind == "notification.sent":
                sent[doc["submission_id"]] += 1
    finally:
        await client.close()
    return accepted, sent, total


async def timed_get(
    client: httpx.AsyncClient, path: str, errors: Counter[str], **params: Any
) -> tuple[float, Any]:
    """GET an archive API path; return (seconds, JSON body or None when it failed).

    A failure (any status but 200, or no answer) is counted in `errors` by its status and its
    time still counts: a user waited that long too.
    """
    began = time.perf_counter()
    try:
        answer = await client.get(path, params=params)
    except httpx.HTTPError as exc:
        errors[type(exc).__name__] += 1
        return time.perf_counter() - began, None
    took = time.perf_counter() - began
    if answer.status_code != 200:
        errors[str(answer.status_code)] += 1
        return took, None
    return took, answer.json()


LISTINGS: tuple[dict[str, str], ...] = (
    {},
    {"unit": "voice_of_customer"},
    {"unit": "legislations_office"},
    {"status": "notified"},
    {"channel": "istitlaa"},
)
"""The list pages read: the default listing and one per filter; each followed 4 cursors deep."""


def spread(seconds: Sequence[float]) -> dict[str, Any]:
    """Return the count, p50, p99 and maximum of `seconds`, in milliseconds."""
    return {
        "n": len(seconds),
        "p50_ms": round(percentile([s * 1000 for s in seconds], 50), 1),
        "p99_ms": p99_ms(seconds),
        "max_ms": round(max(seconds, default=float("nan")) * 1000, 1),
    }


async def api_reads(sample: Sequence[str]) -> dict[str, Any]:
    """Time one-submission reads (by reference and by id, alternately) and list pages."""
    headers = {"Authorization": f"Bearer {ARCHIVE_TOKEN}"}
    one_errors: Counter[str] = Counter()
    page_errors: Counter[str] = Counter()
    async with httpx.AsyncClient(
        base_url=f"{ARCHIVE_URL}/v1", headers=headers, timeout=120.0
    ) as client:
        await timed_get(client, "/submissions", Counter(), limit=1)  # the connection
        by_reference: list[float] = []
        by_id: list[float] = []
        budget = time.monotonic() + READS_BUDGET_S
        for n, sid in enumerate(sample):
            if time.monotonic() > budget:
                break
            key = sid if n % 2 else ids.reference(sid)
            took, body = await timed_get(client, f"/submissions/{key}", one_errors)
            if body is not None and body["submission"]["submission_id"] != sid:
                one_errors["another submission"] += 1
            (by_id if n % 2 else by_reference).append(took)
        pages: list[float] = []
        budget = time.monotonic() + READS_BUDGET_S
        while len(pages) < READS_PAGES and time.monotonic() < budget:
            for filters in LISTINGS:
                cursor = None
                for _ in range(5):
                    if time.monotonic() > budget:
                        break
                    params = {**filters, "limit": 50, **({"cursor": cursor} if cursor else {})}
                    took, body = await timed_get(client, "/submissions", page_errors, **params)
                    pages.append(took)
                    cursor = body.get("next_cursor") if body else None
                    if not cursor:
                        break
    return {
        "one_submission": {
            **spread(by_reference + by_id),
            "by_reference": spread(by_reference),
            "by_id": spread(by_id),
            "errors": dict(one_errors),
        },
        "list_page": {
            **spread(pages),
            "limit": 50,
            "filters": [dict(f) for f in LISTINGS],
            "errors": dict(page_errors),
        },
    }


async def report_time(ref: str, runs: int = 3) -> dict[str, Any]:
    """Time the consultation's report through the API (JSON, then HTML), `runs` times each."""
    headers = {"Authorization": f"Bearer {ARCHIVE_TOKEN}"}
    found: dict[str, Any] = {"ref": ref}
    async with httpx.AsyncClient(
        base_url=f"{ARCHIVE_URL}/v1", headers=headers, timeout=300.0
    ) as client:
        for fmt in ("json", "html"):
            took = []
            for _ in range(runs):
                began = time.perf_counter()
                answer = await client.get(f"/consultations/{ref}/report", params={"format": fmt})
                took.append(time.perf_counter() - began)
                if answer.status_code != 200:
                    raise RuntimeError(f"report {ref} {fmt}: {answer.status_code}")
                if fmt == "json":
                    found["total"] = answer.json().get("total")
                found[f"{fmt}_bytes"] = len(answer.content)
            found[f"{fmt}_s"] = round(median(took), 3)
            found[f"{fmt}_runs_s"] = [round(t, 3) for t in took]
    return found


def audit_verify(ferretdb_pid: int | None) -> dict[str, Any]:
    """Run `sada audit verify --checkpoints` as a child: wall time, exit code, its peak RSS.

    The peak is the child's own `ru_maxrss` (`os.wait4`), not the RSS of this process;
    FerretDB's RSS is sampled meanwhile (it sorts in its own memory, docs/audit.md).
    """
    env = e2e.service_env(PORTS["archive"], archive_env())
    log = e2e.RUN / "logs" / "audit-verify.log"
    began = time.monotonic()
    with log.open("wb") as out:
        child = subprocess.Popen(
            [harness.SADA, "audit", "verify", "--checkpoints", str(e2e.RUN / "witness")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    ferret_peak = 0.0
    status, usage = 0, None
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if ferretdb_pid:
            ferret_peak = max(ferret_peak, rss_mb(ferretdb_pid) or 0.0)
        if time.monotonic() - began > VERIFY_LIMIT_S:
            child.kill()
            pid, status, usage = os.wait4(child.pid, 0)
            break
        time.sleep(0.5)
    child.returncode = os.waitstatus_to_exitcode(status)
    tail = log.read_text(errors="replace")[-1500:]
    return {
        "wall_s": round(time.monotonic() - began, 1),
        "exit_code": child.returncode,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1) if usage else None,
        "ferretdb_peak_rss_mb": round(ferret_peak, 1) if ferretdb_pid else None,
        "output_tail": tail,
    }


# --------------------------------------------------------------------------------------------
# The run.


def archive_env() -> dict[str, str]:
    """Return the archive's signed-checkpoint settings under the bench stack's run dir."""
    from deploy.local.run import audit_env

    return audit_env(e2e.RUN)


def cluster() -> harness.Cluster:
    """Return one process per service, each with the deployed defaults (digests on)."""
    names = ["intake", "router", "campaigns", "notifier", "archive"]
    return harness.Cluster(
        [
            e2e.BenchService(
                name,
                PORTS[name],
                e2e.RUN / "logs" / f"{name}.log",
                env=e2e.service_env(PORTS[name], archive_env() if name == "archive" else None),
            )
            for name in names
        ]
    )


def stamp() -> str:
    """Return the time of day for progress lines."""
    return time.strftime("%H:%M:%S")


@dataclass
class Soak:
    """One run's state: what was offered and what the watchers saw."""

    n: int
    rate: float
    run: str = field(default_factory=lambda: f"soak-{os.urandom(3).hex()}")
    workload: Mix = field(default_factory=mix)
    results: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    readme: bool = False
    """Write bench/README.md's table too (after every phase, like the JSON)."""
    minutes: float | None = None
    """Stop offering after this long (the checks then cover what was offered)."""

    def expected(self) -> set[str]:
        """Return the ids of every submission offered (a set of N ids)."""
        return {submission_id(self.run, i, self.workload) for i in range(self.n)}

    def check(self, name: str, ok: bool, measured: Any, target: str) -> None:
        """Record and print one check."""
        self.checks.append({"check": name, "ok": ok, "measured": measured, "target": target})
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {measured} (target {target})", flush=True)


async def soak(n: int, rate: float, out: Path, readme: bool, minutes: float | None = None) -> int:
    """Run the soak; return the exit code (1 when a check failed)."""
    state = Soak(n, rate, readme=readme, minutes=minutes)
    state.results.update(
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine.describe(),
        load_average_start=machine.load_average(),
        n=n,
        target_rate=rate,
        mix={"campaign": CAMPAIGN_SHARE, "comment": COMMENT_SHARE, "http": HTTP_SHARE},
        consultations=list(CONSULTATIONS),
        backpressure={"max_ungrouped": MAX_UNGROUPED, "max_lag": MAX_LAG},
        stack={"kafka": e2e.BOOTSTRAP, "mongo": e2e.MONGO_URI, "smtp_port": e2e.SMTP_PORT},
    )
    print(
        f"soak {state.run}: {n:,} submissions at up to {rate:g}/s; stack on {e2e.BOOTSTRAP}, "
        f"{e2e.MONGO_URI}, SMTP {e2e.SMTP_PORT}"
    )
    began = time.monotonic()
    await e2e.start_stack()
    services = cluster()
    try:
        await services.start()
        print(f"  services healthy after {time.monotonic() - began:.0f} s")
        code = await measure(state, services, out)
    finally:
        services.stop()
        e2e.stop_stack()
    state.results["total_s"] = round(time.monotonic() - began, 1)
    state.results["load_average_end"] = machine.load_average()
    save(state, out)
    return code


def save(state: Soak, out: Path) -> None:
    """Write the results so far (after each phase: a late failure keeps the earlier figures)."""
    state.results["checks"] = state.checks
    state.results["ok"] = all(c["ok"] for c in state.checks)
    out.write_text(json.dumps(state.results, indent=1, ensure_ascii=False, default=str) + "\n")
    if state.readme:
        write_readme(state)


async def measure(state: Soak, services: harness.Cluster, out: Path) -> int:
    """Offer the workload, drain, then run every check; return the exit code."""
    pids = {s.name: s.process.pid for s in services if s.process}
    stack_pids = e2e.stack_processes()
    watcher, lags = Watcher(), Lags()
    await watcher.start()
    await lags.start()
    began = time.monotonic()
    sampler = RssSampler(pids | stack_pids | {"soak tool": os.getpid()}, began)
    sampler.start()
    counts = watcher.counts
    offer = Offer(state.run, state.workload, counts, lags)
    last = {"t": began, "offered": 0, "notified": 0}

    def report() -> None:
        now = time.monotonic()
        took = max(now - last["t"], 1e-9)
        rate = (offer.offered - last["offered"]) / took
        notified = (len(counts.sent) - last["notified"]) / took
        last.update(t=now, offered=offer.offered, notified=len(counts.sent))
        rss = ", ".join(f"{k} {v[-1][1]:.0f}" for k, v in sampler.samples.items() if v)
        lag = ", ".join(f"{k.removeprefix('sada-')} {v:,}" for k, v in lags.lag.items())
        why = offer.held()
        print(
            f"[{stamp()}] offered {offer.offered:,} ({rate:.0f}/s), accepted "
            f"{len(counts.accepted):,}, grouped {len(counts.grouped):,}, notified "
            f"{len(counts.sent):,} ({notified:.0f}/s; {len(counts.digested):,} in digests); "
            f"lag: {lag}; "
            f"RSS MB: {rss}{f'; holding: {why}' if why else ''}",
            flush=True,
        )

    try:
        limit_s = state.minutes * 60 if state.minutes else None
        offered_s = await offer.send(state.n, state.rate, report, limit_s)
        state.check(
            f"all {state.n:,} offered",
            offer.offered == state.n,
            f"{offer.offered:,} offered in {offered_s / 60:.1f} minutes"
            + (f" (the --minutes {state.minutes:g} limit)" if offer.offered < state.n else ""),
            f"{state.n:,}",
        )
        state.n = offer.offered  # the checks below are about what was offered
        state.results["offered"] = offer.offered
        achieved = state.n / offered_s
        state.results["offer"] = {
            "seconds": round(offered_s, 1),
            "achieved_per_s": round(achieved, 1),
            "held_s": round(offer.held_s, 1),
            "http": offer.http,
            "http_failures": dict(offer.http_failures),
            "http_retries": offer.http_retries,
        }
        print(
            f"[{stamp()}] offered {state.n:,} in {offered_s:.0f} s: **{achieved:.1f}/s** "
            f"achieved (held off {offer.held_s:.0f} s; {offer.http:,} via HTTP)"
        )
        drained = await drain(state, counts, lags, report)
        await sampler.stop()
        state.results["drain"] = drained
        await catch_up(lags)
        state.results["peak_lag"] = dict(lags.peak)
    finally:
        await sampler.stop()
        await lags.stop()
        await watcher.stop()
    memory(state, sampler, set(pids))
    save(state, out)
    await phase(state, "the exactly-once checks", exactly_once_checks(state, counts))
    save(state, out)
    await phase(state, "the archive API reads", reads(state))
    save(state, out)
    await phase(state, "the consultation report", consultation_report(state))
    save(state, out)
    verified = await asyncio.to_thread(audit_verify, stack_pids.get("ferretdb"))
    state.results["audit_verify"] = verified
    state.check(
        "sada audit verify --checkpoints passes",
        verified["exit_code"] == 0,
        f"exit {verified['exit_code']} in {verified['wall_s']} s, peak RSS "
        f"{verified['peak_rss_mb']} MB (FerretDB peak {verified['ferretdb_peak_rss_mb']} MB)",
        "exit 0",
    )
    save(state, out)
    return 0 if all(c["ok"] for c in state.checks) else 1


async def phase(state: Soak, name: str, work: Coroutine[Any, Any, None]) -> None:
    """Run one phase of checks; an exception fails a check of its own and the run goes on."""
    try:
        await work
    except Exception as exc:  # report it with the other checks, then run the next phase
        traceback.print_exc()
        state.check(
            f"{name} ran to the end", False, f"{type(exc).__name__}: {exc}"[:400], "no error"
        )


def settled(counts: Counts, lags: Mapping[str, int]) -> bool:
    """Return True when nothing is on its way: every submission accepted was grouped and
    notified (or failed), and no consumer group lags. One that never got that far (refused at
    a door) will not arrive by waiting: the checks name it."""
    done = len(counts.sent) + len(counts.failed)
    return (
        bool(lags)
        and not any(lags.values())
        and len(counts.grouped) >= len(counts.accepted)
        and done >= len(counts.grouped)
    )


async def drain(
    state: Soak, counts: Counts, lags: Lags, report: Callable[[], None]
) -> dict[str, Any]:
    """Wait until every submission was notified, nothing is on its way for `SETTLED_S`
    seconds, or nothing was notified for `QUIET_S` seconds."""
    began = time.monotonic()
    seen, changed = -1, began
    last_report = began
    settled_since: float | None = None
    while True:
        done = len(counts.sent) + len(counts.failed)
        if done >= state.n:
            break
        if not settled(counts, lags.lag):
            settled_since = None
        elif settled_since is None:
            settled_since = time.monotonic()
        elif time.monotonic() - settled_since > SETTLED_S:
            print(f"[{stamp()}] {state.n - done:,} not notified, nothing on its way")
            break
        if done != seen:
            seen, changed = done, time.monotonic()
        elif time.monotonic() - changed > QUIET_S:
            print(f"[{stamp()}] nothing notified for {QUIET_S:.0f} s: giving up the wait")
            break
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            report()
        await asyncio.sleep(1.0)
    took = time.monotonic() - began
    print(f"[{stamp()}] drained in {took:.0f} s: {len(counts.sent):,} notified")
    return {"seconds": round(took, 1), "notified": len(counts.sent)}


async def catch_up(lags: Lags) -> None:
    """Wait until every consumer group has read everything (the archive last, usually)."""
    deadline = time.monotonic() + CATCH_UP_S
    while time.monotonic() < deadline:
        found = await lags.refresh()
        if found and not any(found.values()):
            return
        await asyncio.sleep(2.0)
    print(f"[{stamp()}] consumer groups still lag after {CATCH_UP_S:.0f} s: {lags.lag}")


def memory(state: Soak, sampler: RssSampler, services: set[str]) -> None:
    """Check each service's RSS for growth over the second half of the run."""
    rss: dict[str, Any] = {}
    for name, samples in sampler.samples.items():
        growth = second_half_growth(samples)
        rss[name] = {
            "first_mb": samples[0][1] if samples else None,
            "mid_mb": samples[len(samples) // 2][1] if samples else None,
            "last_mb": samples[-1][1] if samples else None,
            "peak_mb": max((mb for _, mb in samples), default=None),
            "second_half_growth": None if growth is None else round(growth, 4),
            "samples": samples,
        }
        if name in services:
            shown = "unknown" if growth is None else f"{growth:+.1%}"
            state.check(
                f"{name} RSS flat over the second half",
                flat(growth),
                f"{shown} (peak {rss[name]['peak_mb']} MB)",
                f"< {FLAT_GROWTH:.0%}",
            )
    state.results["rss"] = rss


async def exactly_once_checks(state: Soak, counts: Counts) -> None:
    """Check every submission archived once and notified once (Kafka and mailboxes)."""
    expected = state.expected()
    kafka_sent = exactly_once("notification.sent records (Kafka)", expected, counts.sent)
    failed = sum(counts.failed.values())
    refs: Counter[str] = Counter(ids.reference(sid) for sid in expected)
    mail, singles, digests = await asyncio.to_thread(mailbox_counts, e2e.MAILDIR)
    mailbox = exactly_once("notifications in the mailboxes (by reference)", refs, mail)
    began = time.monotonic()
    accepted, archived_sent, events = await archive_counts()
    scan_s = time.monotonic() - began
    archived = exactly_once("submission.accepted in the archive", expected, accepted)
    archived_notified = exactly_once("notification.sent in the archive", expected, archived_sent)
    tallies = (archived, archived_notified, kafka_sent, mailbox)
    state.results["exactly_once"] = {
        "tallies": [asdict(t) for t in tallies],
        "accepted_records": len(counts.accepted),
        "notified_in_digests": len(counts.digested),
        "digests": len(counts.digests),
        "repeat_records": counts.repeats,
        "failed_records": failed,
        "mailbox": {"single_emails": singles, "digests": digests},
        "archive_events": events,
        "archive_scan_s": round(scan_s, 1),
    }
    print(
        f"  notified: {len(counts.digested):,} in {len(counts.digests):,} digests, the rest "
        f"alone; mailbox: {singles:,} single e-mails, {digests:,} digests; archive: {events:,} "
        f"events read in {scan_s:.0f} s"
    )
    for tally in tallies:
        state.check(
            f"{tally.source}: each exactly once",
            tally.ok,
            f"{tally.expected:,} expected, {tally.missing} missing, {tally.twice} twice, "
            f"{tally.unexpected} unexpected {tally.examples or ''}".strip(),
            "0 missing, 0 twice",
        )
    state.check("notification.failed records", failed == 0, failed, "0")
    state.check("submission.rejected records", counts.rejected == 0, counts.rejected, "0")
    refused = sum(state.results.get("offer", {}).get("http_failures", {}).values())
    state.check(
        "HTTP door: every submission answered 202",
        refused == 0,
        state.results.get("offer", {}).get("http_failures"),
        "202 each",
    )


async def reads(state: Soak) -> None:
    """Time the archive API's reads at the archive's full size: one submission, list pages."""
    rng = random.Random(state.run)
    sample = [
        submission_id(state.run, rng.randrange(state.n), state.workload) for _ in range(READS_ONE)
    ]
    found = await api_reads(sample)
    state.results["api"] = found
    one, page = found["one_submission"], found["list_page"]
    state.check(
        "archive API p99, one submission",
        one["p99_ms"] <= ONE_P99_MS and not one["errors"],
        f"{one['p99_ms']} ms (p50 {one['p50_ms']} ms; by reference p99 "
        f"{one['by_reference']['p99_ms']} ms, by id {one['by_id']['p99_ms']} ms; n {one['n']}"
        f"{'; errors ' + str(one['errors']) if one['errors'] else ''})",
        f"≤ {ONE_P99_MS:.0f} ms, no error",
    )
    state.check(
        "archive API p99, a list page of 50",
        page["p99_ms"] <= PAGE_P99_MS and not page["errors"],
        f"{page['p99_ms']} ms (p50 {page['p50_ms']} ms, n {page['n']}"
        f"{'; errors ' + str(page['errors']) if page['errors'] else ''})",
        f"≤ {PAGE_P99_MS:.0f} ms, no error",
    )


async def consultation_report(state: Soak) -> None:
    """Time one consultation's report through the API."""
    found = await report_time(REPORTED)
    state.results["report"] = found
    print(
        f"  report of {REPORTED} ({found.get('total')} submissions): JSON {found['json_s']} s"
        f", HTML {found['html_s']} s"
    )


# --------------------------------------------------------------------------------------------
# bench/README.md


def table(results: Mapping[str, Any]) -> str:
    """Return the Markdown block of one run's results."""
    m = results["machine"]
    offer = results.get("offer", {})
    lines = [
        f"**`make soak`, {results['date']}** — {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gib']} GiB; Kafka {m['versions'].get('kafka')}, FerretDB "
        f"{m['versions'].get('ferretdb')}, Python {m['versions'].get('python')}; commit "
        f"{m['commit']}; load average {results['load_average_start'][0]} at the start, "
        f"{(results.get('load_average_end') or ['?'])[0]} at the end; "
        + (
            f"{results['total_s'] / 60:.0f} minutes in all."
            if "total_s" in results
            else "**unfinished: the checks recorded so far.**"
        ),
        "",
        f"{results.get('offered', results['n']):,} of {results['n']:,} submissions "
        f"({results['mix']['campaign']:.0%} campaign copies on 5 "
        f"draft laws, {results['mix']['http']:.0%} via HTTP), offered at up to "
        f"{results['target_rate']:g}/s with backpressure: **{offer.get('achieved_per_s')}/s "
        f"achieved** ({offer.get('seconds')} s, held off {offer.get('held_s')} s).",
        "",
        "| check | measured | target | met |",
        "|---|---|---|---|",
    ]
    for c in results.get("checks", []):
        measured = str(c["measured"]).replace("|", "\\|")
        lines.append(
            f"| {c['check']} | {measured} | {c['target']} | {'yes' if c['ok'] else '**no**'} |"
        )
    tool = results.get("rss", {}).get("soak tool")
    if tool:
        lines.append(f"| memory of the soak tool itself | peak {tool['peak_mb']} MB | — | — |")
    if "report" in results:
        r = results["report"]
        lines.append(
            f"| report of {r['ref']} ({r.get('total')} submissions) | JSON {r['json_s']} "
            f"s, HTML {r['html_s']} s | — | — |"
        )
    return "\n".join(lines)


def write_readme(state: Soak) -> None:
    """Replace the soak block of bench/README.md with this run's table."""
    text = README.read_text()
    block = f"{START}\n{table(state.results)}\n{END}"
    if START in text:
        text = re.sub(f"{re.escape(START)}.*?{re.escape(END)}", lambda _: block, text, flags=re.S)
    else:
        text = f"{text.rstrip()}\n\n{block}\n"
    README.write_text(text)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments and run the soak."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="submissions (default 200,000)")
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="offered per second at most (backpressure may hold off)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="results JSON (bench/soak.json)")
    parser.add_argument(
        "--readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the table into bench/README.md (default: full-size runs)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="stop offering after this long; the checks cover what was offered (a failed check "
        "says how many of --n that was)",
    )
    args = parser.parse_args(argv)
    readme = args.readme if args.readme is not None else args.n >= DEFAULT_N
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(asyncio.run(soak(args.n, args.rate, args.out, readme, args.minutes)))


if __name__ == "__main__":
    main()
