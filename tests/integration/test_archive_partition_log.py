"""The partition logs on the real FerretDB: `sada audit verify --checkpoints` finds each
tampering case with a message naming what changed, and a proof verifies without the database.

One archive is built once (the real `Archiver`, 60 submissions x 3 events over 2 partitions of
each topic, a redelivered batch and a producer-retry duplicate, checkpoints signed in between
and at the end, then more records after the last checkpoint), and every case tampers with a
copy of it.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.archive import checkpoints
from services.archive.archiver import Archiver
from services.archive.chain import link_hash
from services.archive.cli import app as audit_cli
from services.archive.partition_log import (
    HEADS,
    LEAVES,
    Checkpointer,
    MongoLogStore,
    PartitionLog,
    leaf_of,
)
from services.archive.settings import ArchiveTopics
from services.archive.store import MongoArchiveStore
from shared.mongo import make_client
from shared.settings import MongoSettings
from tests import archive_samples as samples
from tests import infra

pytestmark = pytest.mark.integration

TOPICS = ArchiveTopics()
COLLECTIONS = ("events", "submissions", LEAVES, HEADS)
SUBMISSIONS = 60


@dataclass
class Archive:
    database: str
    witness: Path
    verify_key: Path
    references: list[str]
    """The references of the submissions, in archiving order."""


@pytest.fixture(scope="module")
async def archive(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Archive]:
    client = make_client(MongoSettings(uri=infra.MONGO_URI), app_name="it-partition-log")
    database = infra.unique("it_partition_log")
    keys = tmp_path_factory.mktemp("keys")
    signing, verify_key = checkpoints.generate(keys)
    witness = tmp_path_factory.mktemp("witness")
    partition_log = PartitionLog(MongoLogStore(client, database))
    archiver = Archiver(
        MongoArchiveStore(client, database), TOPICS, cache_size=10_000, partition_log=partition_log
    )
    signer = Checkpointer(
        partition_log,
        checkpoints.load_signing_key(signing),
        checkpoints.Witness(witness, "it-writer"),
        interval=3600,
    )
    offsets: dict[tuple[str, int], int] = defaultdict(int)

    def record(topic: str, partition: int, value: bytes) -> Any:
        offset = offsets[(topic, partition)]
        offsets[(topic, partition)] += 1
        return samples.record(topic, value, partition=partition, offset=offset)

    references: list[str] = []
    batches: list[list[Any]] = []
    for i in range(SUBMISSIONS):
        sub = samples.submission()
        references.append(sub.reference)
        partition = i % 2
        batches.append(
            [
                record(TOPICS.accepted, partition, samples.encode(samples.accepted(sub))),
                record(TOPICS.routed, partition, samples.encode(samples.routed(sub))),
                record(TOPICS.notifications, partition, samples.encode(samples.notified(sub))),
            ]
        )
    records = [r for batch in batches for r in batch]
    try:
        for start in range(0, 90, 30):
            await archiver.archive(records[start : start + 30])
        await archiver.archive(records[60:90])  # a redelivery: logged already, skipped
        signer.checkpoint(datetime(2026, 12, 3, 10, 0, tzinfo=UTC))
        await archiver.archive(records[90:150])
        signer.checkpoint(datetime(2026, 12, 3, 10, 1, tzinfo=UTC))
        retried = record(TOPICS.accepted, 0, records[0].value)  # a producer retry: new offset
        await archiver.archive([*records[150:], retried])  # after the last checkpoint
        yield Archive(database, witness, verify_key, references)
    finally:
        await client.drop_database(database)
        await client.close()


@pytest.fixture
async def copy(archive: Archive) -> AsyncIterator[tuple[str, Any]]:
    """A copy of the archive's state to tamper with, and its database handle."""
    client = make_client(MongoSettings(uri=infra.MONGO_URI), app_name="it-partition-log-copy")
    name = infra.unique("it_partition_log_copy")
    source, target = client[archive.database], client[name]
    for collection in COLLECTIONS:
        docs = [doc async for doc in source[collection].find({})]
        if docs:
            await target[collection].insert_many(docs)
    try:
        yield name, target
    finally:
        await client.drop_database(name)
        await client.close()


