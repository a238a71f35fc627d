"""The archive's one subscriber: every batch from every topic goes to `Archiver.archive`."""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.archive.archiver import Archiver
from services.archive.settings import ArchiveSettings
from shared import version
from shared.kafka import BatchRunner, batch_subscriber

SERVICE = "archive"


def register(broker: KafkaBroker, settings: ArchiveSettings, archiver: Archiver) -> None:
    """Subscribe the archive to all of its topics with one batch subscriber."""
    runner = BatchRunner(
        broker, service=SERVICE, version=version.current(), hold_seconds=settings.kafka.hold_seconds
    )

    @batch_subscriber(
        broker,
        *settings.topics.all(),
        group_id=settings.group_id,
        settings=settings.kafka,
        description="Archive every event of every topic; commit once stored.",
    )
    async def on_any_topic(_bodies: list[bytes], msg: KafkaMessage) -> None:
        """Archive a batch; the runner commits it once durable, holds it during an outage."""
        await runner.run(msg, archiver.archive)
