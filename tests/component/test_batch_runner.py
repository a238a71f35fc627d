"""`BatchRunner` over a partition simulated in memory: what it commits on every failure path.

The consumer below behaves like aiokafka's for what the runner relies on: a fetch returns the
records from the consumer's position and advances it, `commit()` commits that position (not
the batch), and `seek` moves it. FastStream's own `KafkaAckableMessage` (the MANUAL-ack message)
wraps each batch, so `ack`/`nack` are the library's. The invariant checked everywhere: every
record below the committed offset was handled or dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka import TopicPartition
from faststream.kafka.message import KafkaAckableMessage
from pymongo.errors import AutoReconnect, OperationFailure

from shared import ids, kafka, topics
from shared.kafka import BatchRunner, Outgoing, Record
from shared.retry import TransientError
from tests.archive_samples import record

TOPIC = "test.runner.v1"
POISON = b"poison"


class Partition:
    """One partition and a consumer's position and committed offset on it."""

    def __init__(self, topic: str, values: Sequence[bytes]) -> None:
        self.records = [record(topic, v, offset=i) for i, v in enumerate(values)]
        self.position = 0
        self.committed = 0

    def fetch(self, size: int) -> KafkaAckableMessage:
        batch = tuple(self.records[self.position : self.position + size])
        self.position += len(batch)
        return KafkaAckableMessage(batch, body=[r.value for r in batch], consumer=self)

    async def commit(self) -> None:
        self.committed = self.position

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.position = offset


class Dependency:
    """The store behind the work: up or down, and what it has durably handled."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.handled: list[bytes] = []

    async def work(self, records: Sequence[Record]) -> None:
        if any(r.value == POISON for r in records):
            raise ValueError("not a v1 event")  # checked before any write, like the archive
        if self.failure is not None:
            raise self.failure
        self.handled.extend(r.value or b"" for r in records)


class DeadLetters:
    """Stands in for the producer: records dead-letter events, or fails like a broken topic."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.failure: Exception | None = None

    async def produce_all(self, _broker: object, outgoing: Sequence[Outgoing]) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.extend(outgoing)


@pytest.fixture
def dead_letters(monkeypatch: pytest.MonkeyPatch) -> DeadLetters:
    fake = DeadLetters()
    monkeypatch.setattr(kafka, "produce_all", fake.produce_all)
    return fake


def _runner(hold: float = 0.0) -> BatchRunner:
    return BatchRunner(object(), service="test", version="test", hold_seconds=hold)  # type: ignore[arg-type]


async def _deliver(runner: BatchRunner, msg: KafkaAckableMessage, work: kafka.Work) -> None:
    """Call the runner as FastStream's subscriber does: an escaping exception is only logged."""
    try:
        await runner.run(msg, work)
    except Exception:  # FastStream logs it and fetches the next batch
        return


def _values(n: int, poison_at: int | None = None) -> list[bytes]:
    return [POISON if i == poison_at else f"r{i}".encode() for i in range(n)]


def _assert_nothing_skipped(part: Partition, store: Dependency, dead: DeadLetters) -> None:
    dead_lettered = {o.key for o in dead.sent}
    for rec in part.records[: part.committed]:
        position = ids.position_id(rec.topic, rec.partition, rec.offset)
        assert rec.value in store.handled or position in dead_lettered, (
            f"offset {rec.offset} committed but never handled"
        )


async def test_an_outage_while_isolating_a_poison_record_commits_nothing(
    dead_letters: DeadLetters,
) -> None:
    part, store, runner = Partition(TOPIC, _values(10, poison_at=5)), Dependency(), _runner()
    store.failure = AutoReconnect("store down")
    await _deliver(runner, part.fetch(10), store.work)
    assert part.committed == 0
    assert part.position == 0  # rewound: the next fetch starts at the first record again
    store.failure = None
    while part.committed < len(part.records):
        await _deliver(runner, part.fetch(4), store.work)
    _assert_nothing_skipped(part, store, dead_letters)
    assert store.handled == [v for v in _values(10) if v != b"r5"]
    assert len(dead_letters.sent) == 1


