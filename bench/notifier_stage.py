"""Part 2b: raw aiokafka + raw aiosmtplib vs the notifier, on one pre-filled grouped topic.

Both contenders read the same N `submission.grouped` records with a fresh consumer group and
send one e-mail per record to the private stack's SMTP sink (deploy/local/smtp_sink.py) over the
same number of connections (`SmtpSettings.connections`), then commit:

- **raw**: an aiokafka consumer, `getmany(500)`, and for each record the e-mail the notifier
  would send, composed by the notifier's own `Composer` *before* the clock starts, sent with
  `aiosmtplib.SMTP.sendmail` by as many workers as connections; every send awaited, then the
  commit. No parsing, no ledger, no outcome events: the floor of consume → send → commit.
- **notifier**: the real notifier app (`services.notifier.app.build`), in-process through its
  FastAPI lifespan, digests off as the e2e runs it (`SADA_DIGEST__ENABLED=false`), with a fresh
  database (ledger claims before each send, outcomes after) and a fresh outcome topic.

Runs alternate (raw, notifier, raw, …). Besides e-mails/s (timed from the first commit to the
last, as parts 1 and 2), each run reports the CPU time per e-mail of the contender (this
process, over the same window) and of the sink and FerretDB (their whole run, from
`/proc/<pid>/stat`: the sink is idle otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiosmtplib
from aiokafka import AIOKafkaConsumer

from bench import kafka, mix
from bench.router_stage import settle_heap
from bench.stats import median, ratio
from services.campaigns.grouping import campaign_id
from services.notifier.app import build, composer_for
from services.notifier.messages import Email
from services.notifier.settings import (
    DigestSettings,
    NotifierMongoSettings,
    NotifierSettings,
    SmtpSettings,
)
from services.router import config as rules_config
from services.router.routing import routed_event
from shared import events
from shared.kafka import Outgoing
from shared.settings import KafkaSettings
from tests.notifier_support import as_grouped

MAX_RECORDS = KafkaSettings().max_records
BATCH_TIMEOUT_MS = KafkaSettings().batch_timeout_ms
CONNECTIONS = SmtpSettings().connections
CAMPAIGN_SHARE = 3
"""Of every 10 submissions, this many joined a campaign (the e-mail then says so)."""
ROUTER = events.Producer(service="router", version="bench")


def grouped_events(run: str, n: int, topic: str) -> list[Outgoing]:
    """Return `n` `submission.grouped` records: intake's validation, the router's decision,
    and the campaigns service's wrapper (`tests.notifier_support.as_grouped`); 30% in campaigns.
    """
    config = rules_config.load(
        rules_config.RULES_PATH,
        units_path=rules_config.UNITS_PATH,
        channels_path=rules_config.CHANNELS_PATH,
    )
    founders: dict[str, events.SubmissionRouted] = {}
    out: list[Outgoing] = []
    for index, record in enumerate(mix.accepted_events(run, n, f"{topic}.accepted")):
        accepted = events.SubmissionAccepted.model_validate_json(record.value)
        routed = routed_event(accepted, config, ROUTER)
        scope = routed.payload.decision.unit
        founder = founders.setdefault(scope, routed)
        campaign = None
        if index % 10 < CAMPAIGN_SHARE and founder is not routed:
            campaign = events.CampaignMembership(
                campaign_id=campaign_id(scope, founder.submission_id),
                size=2 + index // 10,
                first_reference=founder.reference,
                first_submission_id=founder.submission_id,
                similar_to=founder.reference,
                similarity=0.9,
            )
        grouped = as_grouped(routed, campaign)
        out.append(Outgoing(topic, grouped.submission_id, grouped.model_dump_json().encode()))
    return out


def settings_for(
    bootstrap: str, uri: str, smtp_port: int, *, source: str, target: str, group: str
) -> NotifierSettings:
    """Return the notifier's settings for one run: fresh group, database and outcome topic."""
    return NotifierSettings(
        grouped_topic=source,
        notifications_topic=target,
        group_id=group,
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        mongo=NotifierMongoSettings(uri=uri, database=f"bench_notifier_{group[-8:]}"),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port),
        digest=DigestSettings(enabled=False),
    )


def pre_render(records: Sequence[Outgoing], settings: NotifierSettings) -> dict[bytes, Email]:
    """Return the notifier's e-mail for every record, by record key: the raw loop's input."""
    composer = composer_for(settings)
    return {
        record.key.encode(): composer.compose(
            events.SubmissionGrouped.model_validate_json(record.value)
        )
        for record in records
    }


async def raw_consume_send(
    bootstrap: str, source: str, group: str, smtp_port: int, emails: dict[bytes, Email], n: int
) -> None:
    """Consume `n` records: getmany(500) → send each pre-rendered e-mail over CONNECTIONS
    sessions in parallel → await every reply → commit."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    sessions = [aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port) for _ in range(CONNECTIONS)]
    await consumer.start()
    try:
        await asyncio.gather(*(s.connect() for s in sessions))
        done = 0
        while done < n:
            batches = await consumer.getmany(timeout_ms=BATCH_TIMEOUT_MS, max_records=MAX_RECORDS)
            work: Iterator[Email] = (
                emails[record.key or b""] for records in batches.values() for record in records
            )
            sent = await asyncio.gather(*(drain(session, work) for session in sessions))
            if any(sent):
                await consumer.commit()
                done += sum(sent)
    finally:
        for session in sessions:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await session.quit()
        await consumer.stop()


async def drain(session: aiosmtplib.SMTP, work: Iterator[Email]) -> int:
    """Send e-mails from the shared `work` over `session` until none is left; return how many."""
    count = 0
    for email in work:
        await session.sendmail(email.sender, [email.recipient], email.data)
        count += 1
    return count


@contextlib.asynccontextmanager
async def notifier_running(settings: NotifierSettings) -> AsyncIterator[None]:
    """Run the real notifier app (its lifespan: broker, subscriber, ledger, mailer) in-process."""
    app = build(settings)
    async with app.router.lifespan_context(app):
        yield


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    """Return each process's CPU seconds so far."""
    from bench.end_to_end import cpu_seconds

    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def clear_mail(maildir: Path) -> None:
    """Empty the sink's Maildir (outside every measured window)."""
    for sub in ("new", "cur", "tmp"):
        folder = maildir / sub
        if folder.exists():
            for entry in folder.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


