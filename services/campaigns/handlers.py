"""The campaigns service's Kafka subscriber: thin; the work is in `decisions.Campaigns`."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from structlog.contextvars import bound_contextvars

from services.campaigns.decisions import SERVICE, Campaigns
from services.campaigns.settings import CampaignsSettings
from shared.kafka import BatchRunner, Record, batch_subscriber, produce_all


def register(
    broker: KafkaBroker, settings: CampaignsSettings, campaigns: Campaigns, runner: BatchRunner
) -> None:
    """Subscribe the campaigns service to routed submissions on `broker`."""

    async def work(records: Sequence[Record]) -> None:
        await produce_all(broker, await campaigns.decide(records))

    @batch_subscriber(
        broker,
        settings.routed_topic,
        group_id=settings.group_id,
        settings=settings.kafka,
        description="Routed submissions, keyed by scope; publishes `submission.grouped`.",
    )
    async def on_routed(_bodies: list[bytes], msg: KafkaMessage) -> None:
        """Group a batch; publish once its decisions are durable; commit after Kafka acked."""
        with bound_contextvars(service=SERVICE, batch_size=len(_bodies)):
            await runner.run(msg, work)