async def test_a_dead_letter_topic_that_cannot_be_written_holds_the_batch(
    dead_letters: DeadLetters,
) -> None:
    part, store, runner = Partition(TOPIC, _values(6, poison_at=2)), Dependency(), _runner()
    dead_letters.failure = OperationFailure("not authorised on the topic", code=13)
    await _deliver(runner, part.fetch(6), store.work)
    assert (part.committed, part.position) == (0, 0)
    await _deliver(runner, part.fetch(6), store.work)  # the next batch must not commit past it
    assert (part.committed, part.position) == (0, 0)
    assert kafka.SYSTEM_WIDE.labels("test")._value.get() == 1
    dead_letters.failure = None
    await _deliver(runner, part.fetch(6), store.work)
    assert part.committed == 6
    _assert_nothing_skipped(part, store, dead_letters)
    assert kafka.SYSTEM_WIDE.labels("test")._value.get() == 0


async def test_a_poison_record_is_dead_lettered_once_when_its_batch_is_rewound(
    dead_letters: DeadLetters,
) -> None:
    part, runner = Partition(TOPIC, _values(8, poison_at=1)), _runner()
    calls = 0

    async def work(records: Sequence[Record]) -> None:
        nonlocal calls
        calls += 1
        if any(r.value == POISON for r in records):
            raise ValueError("poison")
        if records[0].offset >= 4 and calls < 12:  # an outage reached while isolating
            raise TransientError("down")

    await _deliver(runner, part.fetch(8), work)
    assert (part.committed, part.position, len(dead_letters.sent)) == (0, 0, 1)
    while part.committed < 8:
        await _deliver(runner, part.fetch(8), work)
    assert len(dead_letters.sent) == 1


@pytest.mark.parametrize(
    "failure",
    [
        OperationFailure("Authentication failed.", code=18),
        OperationFailure("Command insert requires authentication", code=13),
        OperationFailure("out of disk space", code=14031),
        OSError(28, "No space left on device"),
    ],
    ids=["mongo-auth-18", "mongo-unauthorized-13", "mongo-out-of-disk", "enospc"],
)
async def test_a_system_wide_failure_holds_and_never_dead_letters(
    failure: Exception, dead_letters: DeadLetters
) -> None:
    part, store, runner = Partition(TOPIC, _values(5)), Dependency(failure), _runner()
    for _ in range(3):
        await _deliver(runner, part.fetch(5), store.work)
        assert (part.committed, part.position) == (0, 0)
    assert dead_letters.sent == []
    assert kafka.SYSTEM_WIDE.labels("test")._value.get() == 1
    store.failure = None
    await _deliver(runner, part.fetch(5), store.work)
    assert part.committed == 5
    assert store.handled == _values(5)


async def test_a_dead_letter_record_that_fails_is_skipped_and_counted_not_dead_lettered_again(
    dead_letters: DeadLetters,
) -> None:
    part, store, runner = (
        Partition(topics.DEADLETTER, _values(4, poison_at=2)),
        Dependency(),
        _runner(),
    )
    counted = kafka.DEADLETTER_UNHANDLED.labels("test", topics.DEADLETTER)
    before = counted._value.get()
    await _deliver(runner, part.fetch(4), store.work)
    assert dead_letters.sent == []
    assert counted._value.get() == before + 1
    assert part.committed == 4
    assert store.handled == [b"r0", b"r1", b"r3"]


async def test_a_cancelled_batch_is_rewound_and_the_cancellation_propagates(
    dead_letters: DeadLetters,
) -> None:
    part, runner = Partition(TOPIC, _values(3)), _runner()

    async def work(_records: Sequence[Record]) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await runner.run(part.fetch(3), work)
    assert (part.committed, part.position) == (0, 0)


class Seeks:
    """A consumer that only records where it is told to seek (and fails if it commits)."""

    def __init__(self) -> None:
        self.seeks: dict[TopicPartition, int] = {}

    async def commit(self) -> None:
        raise AssertionError("a failed batch was committed")

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset


async def test_a_batch_spanning_partitions_is_rewound_on_each_of_them(
    dead_letters: DeadLetters,
) -> None:
    """FastStream's batch nack must seek every partition of the batch, not only the first's."""
    batch = tuple(
        record(TOPIC, f"p{p}-{o}".encode(), partition=p, offset=o)
        for o in (7, 8, 9)
        for p in (0, 1, 2)
    )
    consumer = Seeks()
    msg = KafkaAckableMessage(batch, body=[], consumer=consumer)
    await _runner().run(msg, Dependency(AutoReconnect("store down")).work)
    assert consumer.seeks == {TopicPartition(TOPIC, p): 7 for p in (0, 1, 2)}
