"""End to end, on real processes: nothing accepted is lost, each unit gets one e-mail per
submission, and faults in every part of the system are survived.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from shared import ids, topics
from tests.e2e import corpus, harness
from tests.e2e.driver import (
    Archive,
    mailbox_index,
    prove,
    send,
    send_kafka,
    submission_id,
    wait_mailed,
)
from tests.e2e.harness import Cluster
from tests.e2e.results import Results, Row
from tests.workload import MAILBOX, VOC, Item, build

Fault = Callable[[Cluster], Awaitable[float]]


def _run_id() -> str:
    return f"E2E-{uuid.uuid4().hex[:8]}"


async def _send_paced(items: list[Item], seconds: float, chunks: int = 10) -> None:
    """Send `items` in `chunks` spread over `seconds`, so a fault lands mid-stream."""
    size = max(1, len(items) // chunks)
    for start in range(0, len(items), size):
        await send(items[start : start + size])
        await asyncio.sleep(seconds / chunks)


def _write_smtp_control(control: dict[str, Any]) -> None:
    temporary = harness.SMTP_CONTROL.with_suffix(".tmp")
    temporary.write_text(json.dumps(control), encoding="utf-8")
    temporary.replace(harness.SMTP_CONTROL)  # atomic: the sink never reads half a file


def _verify_all_chains() -> subprocess.CompletedProcess[str]:
    env = harness.service_env("archive", 0)
    return subprocess.run(  # the auditors' command, on the whole e2e archive and its witness
        [harness.SADA, "audit", "verify", "--checkpoints", str(harness.WITNESS)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_mixed_workload_reaches_each_unit_once_and_is_archived_with_valid_chains(
    cluster: Cluster, results: Results, started_at: datetime
) -> None:
    items = build(_run_id(), 2000)
    began = time.monotonic()
    await send(items)
    await Archive().wait_terminal({submission_id(i) for i in items}, started_at, within=240)
    elapsed = time.monotonic() - began
    proof = await prove(items, started_at)
    proof.assert_clean()
    verdict = _verify_all_chains()
    assert verdict.returncode == 0, verdict.stdout[-2000:] + verdict.stderr[-2000:]
    assert cluster.all_alive()
    resubmitted = sum(i.resubmission for i in items)
    results.add(
        Row(
            "no fault: mixed workload, both doors",
            proof.submissions,
            0,
            len(proof.lost),
            proof.duplicate_emails,
            None,
            f"{len(items)} sends incl. {resubmitted} resubmissions; "
            f"{elapsed:.0f} s to the last e-mail",
        )
    )


async def test_hostile_inputs_are_rejected_or_neutralised_and_good_traffic_still_flows(
    cluster: Cluster, results: Results, started_at: datetime
) -> None:
    bad = corpus.build(_run_id())
    assert len(bad) >= 200
    good = build(_run_id(), 200, http_share=0.5, resubmit_share=0)
    kafka_bad = [c for c in bad if c.door == "kafka"]
    http_bad = [c for c in bad if c.door == "http"]
    async with httpx.AsyncClient(timeout=30.0) as client:
        sending = asyncio.gather(
            send(good),
            send_kafka([c.body for c in kafka_bad]),
            corpus.post_all(client, http_bad),
        )
        _, _, codes = await sending
    wrong = [(c.name, code) for c, code in zip(http_bad, codes, strict=True) if code != c.status]
    assert not wrong, wrong[:10]
    normalised = {c.accepted_id for c in bad if c.accepted_id}
    wanted = {submission_id(i) for i in good} | normalised
    await Archive().wait_terminal(wanted, started_at, within=180)
    proof = await prove(good, started_at)
    proof.assert_clean()
    rejected = await corpus.archived_rejections(started_at)
    missing = [c.name for c in kafka_bad + http_bad if c.expect_code and not c.found_in(rejected)]
    assert not missing, missing[:10]
    snapshots = await Archive().submissions(started_at)
    references = {snapshots[sid]["reference"] for sid in normalised}
    assert {snapshots[sid]["status"] for sid in normalised} == {"notified"}
    mails = [m for ref, ms in mailbox_index().items() if ref in references for m in ms]
    assert len(mails) == len(references)
    assert all(m.bcc is None and "\n" not in m.subject for m in mails)
    assert cluster.all_alive(), "a hostile input restarted a service"
    results.add(
        Row(
            "hostile inputs mixed with good traffic, both doors",
            proof.submissions,
            len(bad),
            len(proof.lost),
            proof.duplicate_emails,
            None,
            "each rejected with its specific reason code or safely normalised; no restarts",
        )
    )


async def _kill_each_service(cluster: Cluster) -> float:
    """SIGKILL intake, a router, a campaigns, a notifier and the archive in turn; restart each.

    Each is restarted 3 s after its kill and the next kill follows 2 s later, so restarts
    overlap the next outage; returns the slowest time from a restart to a healthy service.
    """
    targets = [("intake", 0), ("router", 1), ("campaigns", 1), ("notifier", 1), ("archive", 0)]
    restarts: list[tuple[harness.Service, float]] = []
    for name, index in targets:
        service = [s for s in cluster if s.name == name][index]
        service.kill(signal.SIGKILL)
        await asyncio.sleep(3)
        service.start()
        restarts.append((service, time.monotonic()))
        await asyncio.sleep(2)
    slowest = 0.0
    for service, restarted in restarts:
        await service.wait_healthy()
        slowest = max(slowest, time.monotonic() - restarted)
    return slowest


def _infra_outage(component: str, seconds: float) -> Fault:
    async def fault(_cluster: Cluster) -> float:
        await asyncio.to_thread(harness.infra, "down", component)
        await asyncio.sleep(seconds)
        return await asyncio.to_thread(harness.infra, "up", component)

    return fault


def _smtp_mode(control: dict[str, Any], seconds: float) -> Fault:
    async def fault(_cluster: Cluster) -> float:
        _write_smtp_control(control)
        await asyncio.sleep(seconds)
        _write_smtp_control({})
        return 0.0

    return fault


async def _failed_notifications_counted(cluster: Cluster) -> float:
    total = 0.0
    async with httpx.AsyncClient() as client:
        for service in (s for s in cluster if s.name == "notifier"):
            for line in (await client.get(f"{service.url}/metrics")).text.splitlines():
                if line.startswith("sada_notifier_emails_total{") and 'outcome="failed"' in line:
                    total += float(line.rsplit(" ", 1)[1])
    return total


FAULTS: dict[str, tuple[Fault, bool]] = {
    # name: (fault, duplicates allowed: only the notifier's documented crash window)
    "SIGKILL intake, router#2, campaigns#2, notifier#2, archive in turn": (
        _kill_each_service,
        True,
    ),
    "Kafka broker stopped and restarted": (_infra_outage("kafka", 5), False),
    "FerretDB stopped for 20 s": (_infra_outage("ferretdb", 20), False),
    "SMTP sink stopped for 20 s": (_infra_outage("smtp", 20), False),
    "SMTP answering 4xx for 15 s": (_smtp_mode({"tempfail": True}, 15), False),
}


@pytest.mark.parametrize("scenario", list(FAULTS))
async def test_a_fault_during_the_workload_loses_nothing(
    scenario: str, cluster: Cluster, results: Results, started_at: datetime
) -> None:
    fault, duplicates_allowed = FAULTS[scenario]
    items = build(_run_id(), 200, resubmit_share=0.02)
    sending = asyncio.create_task(_send_paced(items, seconds=6))
    await asyncio.sleep(2)
    await fault(cluster)
    cleared = time.monotonic()
    await sending
    await Archive().wait_terminal({submission_id(i) for i in items}, started_at, within=300)
    recovery = time.monotonic() - cleared
    proof = await prove(items, started_at)
    proof.assert_clean(allow_duplicates=duplicates_allowed)
    assert cluster.all_alive()
    note = "duplicates keep their Message-ID" if proof.duplicate_emails else ""
    results.add(
        Row(scenario, proof.submissions, 0, len(proof.lost), proof.duplicate_emails, recovery, note)
    )


async def test_smtp_refusing_one_mailbox_fails_only_its_notifications(
    cluster: Cluster, results: Results, started_at: datetime
) -> None:
    refused = MAILBOX[VOC]
    _write_smtp_control({"reject_rcpt": [refused]})
    try:
        items = build(_run_id(), 200, resubmit_share=0)
        await send(items)
        wanted = {submission_id(i) for i in items}
        await Archive().wait_terminal(wanted, started_at, within=180, mailed=False)
    finally:
        _write_smtp_control({})
    proof = await prove(items, started_at, failing_mailboxes=frozenset({refused}))
    proof.assert_clean()
    voc = sum(i.unit == VOC for i in items)
    assert proof.failed_notifications == voc > 0
    snapshots = await Archive().submissions(started_at)
    statuses = {snapshots[submission_id(i)]["status"] for i in items if i.unit == VOC}
    assert statuses == {"notification_failed"}
    assert await _failed_notifications_counted(cluster) >= 1  # what the alert rule watches
    results.add(
        Row(
            "SMTP 5xx for one unit's mailbox",
            proof.submissions,
            0,
            len(proof.lost),
            0,
            None,
            f"{voc} notification.failed for {refused}, archived; the other unit unaffected",
        )
    )


FULL_MAILBOX_SECONDS = 45.0  # longer than the e2e notifiers' retry budget (harness)


async def test_one_full_mailbox_past_the_retry_budget_never_holds_the_other_unit(
    cluster: Cluster, results: Results, started_at: datetime
) -> None:
    full = MAILBOX[VOC]
    assert FULL_MAILBOX_SECONDS > harness.DEFERRAL_BUDGET_SECONDS
    items = build(_run_id(), 200, resubmit_share=0)
    others = {submission_id(i) for i in items if i.unit != VOC}
    voc = {submission_id(i) for i in items if i.unit == VOC}
    assert others
    assert voc
    fault = asyncio.ensure_future(_smtp_mode({"full_rcpt": [full]}, FULL_MAILBOX_SECONDS)(cluster))
    try:
        await asyncio.sleep(0.5)  # the sink sees the control file before the first e-mail
        began = time.monotonic()
        await send(items)
        await wait_mailed(others, within=FULL_MAILBOX_SECONDS)
        others_took = time.monotonic() - began
        # Every Legislations Office e-mail is out while the VoC mailbox is still full.
        assert not fault.done()
        references = {ids.reference(s) for s in voc}
        assert not references & set(mailbox_index())
    finally:
        await fault
    cleared = time.monotonic()
    await Archive().wait_terminal(voc | others, started_at, within=180)
    recovery = time.monotonic() - cleared
    proof = await prove(items, started_at)
    proof.assert_clean()
    archived = await Archive().events(started_at)
    announced = Counter(
        e["submission_id"] for e in archived if e["event_type"] == "notification.deferred"
    )
    # Refused past the budget: announced once. One first refused late in the fault may be
    # delivered by a retry before its own budget runs out, and is rightly never announced.
    assert announced
    assert set(announced) <= voc
    assert set(announced.values()) == {1}
    assert cluster.all_alive()
    results.add(
        Row(
            "one mailbox answering 452 past the retry budget, the other unit served",
            proof.submissions,
            0,
            len(proof.lost),
            proof.duplicate_emails,
            recovery,
            f"{len(others)} Legislations Office e-mails out {others_took:.0f} s after sending, "
            f"while {full} was full "
            f"({FULL_MAILBOX_SECONDS:.0f} s, budget {harness.DEFERRAL_BUDGET_SECONDS} s); "
            f"{len(voc)} parked ({len(announced)} past the budget: notification.deferred "
            "archived), each delivered once after",
        )
    )


async def test_a_rolling_restart_of_the_notifiers_under_load_loses_and_repeats_nothing(
    cluster: Cluster, results: Results, started_at: datetime
) -> None:
    items = build(_run_id(), 300, resubmit_share=0.02)
    sending = asyncio.create_task(_send_paced(items, seconds=20, chunks=20))
    await asyncio.sleep(2)
    stops: list[float] = []
    for service in [s for s in cluster if s.name == "notifier"]:
        began = time.monotonic()
        # Graceful: the batch in hand finishes, the ledger flushes; `kill` waits for the exit.
        await asyncio.to_thread(service.kill, signal.SIGTERM)
        stops.append(time.monotonic() - began)
        service.start()
        await service.wait_healthy()
    restarted = time.monotonic()
    await sending
    await Archive().wait_terminal({submission_id(i) for i in items}, started_at, within=300)
    recovery = time.monotonic() - restarted
    proof = await prove(items, started_at)
    proof.assert_clean(allow_duplicates=False)
    assert cluster.all_alive()
    results.add(
        Row(
            "rolling restart of the notifiers (SIGTERM, one at a time) under load",
            proof.submissions,
            0,
            len(proof.lost),
            proof.duplicate_emails,
            recovery,
            f"each stopped gracefully (slowest exit {max(stops):.1f} s after SIGTERM), "
            "restarted and healthy before the next",
        )
    )


async def _produce(topic: str, value: bytes) -> tuple[str, int, int]:
    """Produce one raw record; return its position (topic, partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=harness.BOOTSTRAP, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    return sent.topic, sent.partition, sent.offset


async def _dead_letters() -> list[dict[str, Any]]:
    """Return every event on the dead-letter topic, read from the start (no consumer group)."""
    consumer = AIOKafkaConsumer(
        topics.DEADLETTER,
        bootstrap_servers=harness.BOOTSTRAP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):  # without a group, every partition is assigned at once
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
        partitions = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        letters: list[dict[str, Any]] = []
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                letters.extend(json.loads(r.value or b"{}") for r in records)
        return letters
    finally:
        await consumer.stop()


def _services_from(letters: list[dict[str, Any]], position: tuple[str, int, int]) -> list[str]:
    """Return the service of each dead letter about the record at `position`, sorted."""
    return sorted(
        letter.get("payload", {}).get("service", "")
        for letter in letters
        if (source := letter.get("payload", {}).get("source", {}))
        and (source.get("topic"), source.get("partition"), source.get("offset")) == position
    )


async def _metric_total(cluster: Cluster, metric: str) -> float:
    """Sum `metric` over every service process's /metrics."""
    total = 0.0
    async with httpx.AsyncClient() as client:
        for service in cluster:
            for line in (await client.get(f"{service.url}/metrics")).text.splitlines():
                if line.startswith(f"{metric}{{"):
                    total += float(line.rsplit(" ", 1)[1])
    return total


POISONED: dict[str, tuple[str, str, bytes, list[str]]] = {
    # row: (component down for 90 s, poisoned topic, poison record, services that read it)
    "poison record during a 90 s FerretDB outage": (
        "ferretdb",
        topics.NOTIFICATIONS,  # only the archive reads it
        b'{"event_type": "notification.sent"}',
        ["archive"],
    ),
    "poison record during a 90 s SMTP outage": (
        "smtp",
        topics.GROUPED,  # the notifier (held by the outage) and the archive read it
        b'{"event_type": "submission.grouped"}',
        ["archive", "notifier"],
    ),
}


@pytest.mark.parametrize("scenario", list(POISONED))
async def test_a_poison_record_during_a_90_s_outage_is_dead_lettered_once(
    scenario: str, cluster: Cluster, results: Results, started_at: datetime
) -> None:
    """A dependency is down for 90 s while a record no service can read arrives mid-stream.

    The poison record shares its batches with live records (the archive's batches mix every
    topic; the notifier's hold the grouped events sent meanwhile), so isolating it meets the
    outage, which must rewind the batch, never commit it: 0 lost, 0 duplicates, and the record
    dead-lettered exactly once by each service that reads it, however often its batch came back.
    """
    component, topic, value, readers = POISONED[scenario]
    items = build(_run_id(), 200, resubmit_share=0)
    sending = asyncio.create_task(_send_paced(items, seconds=6))
    await asyncio.sleep(2)
    began = time.monotonic()
    await asyncio.to_thread(harness.infra, "down", component)
    poison = await _produce(topic, value)
    await sending
    await asyncio.sleep(max(0.0, 90 - (time.monotonic() - began)))
    await asyncio.to_thread(harness.infra, "up", component)
    cleared = time.monotonic()
    await Archive().wait_terminal({submission_id(i) for i in items}, started_at, within=300)
    recovery = time.monotonic() - cleared
    proof = await prove(items, started_at)
    proof.assert_clean()
    assert _services_from(await _dead_letters(), poison) == readers
    archived = [
        json.loads(e["event"])
        for e in await Archive().events(started_at)
        if e["event_type"] == "message.deadlettered"
    ]
    assert _services_from(archived, poison) == readers
    assert cluster.all_alive()
    results.add(
        Row(
            scenario,
            proof.submissions,
            1,
            len(proof.lost),
            proof.duplicate_emails,
            recovery,
            f"the poison record dead-lettered exactly once by {' and '.join(readers)}, archived",
        )
    )


async def _set_mongo_password(login: str, new: str) -> None:
    """Log in to the e2e FerretDB with password `login` and change the user's password."""
    uri = f"mongodb://{harness.MONGO_USER}:{login}@{harness.MONGO_HOST}/"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=60_000
    )
    try:
        await client.admin.command("updateUser", harness.MONGO_USER, pwd=new)
    finally:
        await client.close()


