"""The notifier's Kafka subscriber: a routed batch in, e-mails out, outcomes published."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.notifier.delivery import Notifier
from services.notifier.settings import NotifierSettings
from shared.kafka import BatchRunner, Record, batch_subscriber, produce_all


def register(
    broker: KafkaBroker, settings: NotifierSettings, notifier: Notifier, runner: BatchRunner
) -> None:
    """Subscribe the notifier to the routed topic."""

    async def work(records: Sequence[Record]) -> None:
        await produce_all(broker, await notifier.notify(records))

    @batch_subscriber(
        broker,
        settings.routed_topic,
        group_id=settings.group_id,
        settings=settings.kafka,
        description="E-mails each routed submission to its unit; publishes the outcome.",
    )
    async def on_routed(_bodies: list[bytes], msg: KafkaMessage) -> None:
        with structlog.contextvars.bound_contextvars(batch_size=len(_bodies)):
            await runner.run(msg, work)
