"""Running the real notifier app against the real Kafka, FerretDB and an SMTP sink.

Each test gets its own topics, consumer group and database. Tests that stop or misbehave the mail
server start their own sink (the local sink's handler, on a free port, with its own Maildir and
control file), because the shared sink on 127.0.0.1:1025 serves other engineers' tests too.
"""

from __future__ import annotations

import asyncio
import email
import json
import mailbox
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiosmtpd.smtp import SMTP
from faststream.kafka import KafkaBroker

from deploy.local.smtp_sink import ControlFile, MaildirHandler
from services.notifier.app import build
from services.notifier.settings import (
    DigestSettings,
    NotifierMongoSettings,
    NotifierSettings,
    SmtpSettings,
)
from shared.events import ANY_EVENT, AnyEvent, SubmissionGrouped
from shared.mongo import make_client
from shared.settings import KafkaSettings
from tests import infra


def settings_for(
    smtp_port: int, *, hold_seconds: float = 3.0, digest: DigestSettings | None = None
) -> NotifierSettings:
    """Return settings with topics, group and database no other test uses.

    Digests are off unless `digest` says otherwise: these tests count e-mails one by one.
    """
    return NotifierSettings(
        digest=digest or DigestSettings(enabled=False),
        kafka=KafkaSettings(
            bootstrap_servers=infra.KAFKA, hold_seconds=hold_seconds, batch_timeout_ms=50
        ),
        grouped_topic=infra.unique("it-notifier-grouped"),
        notifications_topic=infra.unique("it-notifier-notifications"),
        group_id=infra.unique("it-notifier"),
        mongo=NotifierMongoSettings(uri=infra.MONGO_URI, database=infra.unique("it_notifier")),
        smtp=SmtpSettings(host=infra.SMTP_HOST, port=smtp_port, timeout=5.0),
    )


async def create_topics(*names: str) -> None:
    """Create single-partition topics (the broker would, but a consumer may start first)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        await admin.close()


@asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[KafkaBroker]:
    """Run the notifier app (its real lifespan); yield its broker; drop its database after."""
    await create_topics(settings.grouped_topic, settings.notifications_topic)
    app = build(settings)
    try:
        async with app.router.lifespan_context(app):
            yield app.state.broker
    finally:
        client = make_client(settings.mongo, app_name="it-notifier")
        await client.drop_database(settings.mongo.database)
        await client.close()


async def publish(broker: KafkaBroker, topic: str, events: Iterable[SubmissionGrouped]) -> None:
    """Publish grouped events, keyed by submission id, and wait for Kafka's acknowledgement."""
    for event in events:
        await broker.publish(
            event.model_dump_json().encode(), topic, key=event.submission_id.encode()
        )


async def read_events(
    topic: str, until: Callable[[list[AnyEvent]], bool], *, within: float = 30.0
) -> list[AnyEvent]:
    """Return every event on `topic` (one partition) once `until` holds for them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.KAFKA, enable_auto_commit=False)
    await consumer.start()
    found: list[AnyEvent] = []
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        async with asyncio.timeout(within):
            while not until(found):
                batch = await consumer.getmany(partition, timeout_ms=200)
                found.extend(ANY_EVENT.validate_json(r.value) for r in batch.get(partition, ()))
        # Anything more (a duplicate we must not have) would already be on the topic by now.
        await asyncio.sleep(0.5)
        batch = await consumer.getmany(partition, timeout_ms=200)
        found.extend(ANY_EVENT.validate_json(r.value) for r in batch.get(partition, ()))
    finally:
        await consumer.stop()
    return found


def mails_in(maildir: Path, message_ids: Iterable[str]) -> list[EmailMessage]:
    """Return the messages in `maildir` carrying one of `message_ids` (a duplicate twice)."""
    wanted = [mid.encode() for mid in message_ids]
    if not (maildir / "new").exists():
        return []
    box = mailbox.Maildir(maildir, factory=None, create=False)
    found = []
    for key in box.iterkeys():
        with suppress(KeyError):  # delivered while we list: seen on the next poll
            raw = box.get_bytes(key)
            if any(mid in raw for mid in wanted):
                parsed = email.message_from_bytes(raw, policy=policy.default)
                assert isinstance(parsed, EmailMessage)
                found.append(parsed)
    return found


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((infra.SMTP_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class OwnSink:
    """The local SMTP sink's handler on a port of our own, which a test may stop and restart."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.maildir = root / "mail"
        self.control = root / "smtp-control.json"
        self._handler = MaildirHandler(self.maildir, ControlFile(self.control))
        self._server: asyncio.Server | None = None
        self._sessions: list[SMTP] = []

    async def start(self) -> None:
        """Listen on `port` (the same one after a restart)."""
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            session = SMTP(
                self._handler,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname="own-sink.localhost",
                loop=loop,
            )
            self._sessions.append(session)
            return session

        self._server = await loop.create_server(factory, host=infra.SMTP_HOST, port=self.port)

    async def stop(self) -> None:
        """Stop listening and drop every open session, as a mail server going down does."""
        if self._server is not None:
            self._server.close()
        for session in self._sessions:
            transport: Any = getattr(session, "transport", None)
            if transport is not None:
                transport.close()
        self._sessions.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def faults(self, **settings: Any) -> None:
        """Switch fault injection (`tempfail`, `reject_rcpt`, `full_rcpt`); none switches it off."""
        if settings:
            self.control.write_text(json.dumps(settings), encoding="utf-8")
        else:
            self.control.unlink(missing_ok=True)

    def mails(self, message_ids: Iterable[str]) -> list[EmailMessage]:
        """Return the messages this sink stored carrying one of `message_ids`."""
        return mails_in(self.maildir, message_ids)