async def _audit(*args: str, database: str | None = None) -> tuple[int, str]:
    env = {"SADA_MONGO__URI": infra.MONGO_URI}
    if database is not None:
        env["SADA_MONGO__DATABASE"] = database
    result = await asyncio.to_thread(
        CliRunner().invoke, audit_cli, list(args), env=env, catch_exceptions=False
    )
    return result.exit_code, result.output


async def _verify(archive: Archive, database: str) -> tuple[int, str]:
    return await _audit(
        "verify",
        "--checkpoints",
        str(archive.witness),
        "--public-key",
        str(archive.verify_key),
        database=database,
    )


async def test_an_untampered_archive_verifies_clean_against_its_checkpoints(
    archive: Archive,
) -> None:
    code, output = await _verify(archive, archive.database)
    assert code == 0, output
    assert "every log matches its checkpoints" in output
    assert "all chains intact" in output
    lines = [
        json.loads(line)
        for path in archive.witness.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert {line["log"] for line in lines} == {
        f"{topic}/{p}"
        for topic in (TOPICS.accepted, TOPICS.routed, TOPICS.notifications)
        for p in (0, 1)
    }


async def test_an_edited_event_is_named_even_when_its_chain_is_rehashed(
    archive: Archive, copy: tuple[str, Any]
) -> None:
    name, db = copy
    event = await db.events.find_one({"topic": TOPICS.routed, "partition": 1, "offset": 3})
    text = event["event"].replace("legislations_office", "another_office")
    # A careful forger rehashes the event and its successors so the chain holds again.
    await db.events.update_one(
        {"_id": event["_id"]},
        {"$set": {"event": text, "hash": link_hash(event["prev_hash"], text)}},
    )
    code, output = await _verify(archive, name)
    assert code == 1
    assert (
        f"EDITED log={TOPICS.routed}/1: event {event['_id']} of submission "
        f"{event['submission_id']} no longer hashes to its leaf 3"
    ) in output


@pytest.mark.parametrize("with_leaves", [False, True], ids=["leaves-kept", "leaves-deleted"])
async def test_a_whole_deleted_submission_is_named(
    archive: Archive, copy: tuple[str, Any], with_leaves: bool
) -> None:
    name, db = copy
    reference = archive.references[20]  # partition 0, inside the checkpointed range
    snapshot = await db.submissions.find_one({"reference": reference})
    submission = snapshot["submission_id"]
    await db.events.delete_many({"submission_id": submission})
    await db.submissions.delete_many({"submission_id": submission})
    if with_leaves:
        await db[LEAVES].delete_many({"submission_id": submission})
    code, output = await _verify(archive, name)
    assert code == 1
    if with_leaves:
        assert f"DELETED log={TOPICS.accepted}/0: leaves 10 missing" in output
        assert f"ROOT MISMATCH log={TOPICS.accepted}/0: leaves up to size" in output
    else:
        assert f"DELETED log={TOPICS.accepted}/0: leaf 10 names event" in output
        assert f"of submission {submission}, reference {reference}, which is gone" in output
    assert "all chains intact" in output  # the chains alone cannot tell


async def test_a_truncated_tail_is_named_with_the_checkpoint_that_signed_it(
    archive: Archive, copy: tuple[str, Any]
) -> None:
    name, db = copy
    log = f"{TOPICS.notifications}/1"
    await db.events.delete_many(
        {"topic": TOPICS.notifications, "partition": 1, "offset": {"$gte": 20}}
    )
    await db[LEAVES].delete_many(
        {"topic": TOPICS.notifications, "partition": 1, "index": {"$gte": 20}}
    )
    code, output = await _verify(archive, name)
    assert code == 1
    assert f"TRUNCATED log={log}: partition holds 20 leaves, the checkpoint of " in output
    assert "signed 25" in output


async def test_two_swapped_events_are_named(archive: Archive, copy: tuple[str, Any]) -> None:
    name, db = copy
    where = {"topic": TOPICS.accepted, "partition": 1}
    first = await db.events.find_one({**where, "offset": 4})
    second = await db.events.find_one({**where, "offset": 7})
    await db.events.update_one({"_id": first["_id"]}, {"$set": {"offset": 7}})
    await db.events.update_one({"_id": second["_id"]}, {"$set": {"offset": 4}})
    code, output = await _verify(archive, name)
    assert code == 1
    assert (
        f"SWAPPED log={TOPICS.accepted}/1: the event at offset 4 is {second['_id']} "
        f"(submission {second['submission_id']}) but leaf 4 names {first['_id']}"
    ) in output
    assert f"the event at offset 7 is {first['_id']}" in output


async def test_rewritten_leaves_no_longer_give_the_signed_root(
    archive: Archive, copy: tuple[str, Any]
) -> None:
    name, db = copy
    leaf = await db[LEAVES].find_one({"_id": f"{TOPICS.routed}/0/2"})
    other = await db[LEAVES].find_one({"_id": f"{TOPICS.routed}/0/5"})
    for doc, into in ((leaf, other), (other, leaf)):  # swap two leaves, each self-consistent
        moved = {**doc, "index": into["index"], "_id": into["_id"]}
        moved["leaf"] = leaf_of(moved).hex()  # type: ignore[union-attr]
        await db[LEAVES].replace_one({"_id": into["_id"]}, moved)
    code, output = await _verify(archive, name)
    assert code == 1
    assert f"ROOT MISMATCH log={TOPICS.routed}/0: leaves up to size" in output
    assert f"REORDERED log={TOPICS.routed}/0: leaf 3 (offset 3) comes after offset 5" in output


async def test_a_forged_checkpoint_is_refused(archive: Archive, tmp_path: Path) -> None:
    forged = tmp_path / "witness"
    forged.mkdir()
    for path in archive.witness.rglob("*.jsonl"):
        target = forged / path.relative_to(archive.witness)
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines()
        first = json.loads(lines[0])
        first["size"] -= 1
        target.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    code, output = await _audit(
        "verify",
        "--checkpoints",
        str(forged),
        "--public-key",
        str(archive.verify_key),
        database=archive.database,
    )
    assert code == 1
    assert "REFUSED CHECKPOINT" in output
    assert "the signature does not match its fields" in output


async def test_a_proof_verifies_offline_and_a_flipped_byte_fails(
    archive: Archive, tmp_path: Path
) -> None:
    code, output = await _audit(
        "prove",
        archive.references[0],  # its accepted event was also delivered twice
        "--checkpoints",
        str(archive.witness),
        "--public-key",
        str(archive.verify_key),
        database=archive.database,
    )
    assert code == 0, output
    proof = json.loads(output)
    assert len(proof["events"]) == 3
    assert all(item["checkpoint"]["at"].startswith("2026-12-03T10:01") for item in proof["events"])
    path = tmp_path / "proof.json"
    path.write_text(output)
    offline = {"SADA_MONGO__URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100"}
    runner = CliRunner()
    args = ["check-proof", str(path), "--public-key", str(archive.verify_key)]
    result = await asyncio.to_thread(runner.invoke, audit_cli, args, env=offline)
    assert result.exit_code == 0, result.output
    assert "proof holds: 3 event(s)" in result.output

    node = proof["events"][1]["path"][0]
    flipped = ("1" if node[0] == "0" else "0") + node[1:]
    path.write_text(output.replace(node, flipped))
    result = await asyncio.to_thread(runner.invoke, audit_cli, args, env=offline)
    assert result.exit_code == 1
    assert "does not lead to the signed root" in result.output

    path.write_text(output.replace(proof["events"][2]["event"]["hash"], "0" * 64, 1))
    result = await asyncio.to_thread(runner.invoke, audit_cli, args, env=offline)
    assert result.exit_code == 1
    assert "hash != link_hash(prev_hash, event)" in result.output

    shortened = {**proof, "events": proof["events"][1:]}  # the first event left out
    path.write_text(json.dumps(shortened))
    result = await asyncio.to_thread(runner.invoke, audit_cli, args, env=offline)
    assert result.exit_code == 1
    assert "the chain has no event at position 0" in result.output
