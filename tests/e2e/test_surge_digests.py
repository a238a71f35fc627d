"""End to end, with digests on: under a surge every submission is in exactly one notification.

The notifiers are restarted with digests on and short settings (a threshold of 50 e-mails per
20 s, 5 s windows) for this module and restored afterwards; the rest of the suite runs with
digests off, one e-mail per submission. The proof (`driver.prove`) reads a digest as a unit
does: each submission it lists, in its text or its attached CSV, counts as one e-mail with the
digest's Message-ID (docs/digests.md).

Named to run after test_reliability.py: its surge adds tens of thousands of submissions to the
e2e archive, and on FerretDB (SQLite) the archive's writes then outlast their socket timeout on
a loaded machine, which the fault scenarios would measure instead of the faults.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shared import topics
from tests import campaign_corpus
from tests.e2e import harness
from tests.e2e.driver import Archive, Proof, mailbox_index, progress, prove, submission_id
from tests.e2e.harness import Cluster
from tests.e2e.results import Results, Row
from tests.workload import VOC, Item, expected_unit, load_samples

THRESHOLD, RATE_SECONDS, WINDOW_SECONDS = 50, 20, 5.0
DIGESTS_ON = {
    "SADA_DIGEST__ENABLED": "true",
    "SADA_DIGEST__THRESHOLD": str(THRESHOLD),
    "SADA_DIGEST__RATE_SECONDS": str(RATE_SECONDS),
    "SADA_DIGEST__WINDOW_SECONDS": str(WINDOW_SECONDS),
    "SADA_DIGEST__SETTLE_SECONDS": "1",
    # A holder starts sending only in the first half of its lease, which must fit one SMTP
    # exchange (6 x the timeout): a short timeout lets a killed holder's lease run out soon.
    "SADA_SMTP__TIMEOUT": "3",
    "SADA_DIGEST__LEASE_SECONDS": "40",
    "SADA_DIGEST__POLL_SECONDS": "0.5",
    "SADA_LOG_LEVEL": "INFO",  # a line per mode change and per digest recorded: the evidence
}
LATENCY_BOUND = WINDOW_SECONDS + 10
# The surge's size and the rate it is offered at (submissions per second); the stack's
# sustained rate is what the offer must not exceed, or latency measures the backlog.
SURGE = int(os.environ.get("SADA_E2E_DIGEST_SURGE", "2000"))
OFFER_RATE = float(os.environ.get("SADA_E2E_DIGEST_RATE", "50"))
CAMPAIGN_SHARE = 0.6


@pytest.fixture(scope="module")
async def digests(cluster: Cluster) -> AsyncIterator[Cluster]:
    """Both notifiers with digests on for this module; the standard ones again after it."""
    await cluster.restart_notifiers(DIGESTS_ON)
    try:
        yield cluster
    finally:
        await cluster.restart_notifiers(None)


def surge(run: str, count: int, *, consultations: int = 4, seed: int = 16) -> list[Item]:
    """Return `count` submissions, `CAMPAIGN_SHARE` of them copies of campaigns, shuffled.

    Each of `consultations` draft laws gets two campaigns (copies varied as people and tools
    vary them, tests/campaign_corpus.py) and comments in their own words; the rest are
    complaints and questions for the Voice of Customer (and any the routing rules send to the
    Legislations Office by their words).
    """
    rng = random.Random(seed)
    templates: list[tuple[str, str, str]] = []
    for n in range(consultations):
        language = "ar" if n % 2 else "en"
        words = campaign_corpus.AR_WORDS if language == "ar" else campaign_corpus.EN_WORDS
        for _ in range(2):
            opening = campaign_corpus.sentence(rng, words, rng.randint(22, 30))
            request = campaign_corpus.sentence(rng, words, rng.randint(8, 14))
            templates.append((f"{run}-LAW-{n}", language, f"{opening}\n\n{request}"))
    others = [s for s in load_samples() if expected_unit(s) == VOC]
    items: list[Item] = []
    copies = int(count * CAMPAIGN_SHARE)
    for n in range(count):
        if n < copies:
            ref, language, template = templates[n % len(templates)]
            body = campaign_corpus.variant(rng, template, language)
            raw = _consultation(run, n, ref, language, body)
        elif n % 2:
            ref, language, _ = templates[n % len(templates)]
            words = campaign_corpus.AR_WORDS if language == "ar" else campaign_corpus.EN_WORDS
            body = campaign_corpus.sentence(rng, words, rng.randint(20, 60))
            raw = _consultation(run, n, ref, language, body)
        else:
            words = campaign_corpus.EN_WORDS
            body = campaign_corpus.sentence(rng, words, rng.randint(20, 60))
            raw = {**others[n % len(others)], "channel_ref": f"{run}-{n:06d}", "body": body}
        items.append(Item(raw, "kafka", expected_unit(raw)))
    rng.shuffle(items)
    return items


def _consultation(run: str, n: int, ref: str, language: str, body: str) -> dict[str, Any]:
    return {
        "channel": "istitlaa",
        "channel_ref": f"{run}-{n:06d}",
        "kind": "consultation_response",
        "legislation_ref": ref,
        "language": language,
        "body": body,
        "submitted_at": "2026-12-03T10:00:00+03:00",
    }


async def offer(items: Sequence[Item], rate: float) -> float:
    """Publish `items` to Kafka at `rate` per second (one producer); return the seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=harness.BOOTSTRAP, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    began = time.monotonic()
    per_tick = max(1, math.ceil(rate / 4))  # four ticks a second keep the offer smooth
    try:
        for tick, start in enumerate(range(0, len(items), per_tick)):
            chunk = items[start : start + per_tick]
            futures = [await producer.send(topics.SUBMISSIONS, i.encoded()) for i in chunk]
            await asyncio.gather(*futures)
            await asyncio.sleep(max(0.0, began + (tick + 1) * per_tick / rate - time.monotonic()))
    finally:
        await producer.stop()
    elapsed = time.monotonic() - began
    progress(f"offered {len(items)} in {elapsed:.1f} s ({len(items) / elapsed:.0f}/s)")
    return elapsed


