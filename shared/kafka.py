"""Kafka wiring with safe defaults, and the one way Sada consumes a batch.

aiokafka and FastStream default to at-most-once (acks=1, no idempotence, auto-commit,
ACK_FIRST, `latest`). Every broker and subscriber here is built by these factories so no
service can forget one of the safe settings. `BatchRunner` is the delivery policy in one place:
do the work, wait for Kafka to acknowledge what it produced, then commit; retry transient
failures while the partition waits; hold and alert on system-wide ones; send a poison record to
the dead-letter topic and move on; and never commit a batch that was not handled.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream._internal.types import CustomCallable
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher.producer import AioKafkaFastProducerImpl
from faststream.kafka.publisher.state import RealProducer
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from prometheus_client import REGISTRY, Counter, Gauge

from shared import events, ids, topics
from shared.logging import get_logger
from shared.retry import (
    DeadLetterUnavailableError,
    backoff,
    classify,
    is_system_wide,
    is_transient,
)
from shared.settings import KafkaSettings

log = get_logger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Work: TypeAlias = Callable[[Sequence[Record]], Awaitable[None]]

RETRIES = Counter(
    "sada_transient_retries_total",
    "Batches that hit a transient failure and were retried or rewound.",
    ["service", "topic"],
)
DEADLETTERS = Counter(
    "sada_deadletters_total", "Records sent to the dead-letter topic.", ["service", "topic"]
)
COMMIT_FAILURES = Counter(
    "sada_commit_failures_total",
    "Offset commits that failed (the batch is redelivered; effects are idempotent).",
    ["service", "topic"],
)

SYSTEM_WIDE = Gauge(
    "sada_system_wide_failure",
    "1 while the service holds its partitions on a system-wide failure (credentials, ACL, disk,"
    " dead-letter topic): waiting alone will not clear it; 0 after the next committed batch.",
    ["service"],
)
SYSTEM_WIDE_FAILURES = Counter(
    "sada_system_wide_failures_total",
    "Attempts that failed on a system-wide failure, by exception type.",
    ["service", "error"],
)
DEADLETTER_UNHANDLED = Counter(
    "sada_deadletter_unhandled_total",
    "Records read from the dead-letter topic that could not be handled; skipped, never"
    " dead-lettered again.",
    ["service", "topic"],
)

JSON_HEADERS = {"content-type": "application/json"}
_JSON_HEADER_LIST = [("content-type", b"application/json")]

PRODUCED = Counter(
    "sada_produced_records_total",
    "Records produced and acknowledged by Kafka (acks=all), by topic.",
    ["topic"],
)


SASL_MECHANISMS: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "SCRAM-SHA-512": SASLScram512,
    "SCRAM-SHA-256": SASLScram256,
    "PLAIN": SASLPlaintext,
}


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    """Return FastStream's security for SASL_SSL (TLS verified, the configured mechanism)."""
    if settings.security_protocol != "SASL_SSL":
        return None
    context = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
    )
    assert settings.sasl_username  # both checked by the settings model
    assert settings.sasl_password
    return SASL_MECHANISMS[settings.sasl_mechanism](
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        ssl_context=context,
    )


def make_broker(settings: KafkaSettings, *, service: str, **extra: Any) -> KafkaBroker:
    """Return a broker that produces with acks=all and idempotence, and counts in Prometheus."""
    security = broker_security(settings)
    return KafkaBroker(
        settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_size,
        client_id=f"sada-{service}",
        security=security,
        graceful_timeout=settings.graceful_seconds,
        # FastStream's own lines ("Received", "Processed") go through the root handler as JSON;
        # per-batch they are debug detail, our handlers log the outcome.
        logger=logging.getLogger("faststream.sada"),
        log_level=logging.DEBUG,
        middlewares=(
            KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service, metrics_prefix="sada"),
        ),
        **extra,
    )


