"""The private stack of every part, and parts 3 and 4: the five services offered fixed rates.

The stack is `deploy/local/infra.sh` under `.run/bench` on its own ports (like the e2e suite's,
but separate from it, since that suite stops brokers on purpose), so a developer's `make run`
and the shared test infrastructure neither disturb the figures nor are disturbed. The services
are started exactly as `tests/e2e/harness.py` starts them (`sada serve <service>`, one process
each), at the deployed log level (INFO).

Open loop: submission i is due at start + i/rate and is sent then, whether or not earlier ones
are done; its latency is measured from when it was *due*, so a stalled generator cannot hide
queueing (no coordinated omission). "Emailed" is the Kafka timestamp of its `notification.sent`
record (produced right after the SMTP server accepted the e-mail); "accepted" that of its
`submission.accepted` record. Records are matched by submission id (the key, or for routed
records, keyed by campaign scope, the id in the value), so nothing else on the topics is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import kafka, machine
from bench.stats import median, percentile
from deploy.local.topics import ensure_topics
from shared import ids, topics
from tests import workload
from tests.e2e import harness
from tests.infra import ROOT

RUN = ROOT / ".run" / "bench"
KAFKA_PORT = int(os.environ.get("SADA_BENCH_KAFKA_PORT", "29092"))
CONTROLLER_PORT = KAFKA_PORT + 1
MONGO_PORT = int(os.environ.get("SADA_BENCH_MONGO_PORT", "29017"))
SMTP_PORT = int(os.environ.get("SADA_BENCH_SMTP_PORT", "1027"))
"""The private stack's ports; the `SADA_BENCH_*_PORT` variables move it, so two worktrees on one
machine can each run a bench (the controller listens on the Kafka port + 1)."""
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
MONGO_URI = f"mongodb://127.0.0.1:{MONGO_PORT}/"
MAILDIR = RUN / "mail"
PORTS = {
    "intake": 28001,
    "router": 28002,
    "campaigns": 28005,
    "notifier": 28003,
    "archive": 28004,
}
HTTP_SHARE = 0.1
# The grouped topic stands for "routed": keyed by submission id (the routed topic is keyed by
# campaign scope), it is where the notifier reads, after the router and the campaigns service.
WATCHED = (topics.ACCEPTED, topics.GROUPED, topics.NOTIFICATIONS)
SENT_MARK = b'"event_type":"notification.sent"'
DIGEST_MARK = b'"digest_id"'
"""In a `notification.sent` record, `payload.digest` is set: the submission went out in a digest."""
INDIVIDUAL = {"SADA_DIGEST__ENABLED": "false"}
"""The notifier's environment for the latency steps: every submission e-mailed alone."""
DIGEST_WINDOW_SECONDS = 10
DIGESTS = {
    "SADA_DIGEST__ENABLED": "true",
    "SADA_DIGEST__WINDOW_SECONDS": str(DIGEST_WINDOW_SECONDS),
    "SADA_DIGEST__SETTLE_SECONDS": "1",
}
"""The notifier's environment with digests on: the default threshold (30 e-mails per mailbox in
10 minutes) and campaign folding, but a 10 s window instead of 5 minutes, so that a step's figures
are not the window's length (docs/digests.md)."""
DIGEST_RATES = (500,)
DIGEST_SECONDS = 20
"""A digest-mode step offers its rate this long: two windows."""
KEPT_UP_S = DIGEST_WINDOW_SECONDS + 10
"""A digest-mode step keeps up when every submission was notified and the p99 accepted→notified
is within the window + 10 s (issue 16)."""
SATURATED = 0.8
"""A step whose e-mailed rate falls below this share of the offered rate saturated the system."""
BLAST_SECONDS = 60
QUIET_FOR = 60
"""A step ends early when no submission was e-mailed for this long (a stuck pipeline); the
notifier reports a batch's outcomes together, so a large batch is silent while it is sent."""
DRAIN_LIMIT = 240
"""Longest wait for a step's submissions to be e-mailed before the figures are taken."""
"""The max-throughput blast is sized to about this many seconds of the best rate seen."""