def _run_id() -> str:
    return f"E2E-D-{uuid.uuid4().hex[:8]}"


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def _latency_note(proof: Proof) -> str:
    latencies = proof.digest_latencies
    if not latencies:
        return "no digest"
    return (
        f"digest latency (accepted to arrival) p99 {_percentile(latencies, 0.99):.1f} s, "
        f"max {max(latencies):.1f} s (window {WINDOW_SECONDS:.0f} s)"
    )


def _split_note(proof: Proof) -> str:
    singles = proof.submissions - proof.digested - proof.failed_notifications
    return f"{proof.digested} in {len(proof.digests)} digests, {singles} single e-mails"


async def _wait_window_due(after_end: float = 1.2) -> None:
    """Sleep until `after_end` seconds past a window's end: the window's digest is being sent."""
    now = time.time()
    wait = (after_end - now % WINDOW_SECONDS) % WINDOW_SECONDS
    await asyncio.sleep(wait)


@pytest.mark.timeout(1800)
async def test_a_surge_with_campaigns_puts_every_submission_in_exactly_one_notification(
    digests: Cluster, results: Results, started_at: datetime
) -> None:
    items = surge(_run_id(), SURGE)
    in_campaigns = int(SURGE * CAMPAIGN_SHARE)
    began = time.monotonic()
    offered = await offer(items, OFFER_RATE)
    wanted = {submission_id(i) for i in items}
    await Archive().wait_terminal(wanted, started_at, within=600)
    elapsed = time.monotonic() - began
    proof = await prove(items, started_at)
    progress(f"{_split_note(proof)}; {_latency_note(proof)}")
    proof.assert_clean()
    assert proof.digested > in_campaigns * 0.9  # copies past the third, and the surge
    assert max(proof.digest_latencies) <= LATENCY_BOUND, _latency_note(proof)
    assert digests.all_alive()
    results.add(
        Row(
            f"digests: a surge, {CAMPAIGN_SHARE:.0%} campaign copies on 4 draft laws",
            proof.submissions,
            0,
            len(proof.lost),
            proof.duplicate_emails,
            None,
            f"offered at {len(items) / offered:.0f}/s via Kafka ({offered:.0f} s); "
            f"{_split_note(proof)}; {_latency_note(proof)}; {elapsed:.0f} s to the last "
            "e-mail",
        )
    )


