"""Where the real local infrastructure listens (deploy/local/infra.sh), for tests that need it."""

from __future__ import annotations

import asyncio
import email
import mailbox
import os
import socket
import uuid
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("SADA_RUN_DIR", ROOT / ".run"))
# The same variables deploy/local/infra.sh reads, so a second stack on other ports can be tested.
KAFKA_PORT = int(os.environ.get("SADA_KAFKA_PORT", "9092"))
MONGO_PORT = int(os.environ.get("SADA_MONGO_PORT", "27017"))
KAFKA = os.environ.get("SADA_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{KAFKA_PORT}")
MONGO_URI = os.environ.get("SADA_MONGO__URI", f"mongodb://127.0.0.1:{MONGO_PORT}/")
SMTP_HOST = "127.0.0.1"
SMTP_PORT = int(os.environ.get("SADA_SMTP_PORT", "1025"))
MAILDIR = RUN_DIR / "mail"
# The production-transport listeners `make test` asks deploy/local/infra.sh for (see Makefile):
# Kafka SASL_SSL with SCRAM-SHA-512, FerretDB over TLS, an SMTP sink port with STARTTLS.
KAFKA_SASL_PORT = int(os.environ.get("SADA_KAFKA_SASL_PORT") or "9094")
MONGO_TLS_PORT = int(os.environ.get("SADA_MONGO_TLS_PORT") or "27019")
SMTP_STARTTLS_PORT = int(os.environ.get("SADA_SMTP_STARTTLS_PORT") or "1587")
TLS_DIR = RUN_DIR / "tls"  # ca.crt: the local CA every TLS listener's certificate comes from
SASL_DIR = RUN_DIR / "kafka" / "sasl"  # username, password: the SCRAM user
SECURE_INFRA_HINT = (
    "start them with `make infra-up` under `make test`/`make integration`, or "
    "`SADA_KAFKA_SASL_PORT=9094 SADA_MONGO_TLS_PORT=27019 SADA_SMTP_STARTTLS_PORT=1587 "
    "deploy/local/infra.sh up`"
)
SMTP_CONTROL = RUN_DIR / "smtp-control.json"


def unique(prefix: str) -> str:
    """Return a name no other test run uses, so tests share the infrastructure safely."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def require_listening(name: str, host: str, port: int) -> None:
    """Fail (never skip) with a clear message when a piece of infrastructure is not up."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        msg = f"{name} is not listening on {host}:{port} ({exc}); run `make infra-up` first"
        raise AssertionError(msg) from exc


async def wait_until(predicate: Callable[[], bool], *, within: float = 30.0) -> None:
    """Poll `predicate` (external state: a broker, a database, a mailbox) until true or fail."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the state lives outside this process
            await asyncio.sleep(0.05)


def sink_messages(maildir: Path = MAILDIR) -> list[EmailMessage]:
    """Return every message the SMTP sink stored, parsed with the modern e-mail policy."""
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir, factory=None, create=False)
    messages = []
    for key in box.iterkeys():
        parsed = email.message_from_bytes(box.get_bytes(key), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


async def create_topics(*names: str) -> None:
    """Create single-partition topics on the local broker (names from `unique`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        await admin.close()


async def committed(group: str, topic: str) -> int | None:
    """Return `group`'s committed offset on partition 0 of `topic`, as the broker has it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=group)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await consumer.stop()
