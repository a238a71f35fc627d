"""`sada deadletter` on the real local Kafka: a fixed dead letter is listed, shown and redriven.

Each test has its own source and dead-letter topics. The CLI runs in-process (Typer's runner),
reaching Kafka through `SADA_KAFKA__BOOTSTRAP_SERVERS` as an operator's shell would.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from services.archive.records import read
from services.archive.settings import ArchiveTopics
from shared import events, ids
from shared.cli import app
from shared.kafka import Record
from tests import archive_samples as samples
from tests import infra
from tests.integration import archive_support as archive
from tests.integration.test_router_kafka import create_topics, end_offsets, partitions_of

PRODUCER = events.Producer(service="router", version="test")
ORIGINAL = b'{"event_type": "submission.accepted", "payload": {"door": "kafka"}}'
KEY = b"5b0c1e0e-0000-5000-8000-000000000001"
HEADERS = [("content-type", b"application/json")]


@dataclass(frozen=True)
class Topics:
    source: str
    deadletter: str


def dead_letter(
    source: events.SourcePosition, *, raw: bytes, error: str, service: str = "router"
) -> events.MessageDeadLettered:
    """Return the dead letter `BatchRunner` publishes for the record at `source`."""
    sid = ids.position_id(source.topic, source.partition, source.offset)
    return events.build(
        events.MessageDeadLettered,
        submission_id=sid,
        reference=ids.reference(sid),
        payload=events.DeadLetterPayload(
            service=service,
            source=source,
            error=error,
            raw=events.raw_text(raw),
            raw_size_bytes=len(raw),
            key=KEY.decode(),
        ),
        discriminator=service,
        producer=PRODUCER,
    )


async def _produce(topic: str, value: bytes, key: bytes | None) -> events.SourcePosition:
    producer = AIOKafkaProducer(bootstrap_servers=infra.KAFKA, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value, key=key, headers=HEADERS)
    finally:
        await producer.stop()
    return events.SourcePosition(topic=meta.topic, partition=meta.partition, offset=meta.offset)


async def _all(topic: str) -> list[Record]:
    """Return every record of `topic`, up to its end offsets."""
    partitions = await partitions_of(topic)
    end = await end_offsets(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.KAFKA, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(30):
            while any([await consumer.position(tp) < end[tp] for tp in partitions]):
                batch = await consumer.getmany(timeout_ms=200)
                found.extend(r for records in batch.values() for r in records)
        return found
    finally:
        await consumer.stop()


async def _setup() -> tuple[Topics, events.MessageDeadLettered, events.MessageDeadLettered]:
    names = Topics(infra.unique("it-dl-source"), infra.unique("it-dl"))
    await create_topics(names.source, names.deadletter, partitions=2)
    source = await _produce(names.source, ORIGINAL, KEY)
    letter = dead_letter(source, raw=ORIGINAL, error="ValidationError: 2 validation errors")
    # Another dead letter, of another topic and error, whose record Kafka no longer holds.
    gone = events.SourcePosition(topic=names.source, partition=source.partition, offset=10_000)
    other = dead_letter(gone, raw=b'{"x": 1}', error="KeyError: unit", service="notifier")
    for event in (letter, other):
        await _produce(
            names.deadletter, event.model_dump_json().encode(), event.submission_id.encode()
        )
    await _produce(names.deadletter, b"\x00 not an event", None)  # tolerated, skipped
    return names, letter, other


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SADA_KAFKA__BOOTSTRAP_SERVERS", infra.KAFKA)
    return CliRunner()


def sada(runner: CliRunner, names: Topics, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["deadletter", *args, "--deadletter-topic", names.deadletter])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_list_finds_the_dead_letter_by_topic_reason_and_time(runner: CliRunner) -> None:
    names, letter, other = asyncio.run(_setup())
    code, out, err = sada(runner, names, "list")
    assert code == 0, err
    assert {line.split()[0] for line in out.splitlines()[1:]} == {letter.event_id, other.event_id}
    assert "2 dead letter(s) matched, 3 record(s) read" in err
    assert ORIGINAL.decode() not in out  # the raw bytes (personal data) are never listed

    def ids_of(*filters: str) -> list[str]:
        code, out, _ = sada(runner, names, "list", *filters)
        assert code == 0
        return [line.split()[0] for line in out.splitlines()[1:]]

    assert ids_of("--reason", "ValidationError") == [letter.event_id]
    assert ids_of("--reason", "unit", "--service", "notifier") == [other.event_id]
    assert ids_of("--reason", "TimeoutError") == []
    assert sorted(ids_of("--since", "1h")) == sorted([letter.event_id, other.event_id])
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert ids_of("--until", earlier) == []
    assert ids_of("--since", "2099-01-01T00:00:00") == []
    code, out, _ = sada(
        runner, names, "list", "--topic", names.source, "--json", "--reason", "valid"
    )
    assert [orjson.loads(line)["event_id"] for line in out.splitlines()] == [letter.event_id]


def test_show_prints_the_dead_letter_whole(runner: CliRunner) -> None:
    names, letter, _ = asyncio.run(_setup())
    code, out, _ = sada(runner, names, "show", letter.event_id)
    assert code == 0
    shown = orjson.loads(out)
    assert shown["event"] == orjson.loads(letter.model_dump_json())
    assert shown["position"]["topic"] == names.deadletter
    assert shown["redrives"] == []
    code, _, err = sada(runner, names, "show", "no-such-id")
    assert code == 1
    assert f"no dead letter no-such-id in {names.deadletter}" in err


def test_redrive_is_a_dry_run_until_yes_then_republishes_and_records_it(runner: CliRunner) -> None:
    names, letter, _ = asyncio.run(_setup())
    before = {t: asyncio.run(end_offsets(t)) for t in (names.source, names.deadletter)}

    code, out, err = sada(runner, names, "redrive", letter.event_id)
    assert code == 0
    assert f"would redrive {letter.event_id}" in out
    assert "1 would be redriven (dry run" in err
    assert {t: asyncio.run(end_offsets(t)) for t in before} == before  # nothing written

    code, out, err = sada(runner, names, "redrive", letter.event_id, "--yes")
    assert code == 0, err
    copies = asyncio.run(_all(names.source))
    assert len(copies) == 2
    copy = max(copies, key=lambda r: r.offset)
    assert (copy.value, copy.key, list(copy.headers)) == (ORIGINAL, KEY, HEADERS)
    audit = [
        (record, events.MessageRedriven.model_validate_json(record.value or b""))
        for record in asyncio.run(_all(names.deadletter))
        if b"message.redriven" in (record.value or b"")
    ]
    assert len(audit) == 1
    record, redriven = audit[0]
    assert redriven.payload.deadletter_event_id == letter.event_id
    assert redriven.payload.source == letter.payload.source
    assert redriven.payload.target == events.SourcePosition(
        topic=names.source, partition=copy.partition, offset=copy.offset
    )
    assert (redriven.payload.raw_from, redriven.payload.raw_sha256) == (
        "source",
        ids.digest(ORIGINAL),
    )
    assert redriven.submission_id == letter.submission_id  # the dead letter's archive chain
    # The archive reads the dead-letter topic: the redrive is an event it stores on that chain.
    archived = read(record, ArchiveTopics(deadletter=names.deadletter))
    assert (archived.event_type, archived.chain_id) == ("message.redriven", letter.submission_id)

    # A second run skips it; `show` lists the redrive.
    code, out, err = sada(runner, names, "redrive", letter.event_id, "--yes")
    assert (code, out) == (0, f"skip {letter.event_id}: redriven 1x before\n")
    assert len(asyncio.run(_all(names.source))) == 2
    code, out, _ = sada(runner, names, "show", letter.event_id)
    assert [r["event_id"] for r in orjson.loads(out)["redrives"]] == [redriven.event_id]


def test_a_record_gone_from_its_topic_is_redriven_from_the_dead_letters_complete_copy(
    runner: CliRunner,
) -> None:
    names, _, other = asyncio.run(_setup())
    code, out, err = sada(runner, names, "redrive", "--service", "notifier", "--yes")
    assert code == 0, err
    assert "1 redriven" in err
    copies = [r for r in asyncio.run(_all(names.source)) if r.value == b'{"x": 1}']
    assert [(c.key, c.value) for c in copies] == [(KEY, b'{"x": 1}')]
    assert f"redriven {other.event_id}" in out
    assert "8 bytes: the dead letter's copy" in out


def test_redrive_needs_a_selection(runner: CliRunner) -> None:
    result = runner.invoke(app, ["deadletter", "redrive"])
    assert result.exit_code == 2
    assert "say which dead letters" in result.stderr


async def test_the_archive_keeps_the_redrive_and_ignores_the_redriven_copy() -> None:
    """A routed event the notifier dead-lettered, redriven by `sada` as an operator runs it."""
    names = await archive.private_topics()
    settings = archive.settings_for(names)
    client = archive.mongo(settings)
    db = client[settings.mongo.database]
    sub = samples.submission()
    routed = samples.routed(sub)
    try:
        async with archive.running(settings) as api, archive.Producer() as kafka:
            spot = await kafka.send(names.routed, samples.encode(routed), sub.submission_id)
            source = events.SourcePosition(
                topic=names.routed, partition=spot.partition, offset=spot.offset
            )
            letter = dead_letter(source, raw=samples.encode(routed), error="OSError: disk full")
            await kafka.send(names.deadletter, samples.encode(letter), letter.submission_id)

            async def both() -> bool:
                return await db.events.count_documents({}) == 2

            await archive.eventually(both)
            code, out = await _sada_process(
                "deadletter", "redrive", letter.event_id, "--yes",
                "--deadletter-topic", names.deadletter,
            )  # fmt: skip
            assert code == 0, out
            assert f"redriven {letter.event_id}: {names.routed}:" in out

            async def redrive_archived() -> bool:
                return await db.events.count_documents({"event_type": "message.redriven"}) == 1

            await archive.eventually(redrive_archived)
            chain = await api.get(f"/v1/submissions/{letter.submission_id}", headers=archive.AUTH)
            timeline = [e["event_type"] for e in chain.json()["timeline"]]
            assert timeline == ["message.deadlettered", "message.redriven"]
            verify = f"/v1/submissions/{letter.submission_id}/verify"
            assert (await api.get(verify, headers=archive.AUTH)).json()["ok"] is True

            async def copy_seen() -> bool:  # the archive read the copy: its duplicate counter
                return _duplicates(names.routed) >= 1

            await archive.eventually(copy_seen)
            assert await db.events.count_documents({"_id": routed.event_id}) == 1
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()


def _duplicates(topic: str) -> float:
    return REGISTRY.get_sample_value("sada_archive_duplicates_total", {"topic": topic}) or 0.0


async def _sada_process(*args: str) -> tuple[int, str]:
    """Run the `sada` command in its own process, as an operator would."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from shared.cli import main; main()", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SADA_KAFKA__BOOTSTRAP_SERVERS": infra.KAFKA},
    )  # fmt: skip
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()
