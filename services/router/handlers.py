"""The router's Kafka subscriber: thin; the work is in `routing.route_records`."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from structlog.contextvars import bound_contextvars

from services.router import routing
from services.router.rules import RoutingConfig
from services.router.settings import RouterSettings
from shared import events
from shared.kafka import BatchRunner, Record, batch_subscriber, produce_all


def register(
    broker: KafkaBroker,
    *,
    settings: RouterSettings,
    config: RoutingConfig,
    runner: BatchRunner,
    producer: events.Producer,
) -> None:
    """Subscribe the router to accepted submissions on `broker`."""

    @batch_subscriber(
        broker,
        settings.accepted_topic,
        group_id=settings.group_id,
        settings=settings.kafka,
        description="Accepted submissions to classify; publishes `submission.routed`.",
    )
    async def on_accepted(_bodies: list[bytes], msg: KafkaMessage) -> None:
        """Route a batch, publish every decision, count them once Kafka acknowledged."""

        async def work(records: Sequence[Record]) -> None:
            batch = routing.route_records(
                records, config=config, producer=producer, topic=settings.routed_topic
            )
            await produce_all(broker, batch.outgoing)
            batch.count()

        with bound_contextvars(service=routing.SERVICE, rules_version=config.version[:12]):
            await runner.run(msg, work)