def batch_subscriber(
    broker: KafkaBroker,
    *topics: str,
    group_id: str,
    settings: KafkaSettings,
    description: str | None = None,
    parser: CustomCallable | None = None,
) -> BatchSubscriber:
    """Return a batch subscriber that reads from the earliest offset and commits only by hand."""
    return broker.subscriber(
        *topics,
        group_id=group_id,
        batch=True,
        max_records=settings.max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        # A held batch rewinds well before this, so the group never evicts a patient consumer.
        max_poll_interval_ms=int(settings.max_poll_interval_seconds * 1000),
        decoder=raw_batch_decoder,
        parser=parser,
        description=description,
    )


async def raw_batch_decoder(msg: KafkaMessage) -> list[bytes]:
    """Hand the handler raw bytes: decoding is the service's job, where a failure is data."""
    return [record.value or b"" for record in msg.raw_message]


def records_of(msg: KafkaMessage) -> tuple[Record, ...]:
    """Return the Kafka records behind a batch message."""
    raw = msg.raw_message
    # the in-memory test broker hands a batch over as a list
    return tuple(raw) if isinstance(raw, tuple | list) else (raw,)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce: its topic, key and already-encoded value."""

    topic: str
    key: str
    value: bytes


async def produce_all(broker: KafkaBroker, outgoing: Iterable[Outgoing]) -> None:
    """Send every record at once, then wait until Kafka acknowledged all of them (acks=all).

    The records go straight to the broker's own aiokafka producer (`kafka_producer`), not
    through `broker.publish`. Why: FastStream's publish builds a command object, runs the
    publish middleware chain (Prometheus histogram and counters), makes a uuid4 correlation id
    and re-encodes the headers for every single record; profiling the router showed that to be
    about a quarter of its time per record (bench/README.md). Delivery is unchanged: it is the
    producer `make_broker` configured (acks=all, idempotence), every record is sent before any
    acknowledgement is awaited, and this returns only once all are acknowledged, so a caller's
    commit still follows the acks. Records carry the same `content-type` header; the count goes
    to `sada_produced_records_total` (FastStream's published-message metrics no longer see
    them). With the in-memory test broker, which has no aiokafka producer, records still go
    through `broker.publish`, so `TestKafkaBroker` delivers them to its subscribers as before.
    """
    producer = kafka_producer(broker)
    if producer is None:
        await _publish_all(broker, outgoing)
        return
    pending: list[asyncio.Future[Any]] = []
    per_topic: dict[str, int] = {}
    for item in outgoing:
        pending.append(
            await producer.send(
                item.topic, item.value, key=item.key.encode(), headers=_JSON_HEADER_LIST
            )
        )
        per_topic[item.topic] = per_topic.get(item.topic, 0) + 1
    if pending:
        await asyncio.gather(*pending)
    for topic, count in per_topic.items():
        PRODUCED.labels(topic).inc(count)


def kafka_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """Return the connected aiokafka producer behind `broker`, or None (test broker, not started).

    FastStream 0.7 keeps it at `broker.config.producer._producer.producer`; the version is pinned
    in pyproject.toml and tests/integration/test_infrastructure_is_real.py checks this producer
    is the safe one (acks=all, idempotent).
    """
    fast = broker.config.producer
    if not isinstance(fast, AioKafkaFastProducerImpl):
        return None  # TestKafkaBroker's in-memory producer
    state = fast._producer
    if not isinstance(state, RealProducer):
        return None  # not connected: broker.publish raises the proper error
    producer: AIOKafkaProducer = state.producer
    return producer


async def _publish_all(broker: KafkaBroker, outgoing: Iterable[Outgoing]) -> None:
    """Produce through FastStream's `broker.publish` (the in-memory test broker's path)."""
    pending: list[asyncio.Future[Any]] = []
    for item in outgoing:
        sent = await broker.publish(
            item.value,
            item.topic,
            key=item.key.encode(),
            headers=JSON_HEADERS,
            no_confirm=True,
        )
        if isinstance(sent, asyncio.Future):  # the in-memory test broker delivers inline
            pending.append(sent)
    if pending:
        await asyncio.gather(*pending)


class BatchRunner:
    """Runs a service's work on a consumed batch and decides what to commit.

    Failures are classified by `shared.retry.classify`:
    - success: one commit for the batch, after the work (and its produces) finished;
    - transient failure: retried with backoff while the partition waits, then rewound and
      fetched again, so an outage of any length loses nothing and never spins hot;
    - system-wide failure (credentials, ACLs, a full disk, an unwritable dead-letter topic):
      held and rewound exactly like a transient one, never dead-lettered, but logged at error
      level and shown in `sada_system_wide_failure` until a batch succeeds again;
    - per-message failure: the batch is retried record by record to find the poison, which goes
      to `feedback.deadletter.v1` with its position and error; the rest proceed.

    The one rule over all of them: an exception that leaves `run` unhandled, of whatever kind
    and from whatever step (isolating the poison, publishing to the dead-letter topic, a
    cancellation at shutdown), rewinds the batch's partitions to its first records and commits
    nothing. With `AckPolicy.MANUAL` FastStream neither acks nor nacks a failed batch, and
    `consumer.commit()` commits the consumer's *position*: without the rewind, the next batch's
    commit would move past the records this one never handled.

    A poison record is dead-lettered once per runner even when its batch is rewound and fetched
    again (a later record hit an outage): the runner remembers the positions it dead-lettered
    until their batch is committed, and skips them. Only a crash in between repeats one, with
    the same event id, which the archive stores once.

    A record read *from* the dead-letter topic is never dead-lettered again (that would loop):
    it is skipped, logged at error level and counted in `sada_deadletter_unhandled_total`, which
    an alert watches. Skipped rather than parked in a store: the store is what just refused it
    (parking could fail the same way and hold the topic forever), and the record itself stays
    in the dead-letter topic, at the logged position, for `sada deadletter show`.
    """

    REMEMBERED = 10_000
    """Dead-lettered positions kept until committed (a bound against revoked partitions)."""

    def __init__(
        self,
        broker: KafkaBroker,
        *,
        service: str,
        version: str,
        hold_seconds: float,
        deadletter_topic: str = topics.DEADLETTER,
    ):
        self._broker = broker
        self._deadletter_topic = deadletter_topic
        self._service = service
        self._producer = events.Producer(service=service, version=version)
        self._hold_seconds = hold_seconds
        self._dead_lettered: dict[tuple[str, int, int], None] = {}

    async def run(self, msg: KafkaMessage, work: Work) -> None:
        """Process the batch behind `msg` with `work`, then commit; on any escape, rewind."""
        records = records_of(msg)
        topic = records[0].topic if records else "-"
        try:
            await self._handle(records, work, topic)
        except BaseException as exc:
            self._log_held(exc, topic)
            await self._rewind(msg, topic)
            if not isinstance(exc, Exception):
                raise  # cancellation (shutdown): rewound, and still propagated
            return
        SYSTEM_WIDE.labels(self._service).set(0)
        if await self._commit(msg, topic):  # a failed commit redelivers: keep remembering
            for record in records:
                self._dead_lettered.pop(_position(record), None)

    async def _handle(self, records: Sequence[Record], work: Work, topic: str) -> None:
        pending = [r for r in records if _position(r) not in self._dead_lettered]
        if not pending:
            return
        try:
            await self._attempt(pending, work, topic)
        except Exception as exc:
            if is_transient(exc):
                raise
            await self._isolate_poison(pending, work, topic)

    async def _attempt(self, records: Sequence[Record], work: Work, topic: str) -> None:
        async for attempt in backoff(self._hold_seconds):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    RETRIES.labels(self._service, topic).inc()
                try:
                    await work(records)
                except Exception as exc:
                    self._note_system_wide(exc, topic)
                    raise

    async def _isolate_poison(self, records: Sequence[Record], work: Work, topic: str) -> None:
        for record in records:
            try:
                await self._attempt((record,), work, topic)
            except Exception as exc:
                if is_transient(exc):
                    raise  # not the record's fault: the whole batch is rewound
                if record.topic == self._deadletter_topic:
                    self._skip_unhandled_deadletter(record, exc)
                    continue
                await self.dead_letter(record, exc)

    def _note_system_wide(self, exc: BaseException, topic: str) -> None:
        if not is_system_wide(exc):
            return
        SYSTEM_WIDE.labels(self._service).set(1)
        SYSTEM_WIDE_FAILURES.labels(self._service, type(exc).__name__).inc()
        log.error(
            "system-wide failure: holding the partition until an operator fixes it",
            topic=topic,
            error=type(exc).__name__,
            code=getattr(exc, "code", None),
        )

    def _log_held(self, exc: BaseException, topic: str) -> None:
        if not isinstance(exc, Exception):
            log.info("batch interrupted; rewinding", topic=topic)
        elif is_transient(exc):
            log.warning(
                "batch held: failure outlasted the hold window; rewinding",
                topic=topic,
                error=type(exc).__name__,
                failure=classify(exc).value,
            )
        else:  # a bug in the runner's own path: still never commit what was not handled
            # the type only: an exception's text may quote the record, i.e. personal data
            log.error("batch failed unexpectedly; rewinding", topic=topic, error=type(exc).__name__)

    async def _rewind(self, msg: KafkaMessage, topic: str) -> None:
        """Seek every partition of the batch back to its first record; commit nothing."""
        RETRIES.labels(self._service, topic).inc()
        if isinstance(msg.raw_message, list):
            # The in-memory test broker hands a batch over as a list and keeps no positions;
            # FastStream's nack expects aiokafka's tuple (records_of reads both).
            return
        try:
            await msg.nack()
        except KafkaError as exc:
            # The partition was revoked meanwhile: its new owner starts from the last commit,
            # which this batch never moved.
            log.warning("rewind skipped", topic=topic, error=type(exc).__name__)

    def _skip_unhandled_deadletter(self, record: Record, exc: BaseException) -> None:
        DEADLETTER_UNHANDLED.labels(self._service, record.topic).inc()
        log.error(
            "dead-letter record could not be handled; skipped, not dead-lettered again",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=type(exc).__name__,
        )

    async def dead_letter(self, record: Record, exc: BaseException) -> None:
        """Publish `record` to the dead-letter topic and wait for Kafka's acknowledgement.

        Raises `DeadLetterUnavailableError` (system-wide) when the topic cannot be written
        within the hold window: the poison record is then held with its batch, never skipped.
        """
        raw = record.value or b""
        source = events.SourcePosition(
            topic=record.topic, partition=record.partition, offset=record.offset
        )
        submission_id = ids.position_id(record.topic, record.partition, record.offset)
        event = events.build(
            events.MessageDeadLettered,
            submission_id=submission_id,
            reference=ids.reference(submission_id),
            payload=events.DeadLetterPayload(
                service=self._service,
                source=source,
                error=f"{type(exc).__name__}: {exc}"[:2000],
                raw=events.raw_text(raw),
                raw_size_bytes=len(raw),
                key=events.raw_text(record.key) if record.key is not None else None,
            ),
            discriminator=self._service,
            producer=self._producer,
        )
        outgoing = Outgoing(self._deadletter_topic, submission_id, event.model_dump_json().encode())
        try:
            async for attempt in backoff(self._hold_seconds):
                with attempt:
                    await produce_all(self._broker, [outgoing])
        except Exception as failure:
            unavailable = DeadLetterUnavailableError(
                f"{self._deadletter_topic} not writable: {type(failure).__name__}"
            )
            self._note_system_wide(unavailable, record.topic)
            raise unavailable from failure
        self._remember(record)
        DEADLETTERS.labels(self._service, record.topic).inc()
        log.error(
            "message dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=type(exc).__name__,
        )

    def _remember(self, record: Record) -> None:
        self._dead_lettered[_position(record)] = None
        while len(self._dead_lettered) > self.REMEMBERED:
            del self._dead_lettered[next(iter(self._dead_lettered))]

    async def _commit(self, msg: KafkaMessage, topic: str) -> bool:
        try:
            await msg.ack()
        except KafkaError as exc:
            # A rebalance or a coordinator outage: the batch will be seen again, harmlessly.
            COMMIT_FAILURES.labels(self._service, topic).inc()
            log.warning("offset commit failed", topic=topic, error=type(exc).__name__)
            return False
        return True


def _position(record: Record) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)
