"""The notifier's Kafka subscriber: a grouped batch in, e-mails out, outcomes published."""

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
    """Subscribe the notifier to the grouped topic (routed submissions with their campaign)."""

    async def work(records: Sequence[Record]) -> None:
        await produce_all(broker, await notifier.notify(records))

    @batch_subscriber(
        broker,
        settings.grouped_topic,
        group_id=settings.group_id,
        settings=settings.kafka,
        description="E-mails each routed submission to its unit, saying when it is part of a "
        "campaign; publishes the outcome.",
    )
    async def on_grouped(_bodies: list[bytes], msg: KafkaMessage) -> None:
        with structlog.contextvars.bound_contextvars(batch_size=len(_bodies)):
            await runner.run(msg, work)