def stack_env() -> dict[str, str]:
    """Return the environment that points infra.sh at the benchmark's private stack."""
    return {
        **os.environ,
        "SADA_RUN_DIR": str(RUN),
        "SADA_KAFKA_PORT": str(KAFKA_PORT),
        "SADA_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "SADA_MONGO_PORT": str(MONGO_PORT),
        "SADA_SMTP_PORT": str(SMTP_PORT),
        "SADA_FERRETDB_LOG_LEVEL": "error",
        # Plain listeners only: the TLS ones `make test` asks for belong to the shared instance.
        "SADA_KAFKA_SASL_PORT": "",
        "SADA_MONGO_TLS_PORT": "",
        "SADA_SMTP_STARTTLS_PORT": "",
    }


def infra(action: str, *, check: bool = True) -> None:
    """Run `infra.sh ACTION all` on the private stack."""
    done = subprocess.run([harness.INFRA, action, "all"], env=stack_env(), capture_output=True)
    if check and done.returncode != 0:
        msg = f"infra.sh {action} failed ({done.returncode}): {done.stderr.decode()[-2000:]}"
        raise RuntimeError(msg)


def service_env(port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return one service's environment: the private stack, its port, deployed log level."""
    return {
        **os.environ,
        "SADA_ENVIRONMENT": "local",
        "SADA_HTTP_PORT": str(port),
        "SADA_LOG_JSON": "true",
        "SADA_LOG_LEVEL": "INFO",
        "SADA_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
        "SADA_MONGO__URI": MONGO_URI,
        "SADA_SMTP__HOST": "127.0.0.1",
        "SADA_SMTP__PORT": str(SMTP_PORT),
        "SADA_INTAKE_RATE_LIMIT": "10000000/minute",
        **(extra or {}),
    }


@dataclass
class BenchService(harness.Service):
    """A `harness.Service` started with the benchmark stack's environment instead."""

    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        """Start `sada serve <name>`, appending its output to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [harness.SADA, "serve", self.name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def archive_ready() -> bool:
    """Return True when the archive service exists (`services.archive.app.build`)."""
    try:
        from services.archive import app
    except ImportError:
        return False
    return hasattr(app, "build") and hasattr(app, "main")


def cluster(notifier_env: dict[str, str]) -> harness.Cluster:
    """Return one process per service (the archive only once it exists)."""
    names = ["intake", "router", "campaigns", "notifier"]
    names += ["archive"] if archive_ready() else []
    return harness.Cluster(
        [
            BenchService(
                name,
                PORTS[name],
                RUN / "logs" / f"{name}.log",
                env=service_env(PORTS[name], notifier_env if name == "notifier" else None),
            )
            for name in names
        ]
    )


async def restart_notifier(services: harness.Cluster, env: dict[str, str]) -> None:
    """Stop the notifier (SIGTERM: it ends its work) and start it again with `env` added."""
    notifier = services.first("notifier")
    assert isinstance(notifier, BenchService)
    notifier.kill(signal.SIGTERM)
    notifier.env = service_env(notifier.port, env)
    notifier.start()
    await notifier.wait_healthy()


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time `pid` has used so far, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes(services: harness.Cluster) -> dict[str, int]:
    """Return the pid of every process of the installation, the generator included."""
    found = {s.name: s.process.pid for s in services if s.process}
    for name in ("kafka", "ferretdb", "smtp"):
        pid_file = RUN / "pids" / f"{name}.pid"
        if pid_file.exists():
            found[name if name != "smtp" else "smtp sink"] = int(pid_file.read_text())
    found["generator"] = os.getpid()
    return found


def stack_processes() -> dict[str, int]:
    """Return the pids of the private stack's FerretDB and SMTP sink."""
    found = {}
    for name, label in (("ferretdb", "ferretdb"), ("smtp", "smtp sink")):
        pid_file = RUN / "pids" / f"{name}.pid"
        if pid_file.exists():
            found[label] = int(pid_file.read_text())
    return found


def stack() -> dict[str, Any]:
    """Return where the private stack listens, its Maildir and its sink's and FerretDB's pids."""
    return {
        "bootstrap": BOOTSTRAP,
        "mongo": MONGO_URI,
        "smtp_port": SMTP_PORT,
        "maildir": MAILDIR,
        "pids": stack_processes(),
    }


def peak_rss_mb(pid: int) -> dict[str, float]:
    """Return VmHWM (peak) and VmRSS (now) of `pid` in MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return {"peak_mb": round(fields["VmHWM"], 1), "now_mb": round(fields["VmRSS"], 1)}


@dataclass
class Seen:
    """When each submission reached each stage (Kafka record timestamps, seconds)."""

    accepted: dict[str, float] = field(default_factory=dict)
    routed: dict[str, float] = field(default_factory=dict)
    emailed: dict[str, float] = field(default_factory=dict)
    digested: set[str] = field(default_factory=set)


class Collector(kafka.TailReader):
    """Reads the accepted, routed and notifications topics from their ends, by key."""

    def __init__(self) -> None:
        super().__init__(BOOTSTRAP, WATCHED, kafka.PARTITIONS)
        self.seen = Seen()

    async def _read(self) -> None:
        where = {
            topics.ACCEPTED: self.seen.accepted,
            topics.GROUPED: self.seen.routed,
            topics.NOTIFICATIONS: self.seen.emailed,
        }
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                into = where[tp.topic]
                for record in records:
                    if tp.topic == topics.NOTIFICATIONS and SENT_MARK not in record.value:
                        continue
                    key = record.key.decode()
                    if key not in into:
                        into[key] = record.timestamp / 1000
                        if tp.topic == topics.NOTIFICATIONS and DIGEST_MARK in record.value:
                            self.seen.digested.add(key)


def submission_id(item: workload.Item) -> str:
    """Return the id intake gives `item` (channel + channel_ref; both plain ASCII here)."""
    return ids.submission_id(item.raw["channel"], item.raw["channel_ref"], "")


class Generator:
    """Sends submissions through the Kafka door (producer) and the HTTP door (httpx)."""

    def __init__(self) -> None:
        self._producer = kafka.producer(BOOTSTRAP)
        self._http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{PORTS['intake']}",
            timeout=30.0,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        )
        self.http_failures = 0

    async def start(self) -> None:
        """Connect the producer."""
        await self._producer.start()

    async def stop(self) -> None:
        """Close both doors."""
        await self._producer.stop()
        await self._http.aclose()

    async def _post(self, item: workload.Item) -> None:
        headers = {
            "Authorization": f"Bearer local-{item.raw['channel']}-key",
            "Content-Type": "application/json",
        }
        try:
            answer = await self._http.post(
                "/v1/submissions", content=item.encoded(), headers=headers
            )
            if answer.status_code != 202:
                self.http_failures += 1
        except httpx.HTTPError:
            self.http_failures += 1

    async def offer(self, items: Sequence[workload.Item], rate: float | None) -> dict[str, Any]:
        """Send `items` at `rate`/s (None: at once); return when each was due, time taken."""
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        wall = time.time() + (start - loop.time())
        due_at: dict[str, float] = {}
        acks: list[asyncio.Future[Any]] = []
        posts: list[asyncio.Task[None]] = []
        for i, item in enumerate(items):
            due = start + (i / rate if rate else 0.0)
            delay = due - loop.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
            due_at[submission_id(item)] = wall + (due - start) if rate else time.time()
            if item.door == "http":
                posts.append(asyncio.create_task(self._post(item)))
            else:
                key = item.raw["channel_ref"].encode()
                acks.append(await self._producer.send(topics.SUBMISSIONS, item.encoded(), key=key))
        sent_s = loop.time() - start
        await asyncio.gather(*acks)
        await asyncio.gather(*posts)
        return {"due_at": due_at, "sent_s": sent_s}


async def wait_done(seen: Seen, expected: Sequence[str], *, quiet_for: float, limit: float) -> None:
    """Wait until every expected submission was e-mailed, or nothing moved for `quiet_for` s."""
    deadline = time.monotonic() + limit
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        done = sum(1 for sid in expected if sid in seen.emailed)
        if done == len(expected):
            return
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > quiet_for:
            return
        await asyncio.sleep(0.25)


def summarise(
    due_at: dict[str, float], seen: Seen, sent_s: float, rate: float | None
) -> dict[str, Any]:
    """Return the figures of one offered batch."""
    expected = list(due_at)
    emailed = [sid for sid in expected if sid in seen.emailed]
    e2e = [seen.emailed[sid] - due_at[sid] for sid in emailed]
    acc = [seen.emailed[sid] - seen.accepted[sid] for sid in emailed if sid in seen.accepted]
    first = min(due_at.values())
    last_email = max((seen.emailed[sid] for sid in emailed), default=first)

    def span_rate(stage: dict[str, float]) -> float:
        times = sorted(stage[sid] for sid in expected if sid in stage)
        if len(times) < 2 or times[-1] <= times[0]:
            return float("nan")
        return round((len(times) - 1) / (times[-1] - times[0]), 1)

    def stage_p50(start: dict[str, float], end: dict[str, float]) -> float:
        return round(
            percentile([end[k] - start[k] for k in expected if k in start and k in end], 50), 4
        )

    return {
        "offered_per_s": rate,
        "count": len(expected),
        "submit_to_accepted_p50_s": stage_p50(due_at, seen.accepted),
        "accepted_to_routed_p50_s": stage_p50(seen.accepted, seen.routed),
        "routed_to_emailed_p50_s": stage_p50(seen.routed, seen.emailed),
        "sent_per_s": round(len(expected) / sent_s, 1) if sent_s > 0 else None,
        "emailed_per_s": round(len(emailed) / (last_email - first), 1) if emailed else 0.0,
        "accepted_per_s": span_rate(seen.accepted),
        "routed_per_s": span_rate(seen.routed),
        "emailed_span_per_s": span_rate(seen.emailed),
        "drain_s": round(last_email - first, 2),
        "submit_to_emailed_p50_s": round(percentile(e2e, 50), 4),
        "submit_to_emailed_p99_s": round(percentile(e2e, 99), 4),
        "accepted_to_emailed_p50_s": round(percentile(acc, 50), 4),
        "accepted_to_emailed_p99_s": round(percentile(acc, 99), 4),
        "missing": len(expected) - len(emailed),
        "digested": sum(1 for sid in emailed if sid in seen.digested),
    }


def clear_mail() -> None:
    """Empty the private sink's Maildir between steps (outside every measured window)."""
    for sub in ("new", "cur"):
        folder = MAILDIR / sub
        if folder.exists():
            for entry in os.scandir(folder):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


async def step(
    gen: Generator,
    col: Collector,
    items: Sequence[workload.Item],
    rate: float | None,
    pids: dict[str, int],
    idle: dict[str, float],
) -> dict[str, Any]:
    """Offer `items` at `rate`, wait for them to be e-mailed, return the figures.

    Also returns the CPU time each process spent per submission during the step, less what it
    spends idle (`idle`, cores): what one more submission costs the machine, process by process.
    """
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    offered = await gen.offer(items, rate)
    due_at = offered["due_at"]
    await wait_done(col.seen, list(due_at), quiet_for=QUIET_FOR, limit=DRAIN_LIMIT)
    figures = summarise(due_at, col.seen, offered["sent_s"], rate)
    elapsed = time.monotonic() - started
    figures["cpu_ms_per_submission"] = {
        name: round(
            max(0.0, cpu_seconds(pid) - before[name] - idle.get(name, 0.0) * elapsed)
            * 1000
            / len(items),
            2,
        )
        for name, pid in pids.items()
    }
    return figures


async def idle_cpu(pids: dict[str, int], seconds: float = 10.0) -> dict[str, float]:
    """Return each process's CPU use (cores) with no load: polling, timers, housekeeping."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(seconds)
    return {
        name: round((cpu_seconds(pid) - before[name]) / seconds, 4) for name, pid in pids.items()
    }


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the median of every numeric figure (and of each CPU share) across runs."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and v is not None]
    found: dict[str, Any] = {
        k: round(median([r[k] for r in runs if r.get(k) is not None]), 4) for k in keys
    }
    cpu = [r["cpu_ms_per_submission"] for r in runs if "cpu_ms_per_submission" in r]
    if cpu:
        found["cpu_ms_per_submission"] = {
            name: round(median([c[name] for c in cpu if name in c]), 2) for name in cpu[0]
        }
    return found


async def start_stack() -> None:
    """Start the private stack afresh (its own data only) and create the topics."""
    print("starting the private stack (.run/bench: Kafka, FerretDB, SMTP sink) ...")
    infra("reset")
    infra("up")
    await ensure_topics(BOOTSTRAP, kafka.PARTITIONS, single_node=True)
    await kafka.ready_for_groups(BOOTSTRAP)


def stop_stack() -> None:
    """Stop the private stack (its data stays until the next run resets it)."""
    infra("down", check=False)


def report_step(label: str, figures: dict[str, Any]) -> None:
    """Print one step's figures as it ends."""
    digested = f", {figures['digested']:,} in digests" if figures.get("digested") else ""
    print(
        f"  {label}: sent {figures['sent_per_s']}/s, notified {figures['emailed_per_s']}/s, "
        f"accepted→notified p50 {figures['accepted_to_emailed_p50_s']:.3f} s, p99 "
        f"{figures['accepted_to_emailed_p99_s']:.3f} s, missing {figures['missing']}{digested}"
    )


async def blast(
    gen: Generator,
    col: Collector,
    n: int,
    *,
    runs: int,
    name: str,
    pids: dict[str, int],
    idle: dict[str, float],
) -> list[dict[str, Any]]:
    """Send `n` submissions at once into the Kafka door, `runs` times; return each run's figures."""
    found = []
    for index in range(runs):
        clear_mail()
        items = workload.build(f"{name}-{index}", n, http_share=0.0, resubmit_share=0.0)
        figures = await step(gen, col, items, None, pids, idle)
        found.append(figures)
        report_step(f"{name} run {index + 1}/{runs}: {n:,} blasted", figures)
        print(
            f"    stages: intake {figures['accepted_per_s']}/s, router {figures['routed_per_s']}/s,"
            f" notifier {figures['emailed_span_per_s']}/s"
        )
    return found


async def run(*, runs: int, quick: bool) -> dict[str, Any]:
    """Start the private stack and services; measure individual mode, then digests on, and RSS.

    Individual mode (`SADA_DIGEST__ENABLED=false`): each rate `runs` times, then the blast.
    Then the notifier is restarted with digests on (a 10 s window) and offered 500/s for
    `DIGEST_SECONDS`, `runs` times, then the blast again.
    """
    rates = [25, 100, 150, 200] if quick else [25, 50, 100, 150, 200, 500, 1000]
    seconds = 5 if quick else 15
    digest_seconds = 10 if quick else DIGEST_SECONDS
    blast_cap = 3_000 if quick else 20_000
    services = cluster(INDIVIDUAL)
    services_started = time.monotonic()
    await services.start()
    print(f"  services healthy in {time.monotonic() - services_started:.1f} s: "
          + ", ".join(s.name for s in services))  # fmt: skip
    gen, col = Generator(), Collector()
    await gen.start()
    await col.start()
    results: dict[str, Any] = {}
    try:
        tag = uuid.uuid4().hex[:6]
        warm = workload.build(f"warm-{tag}", 300, http_share=HTTP_SHARE, resubmit_share=0.0)
        pids = processes(services)
        await step(gen, col, warm, 100, pids, {})
        await asyncio.sleep(5)  # let the archive finish the warm-up's records
        idle = await idle_cpu(pids)
        steps: dict[int, list[dict[str, Any]]] = {rate: [] for rate in rates}
        for index in range(runs):
            for rate in rates:
                clear_mail()
                items = workload.build(
                    f"r{rate}-{index}-{tag}", rate * seconds, http_share=HTTP_SHARE,
                    resubmit_share=0.0, seed=index,
                )  # fmt: skip
                figures = await step(gen, col, items, rate, pids, idle)
                steps[rate].append(figures)
                report_step(f"individual run {index + 1}/{runs} offered {rate:>5}/s", figures)
                if figures["emailed_per_s"] < SATURATED * rate:
                    print(f"  saturated at {rate}/s: higher rates skipped in this run")
                    break
        best = max((r["emailed_per_s"] for runs_ in steps.values() for r in runs_), default=100)
        n = max(2_000, min(blast_cap, int(BLAST_SECONDS * best)))
        max_runs = await blast(gen, col, n, runs=runs, name=f"max-{tag}", pids=pids, idle=idle)
        results["e2e"] = {
            "layout": ", ".join(f"1 {s.name}" for s in services) + " process(es)",
            "http_share": HTTP_SHARE,
            "seconds": seconds,
            "notifier_env": INDIVIDUAL,
            "idle_cpu_cores": idle,
            "rates": [
                {"offered_per_s": rate, "runs": steps[rate], "median": medians(steps[rate])}
                for rate in rates
                if steps[rate]
            ],
            "skipped_rates": [rate for rate in rates if not steps[rate]],
            "max": {"n": n, "runs": max_runs, "median": medians(max_runs)},
        }
        results["digests"] = await digest_mode(
            services, gen, col, runs=runs, seconds=digest_seconds, blast_cap=blast_cap, tag=tag
        )
        results["e2e"]["http_failures"] = gen.http_failures
        results["e2e"]["load_average"] = machine.load_average()
        results["rss"] = {s.name: peak_rss_mb(s.process.pid) for s in services if s.process}
    finally:
        await col.stop()
        await gen.stop()
        services.stop()
    return results


async def digest_mode(
    services: harness.Cluster,
    gen: Generator,
    col: Collector,
    *,
    runs: int,
    seconds: int,
    blast_cap: int,
    tag: str,
) -> dict[str, Any]:
    """Restart the notifier with digests on; offer `DIGEST_RATES`, then blast; return figures.

    A warm-up of 600 submissions at 100/s first puts the mailboxes in digest mode (the default
    threshold, 30 e-mails in 10 minutes), so the steps measure a surge, not its first minute.
    The blast is sized like the individual one: about a minute of the best rate notified here.
    """
    print(f"  digests on: notifier restarted with {DIGESTS}")
    await restart_notifier(services, DIGESTS)
    pids = processes(services)
    warm = workload.build(f"dwarm-{tag}", 600, http_share=HTTP_SHARE, resubmit_share=0.0)
    await step(gen, col, warm, 100, pids, {})
    await asyncio.sleep(5)
    idle = await idle_cpu(pids)
    steps: dict[int, list[dict[str, Any]]] = {rate: [] for rate in DIGEST_RATES}
    for index in range(runs):
        for rate in DIGEST_RATES:
            clear_mail()
            items = workload.build(
                f"d{rate}-{index}-{tag}", rate * seconds, http_share=HTTP_SHARE,
                resubmit_share=0.0, seed=index,
            )  # fmt: skip
            figures = await step(gen, col, items, rate, pids, idle)
            figures["kept_up"] = kept_up(figures, rate)
            steps[rate].append(figures)
            report_step(f"digests run {index + 1}/{runs} offered {rate:>5}/s", figures)
    best = max((r["emailed_per_s"] for runs_ in steps.values() for r in runs_), default=100)
    n = max(2_000, min(blast_cap, int(BLAST_SECONDS * best)))
    max_runs = await blast(gen, col, n, runs=runs, name=f"dmax-{tag}", pids=pids, idle=idle)
    return {
        "notifier_env": DIGESTS,
        "window_s": DIGEST_WINDOW_SECONDS,
        "kept_up_within_s": KEPT_UP_S,
        "seconds": seconds,
        "idle_cpu_cores": idle,
        "rates": [
            {
                "offered_per_s": rate,
                "runs": steps[rate],
                "median": medians(steps[rate]),
                "kept_up": sum(1 for r in steps[rate] if r["kept_up"]),
            }
            for rate in DIGEST_RATES
        ],
        "max": {"n": n, "runs": max_runs, "median": medians(max_runs)},
    }


def kept_up(figures: dict[str, Any], rate: float) -> bool:
    """Return True when a fixed-rate step was sent at its rate and notified in time, all of it."""
    return bool(
        figures["missing"] == 0
        and (figures["sent_per_s"] or 0) >= 0.95 * rate
        and figures["accepted_to_emailed_p99_s"] <= KEPT_UP_S
    )
