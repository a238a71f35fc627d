"""Kafka wiring with safe defaults, and the one way Sada consumes a batch.

aiokafka and FastStream default to at-most-once (acks=1, no idempotence, auto-commit,
ACK_FIRST, `latest`). Every broker and subscriber here is built by these factories so no
service can forget one of the safe settings. `BatchRunner` is the delivery policy in one place:
do the work, wait for Kafka to acknowledge what it produced, then commit; retry transient
failures while the partition waits; send a poison record to the dead-letter topic and move on.
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
from prometheus_client import REGISTRY, Counter

from shared import events, ids, topics
from shared.logging import get_logger
from shared.retry import backoff, is_transient
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

    - success: one commit for the batch, after the work (and its produces) finished;
    - transient failure: retried with backoff while the partition waits, then rewound and
      fetched again, so an outage of any length loses nothing and never spins hot;
    - any other failure: the batch is retried record by record to find the poison, which goes
      to `feedback.deadletter.v1` with its position and error; the rest proceed.
    """

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

    async def run(self, msg: KafkaMessage, work: Work) -> None:
        """Process the batch behind `msg` with `work`, then commit or rewind."""
        records = records_of(msg)
        topic = records[0].topic if records else "-"
        try:
            await self._attempt(records, work, topic)
        except Exception as exc:
            if is_transient(exc):
                log.warning(
                    "batch held: transient failure outlasted the hold window; rewinding",
                    topic=topic,
                    error=type(exc).__name__,
                )
                await msg.nack()
                return
            await self._isolate_poison(records, work, topic)
        await self._commit(msg, topic)

    async def _attempt(self, records: Sequence[Record], work: Work, topic: str) -> None:
        async for attempt in backoff(self._hold_seconds):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    RETRIES.labels(self._service, topic).inc()
                await work(records)

    async def _isolate_poison(self, records: Sequence[Record], work: Work, topic: str) -> None:
        for record in records:
            try:
                await self._attempt((record,), work, topic)
            except Exception as exc:
                if is_transient(exc):
                    raise
                await self.dead_letter(record, exc)

    async def dead_letter(self, record: Record, exc: BaseException) -> None:
        """Publish `record` to the dead-letter topic and wait for Kafka's acknowledgement."""
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
        log.error(
            "message dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=type(exc).__name__,
        )
        DEADLETTERS.labels(self._service, record.topic).inc()
        async for attempt in backoff(self._hold_seconds * 1000):
            with attempt:
                await produce_all(
                    self._broker,
                    [
                        Outgoing(
                            self._deadletter_topic, submission_id, event.model_dump_json().encode()
                        )
                    ],
                )

    async def _commit(self, msg: KafkaMessage, topic: str) -> None:
        try:
            await msg.ack()
        except KafkaError as exc:
            # A rebalance or a coordinator outage: the batch will be seen again, harmlessly.
            COMMIT_FAILURES.labels(self._service, topic).inc()
            log.warning("offset commit failed", topic=topic, error=type(exc).__name__)
