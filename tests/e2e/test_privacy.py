"""End to end: erasing data subjects while submissions flow loses nothing and breaks no chain.

The operator's command (`sada privacy erase --from FILE`) runs against the live e2e archive
while the workload is being sent, so the erasure's key deletions and `privacy.erased` events
interleave with the archive's own writes. Afterwards every submission (erased or not) is
archived and e-mailed once, `sada audit verify --checkpoints` passes (chains, partition logs,
signed checkpoints), the erased people's personal data reads `[erased]`, everyone else's
still opens, and the erased addresses appear nowhere in FerretDB's data files.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pymongo import AsyncMongoClient

from services.archive import privacy
from services.archive.settings import DEV_MASTER_KEY, ArchiveSettings
from tests.e2e import harness
from tests.e2e.driver import Archive, progress, prove, send, submission_id
from tests.e2e.harness import Cluster
from tests.e2e.results import Results, Row
from tests.workload import Item, build

PEOPLE = 100
LOAD = 1500
FERRETDB_FILES = harness.E2E_RUN / "data" / "ferretdb"


def _with_own_submitters(items: list[Item], run: str) -> dict[str, str]:
    """Give each item a submitter of its own; return submission id -> e-mail address."""
    emails = {}
    for number, item in enumerate(items):
        email = f"{run.lower()}-{number}@example.sa"
        item.raw["submitter"] = {"name": f"Erasure Test {number}", "email": email}
        emails[submission_id(item)] = email
    return emails


async def _send_paced(items: list[Item], seconds: float, chunks: int = 12) -> None:
    size = max(1, len(items) // chunks)
    for start in range(0, len(items), size):
        await send(items[start : start + size])
        await asyncio.sleep(seconds / chunks)


async def _opened(chains: set[str], since: datetime) -> dict[str, list[dict[str, Any]]]:
    """Return the sealed events of `chains`, opened with the archive's (local) master key."""
    docs = [
        doc
        for doc in await Archive().events(since)
        if doc["submission_id"] in chains and doc.get("key_id")
    ]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(harness.MONGO_URI, tz_aware=True)
    try:
        keys = privacy.vault(
            client, ArchiveSettings().mongo.database, privacy.keyring_from(DEV_MASTER_KEY), 0
        )
        opened = await keys.reveal(docs)
    finally:
        await client.close()
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_chain.setdefault(doc["submission_id"], []).append(opened[str(doc["_id"])])
    return by_chain


def _in_data_files(needles: list[str]) -> list[str]:
    found: set[str] = set()
    for path in FERRETDB_FILES.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found |= {needle for needle in needles if needle.encode() in data}
    return sorted(found)


def _verify() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [harness.SADA, "audit", "verify", "--checkpoints", str(harness.WITNESS)],
        env=harness.service_env("archive", 0),
        capture_output=True,
        text=True,
        check=False,
    )


async def test_erasing_100_submitters_during_load_loses_nothing_and_keeps_every_chain_intact(
    cluster: Cluster, results: Results, started_at: datetime, tmp_path: Path
) -> None:
    run = f"E2E-{uuid.uuid4().hex[:8]}"
    people = build(f"{run}-P", PEOPLE, resubmit_share=0)
    emails = _with_own_submitters(people, run)
    load = build(f"{run}-L", LOAD, resubmit_share=0)
    await send(people)
    await Archive().wait_terminal(set(emails), started_at, within=240)
    listing = tmp_path / "erasures.txt"
    listing.write_text("".join(f"email={e}\n" for e in emails.values()), encoding="utf-8")

    sending = asyncio.create_task(_send_paced(load, 60))
    await asyncio.sleep(10)  # the load is flowing through every service
    began = time.monotonic()
    erased = await asyncio.to_thread(
        subprocess.run,
        [harness.SADA, "privacy", "erase", "--from", str(listing), "--reason", "e2e requests"],
        env=harness.service_env("archive", 0),
        capture_output=True,
        text=True,
        check=False,
    )
    erase_seconds = time.monotonic() - began
    progress(f"erased {PEOPLE} people in {erase_seconds:.0f} s while the load was sent")
    assert erased.returncode == 0, erased.stderr[-2000:]
    assert erased.stdout.count("privacy.erased archived") == PEOPLE
    assert not any(email in erased.stdout + erased.stderr for email in emails.values())
    await sending

    everyone = people + load
    await Archive().wait_terminal({submission_id(i) for i in everyone}, started_at, within=300)
    proof = await prove(everyone, started_at)
    proof.assert_clean()
    verdict = _verify()
    assert verdict.returncode == 0, verdict.stdout[-2000:] + verdict.stderr[-2000:]

    opened = await _opened(set(emails) | {submission_id(i) for i in load[:50]}, started_at)
    for chain in emails:
        text = orjson.dumps(opened[chain]).decode()
        assert "[erased]" in text, chain
        assert emails[chain] not in text, chain
    kept = [chain for chain in {submission_id(i) for i in load[:50]} if chain in opened]
    assert kept
    assert all("[erased]" not in orjson.dumps(opened[c]).decode() for c in kept)
    recorded = [
        e for e in await Archive().events(started_at) if e["event_type"] == "privacy.erased"
    ]
    assert len(recorded) == PEOPLE
    assert _in_data_files(list(emails.values())) == []
    assert cluster.all_alive()
    results.add(
        Row(
            f"erasure of {PEOPLE} submitters during load",
            proof.submissions,
            0,
            len(proof.lost),
            proof.duplicate_emails,
            None,
            f"`sada privacy erase --from` took {erase_seconds:.0f} s while {LOAD} more were sent; "
            "chains, partition logs and signed checkpoints verify; erased data reads [erased]",
        )
    )
