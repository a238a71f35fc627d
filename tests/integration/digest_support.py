"""A notifier's digest path on the real FerretDB, without Kafka: the pieces `app.build` wires."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord
from pymongo import AsyncMongoClient

from services.notifier.deferred import MongoDeferredQueue
from services.notifier.delivery import Notifier
from services.notifier.digest_sender import DigestSender, mongo_leases
from services.notifier.digests import DigestPolicy, policies
from services.notifier.ledger import MongoLedger
from services.notifier.mailer import SmtpReply
from services.notifier.messages import Email
from services.notifier.pending import MongoPendingStore
from services.notifier.triage import Triage
from shared import events
from shared.directory import load_units
from shared.events import SubmissionGrouped
from shared.kafka import Outgoing, Record
from shared.mongo import Document
from tests import notifier_support as support
from tests.component.test_notifier_service import Clock


@dataclass
class Mailbox:
    """A mailer that keeps what it was given; `fail_after_accepting` loses the reply once."""

    sent: list[Email] = field(default_factory=list)
    fail_after_accepting: int = 0
    down: bool = False

    async def send(self, email: Email) -> SmtpReply:
        if self.down:
            raise ConnectionRefusedError("mail server down")
        self.sent.append(email)
        if self.fail_after_accepting:
            self.fail_after_accepting -= 1
            raise TimeoutError("the reply to DATA was lost")
        return SmtpReply(250, "2.0.0 queued")

    async def close(self) -> None:
        return None


def record(event: SubmissionGrouped, offset: int = 0) -> Record:
    """Return `event` as the consumer would hand it over."""
    value = event.model_dump_json().encode()
    return ConsumerRecord(
        "feedback.grouped.v1", 0, offset, 0, 0, None, value, None, 0, len(value), ()
    )


def surge(n: int, *, legislation_ref: str | None = None) -> list[SubmissionGrouped]:
    """Return `n` distinct grouped events for the Voice-of-Customer unit (or the Office)."""
    out = []
    for i in range(n):
        raw: dict[str, Any] = {
            **support.ENGLISH_SAMPLE,
            "channel_ref": f"SURGE-{uuid.uuid4().hex}-{i}",
            "subject": f"Surge item {i}",
        }
        if legislation_ref:
            raw = {**raw, "channel": "istitlaa", "legislation_ref": legislation_ref}
        out.append(support.grouped(raw))
    return out


@dataclass
class Stack:
    """The notifier's consumer path and one digest sender, over one real database."""

    notifier: Notifier
    sender: DigestSender
    mailbox: Mailbox
    clock: Clock
    published: list[Outgoing]
    store: MongoPendingStore
    ledger: MongoLedger

    def outcomes(self) -> list[dict[str, Any]]:
        """Return the published outcome events as dicts."""
        import orjson

        return [orjson.loads(o.value) for o in self.published]


class TestDigestComposer:
    """Stands in for the digest template: a parseable e-mail with the digest's identity."""

    __test__ = False
    message_id_domain = "sada.notifier"

    def compose(self, digest: Any, *, list_limit: int) -> Email:
        from services.notifier.digests import digest_message_id

        mid = digest_message_id(digest, "sada.notifier")
        body = "\n".join(item.reference for item in digest.items)
        return Email(
            data=f"Message-ID: {mid}\r\n\r\n{body}\r\n".encode(),
            sender="sada@moj.gov.sa",
            message_id=mid,
            recipient=digest.mailbox,
            subject=f"digest of {len(digest.items)}",
            text=body,
            html=body,
        )


def build_stack(
    client: AsyncMongoClient[Document],
    database: str,
    *,
    policy: DigestPolicy,
    clock: Clock,
    mailbox: Mailbox | None = None,
    holder: str = "it-holder",
    lease_seconds: float = 30.0,
) -> Stack:
    """Return the pieces `services.notifier.app.build` wires, on `database`."""
    mailbox = mailbox or Mailbox()
    store = MongoPendingStore(client, database)
    ledger = MongoLedger(client, database)
    composer = support.composer()
    units = load_units()
    triage = Triage(
        store=store,
        default=policy,
        policies=policies(policy, units),
        personal=composer.personal_data,
        clock=clock,
        writer=holder,
    )
    notifier = Notifier(
        composer=composer,
        mailer=mailbox,
        ledger=ledger,
        queue=MongoDeferredQueue(client, database),
        producer=events.Producer(service="notifier", version="test"),
        notifications_topic="feedback.notifications.v1",
        ledger_write_seconds=5.0,
        triage=triage,
    )
    published: list[Outgoing] = []

    async def publish(outgoing: Sequence[Outgoing]) -> None:
        published.extend(outgoing)

    sender = DigestSender(
        store=store,
        triage=triage,
        ledger=ledger,
        mailer=mailbox,
        composer=TestDigestComposer(),
        outcomes=notifier,
        publish=publish,
        lease_for=mongo_leases(store.leases, ttl=lease_seconds, holder=holder),
        poll_seconds=0.1,
        settle_seconds=1.0,
        lease_seconds=lease_seconds,
        publish_seconds=5.0,
        clock=clock,
    )
    return Stack(notifier, sender, mailbox, clock, published, store, ledger)