@pytest.mark.timeout(600)
async def test_sigkill_of_a_notifier_while_digests_are_due_loses_and_repeats_nothing(
    digests: Cluster, results: Results, started_at: datetime
) -> None:
    items = surge(_run_id(), 2000, seed=17)
    sending = asyncio.create_task(offer(items, OFFER_RATE))
    await asyncio.sleep(2 * WINDOW_SECONDS)  # in digest mode, digests going out
    await _wait_window_due()
    victim = [s for s in digests if s.name == "notifier"][1]
    victim.kill(signal.SIGKILL)
    await asyncio.sleep(3)
    victim.start()
    await victim.wait_healthy()
    restarted = time.monotonic()
    await sending
    await Archive().wait_terminal({submission_id(i) for i in items}, started_at, within=300)
    recovery = time.monotonic() - restarted
    proof = await prove(items, started_at)
    progress(f"{_split_note(proof)}; {proof.digest_resends} digest resends; {_latency_note(proof)}")
    # Only the documented crash window may repeat a digest, and then with its Message-ID.
    proof.assert_clean(allow_duplicates=True)
    assert proof.duplicate_emails == proof.digest_resends
    assert proof.digested
    assert digests.all_alive()
    results.add(
        Row(
            "digests: SIGKILL of a notifier while a window's digests are due, restarted",
            proof.submissions,
            0,
            len(proof.lost),
            proof.duplicate_emails,
            recovery,
            f"{_split_note(proof)}; {proof.digest_resends} digests resent with their "
            f"Message-ID (lease 40 s); {_latency_note(proof)}",
        )
    )


@pytest.mark.timeout(600)
async def test_smtp_down_for_two_windows_delays_the_digests_and_loses_nothing(
    digests: Cluster, results: Results, started_at: datetime
) -> None:
    items = surge(_run_id(), 1500, seed=18)
    sending = asyncio.create_task(offer(items, OFFER_RATE))
    await asyncio.sleep(WINDOW_SECONDS)  # in digest mode
    await asyncio.to_thread(harness.infra, "down", "smtp")
    down = time.time()
    await asyncio.sleep(2 * WINDOW_SECONDS + 1)
    await asyncio.to_thread(harness.infra, "up", "smtp")
    up = time.time()
    cleared = time.monotonic()
    await sending
    await Archive().wait_terminal({submission_id(i) for i in items}, started_at, within=300)
    recovery = time.monotonic() - cleared
    proof = await prove(items, started_at)
    progress(f"{_split_note(proof)}; {_latency_note(proof)}")
    proof.assert_clean()
    mails = [m for ms in mailbox_index().values() for m in ms]
    assert any(m.digest in proof.digests and m.arrived >= up for m in mails), (
        "no digest of the workload went out once the sink was back"
    )
    assert digests.all_alive()
    results.add(
        Row(
            f"digests: SMTP sink stopped for {up - down:.0f} s (two windows) in digest mode",
            proof.submissions,
            0,
            len(proof.lost),
            proof.duplicate_emails,
            recovery,
            f"{_split_note(proof)}; the digests held meanwhile went out once it was back; "
            f"{_latency_note(proof)}",
        )
    )