async def test_wrong_database_credentials_for_60_s_dead_letter_nothing_and_lose_nothing(
    cluster: Cluster, results: Results, started_at: datetime
) -> None:
    """The services' MongoDB password is wrong for 60 s, then right again.

    A real authentication failure: the e2e FerretDB 1.24 runs with authentication
    (`--test-enable-new-auth`, user created by `infra.sh` from SADA_FERRETDB_USERNAME/PASSWORD)
    and every service logs in. The fault changes the user's password (`updateUser`) and
    restarts FerretDB, which drops every pooled connection: for 60 s each new login fails with
    `AuthenticationFailed` (code 18), exactly what a rotated or mistyped secret does. Then the
    password is changed back. A system-wide failure: held and alerted, never dead-lettered.
    """
    letters_before = len(await _dead_letters())
    failures_before = await _metric_total(cluster, "sada_system_wide_failures_total")
    items = build(_run_id(), 200, resubmit_share=0)
    sending = asyncio.create_task(_send_paced(items, seconds=6))
    await asyncio.sleep(2)
    wrong = "rotated-" + uuid.uuid4().hex
    await _set_mongo_password(harness.MONGO_PASSWORD, wrong)
    await asyncio.to_thread(harness.infra, "restart", "ferretdb")
    await asyncio.sleep(60)
    await _set_mongo_password(wrong, harness.MONGO_PASSWORD)
    cleared = time.monotonic()
    await sending
    await Archive().wait_terminal({submission_id(i) for i in items}, started_at, within=300)
    recovery = time.monotonic() - cleared
    proof = await prove(items, started_at)
    proof.assert_clean()
    assert len(await _dead_letters()) == letters_before
    assert await _metric_total(cluster, "sada_system_wide_failures_total") > failures_before
    assert cluster.all_alive()
    results.add(
        Row(
            "wrong database credentials for 60 s, then fixed",
            proof.submissions,
            0,
            len(proof.lost),
            proof.duplicate_emails,
            recovery,
            "logins refused (code 18): held and alerted, nothing dead-lettered",
        )
    )