async def one_run(
    stack: dict[str, Any], source: str, n: int, contender: str, emails: dict[bytes, Email]
) -> dict[str, Any]:
    """Measure one contender once; return its rate and CPU per e-mail."""
    bootstrap, uri, smtp_port = stack["bootstrap"], stack["mongo"], stack["smtp_port"]
    tag = uuid.uuid4().hex[:8]
    target, group = f"bench.notifier.out-{tag}", f"bench-{contender}-{tag}"
    await kafka.create_topics(bootstrap, [target])
    clear_mail(stack["maildir"])
    before = cpu_of(stack["pids"])
    started = time.monotonic()
    watch = asyncio.create_task(kafka.watch_commits(bootstrap, group, n, within=600))
    if contender == "raw":
        await raw_consume_send(bootstrap, source, group, smtp_port, emails, n)
        progress = await watch
    else:
        settings = settings_for(
            bootstrap, uri, smtp_port, source=source, target=target, group=group
        )
        async with notifier_running(settings):
            progress = await watch
    after = cpu_of(stack["pids"])
    delivered = sum(1 for _ in (stack["maildir"] / "new").iterdir())
    return {
        "emails_per_s": round(progress.rate()),
        "cpu_ms_per_email": {
            contender: round(progress.cpu_us_per_record() / 1000, 3),
            **{name: round(1000 * (after[name] - before[name]) / n, 3) for name in after},
        },
        "delivered": delivered,
        "wall_s": round(time.monotonic() - started, 2),
        "group": group,
    }


async def prefill(bootstrap: str, n: int) -> tuple[str, list[Outgoing]]:
    """Create a private grouped topic and fill it with `n` records."""
    source = f"bench.notifier.in-{uuid.uuid4().hex[:8]}"
    await kafka.create_topics(bootstrap, [source])
    records = grouped_events(f"bench-n-{uuid.uuid4().hex[:6]}", n, source)
    await kafka.fill(bootstrap, records)
    return source, records


async def run(stack: dict[str, Any], *, n: int, runs: int) -> dict[str, Any]:
    """Pre-fill a grouped topic, render its e-mails, then alternate raw and notifier `runs` times.

    `stack`: bootstrap, mongo (URI), smtp_port, maildir, pids (the sink and FerretDB).
    """
    source, records = await prefill(stack["bootstrap"], n)
    settings = settings_for(
        stack["bootstrap"], stack["mongo"], stack["smtp_port"], source=source, target="", group=""
    )
    emails = pre_render(records, settings)
    described = mix.describe(records)
    described["email_bytes_mean"] = round(sum(len(e.data) for e in emails.values()) / len(emails))
    del records
    settle_heap()
    results: dict[str, list[dict[str, Any]]] = {"raw": [], "notifier": []}
    for index in range(runs):
        for contender in ("raw", "notifier"):
            outcome = await one_run(stack, source, n, contender, emails)
            results[contender].append(outcome)
            per = ", ".join(f"{k} {v:.2f}" for k, v in outcome["cpu_ms_per_email"].items())
            print(
                f"  notifier part, run {index + 1}/{runs}: {contender:8} "
                f"{outcome['emails_per_s']:>6,} e-mails/s; CPU ms/e-mail: {per}"
            )
    raw = median([r["emails_per_s"] for r in results["raw"]])
    stage = median([r["emails_per_s"] for r in results["notifier"]])
    cpu: dict[str, dict[str, float]] = {}
    for contender, outcomes in results.items():
        names = outcomes[0]["cpu_ms_per_email"]
        cpu[contender] = {
            name: round(median([o["cpu_ms_per_email"][name] for o in outcomes]), 3)
            for name in names
        }
    return {
        "n": n,
        "topic": source,
        "connections": CONNECTIONS,
        "mix": described,
        "runs": results,
        "median": {
            "raw_emails_per_s": raw,
            "notifier_emails_per_s": stage,
            "cpu_ms_per_email": cpu,
        },
        "ratio": round(ratio(stage, raw), 3),
    }


async def profile(stack: dict[str, Any], n: int, contender: str) -> Path:
    """Profile `contender` ("rawsmtp" or "notifier") under py-spy on `n` fresh records."""
    from bench.profile import py_spy

    source, records = await prefill(stack["bootstrap"], n)
    settings = settings_for(
        stack["bootstrap"], stack["mongo"], stack["smtp_port"], source=source, target="", group=""
    )
    emails = pre_render(records, settings)
    del records
    settle_heap()
    name = "raw" if contender == "rawsmtp" else "notifier"
    async with py_spy(contender) as out:
        result = await one_run(stack, source, n, name, emails)
    print(f"{contender}: {result['emails_per_s']:,} e-mails/s under py-spy")
    return out
