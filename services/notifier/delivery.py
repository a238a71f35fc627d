"""Notifying a batch of routed submissions: ledger first, then SMTP, then the outcome events.

For each batch: parse every event (a malformed one raises, and the batch runner dead-letters
it), claim the whole batch in the ledger in one write (reading back only the outcomes of keys
claimed before), send the e-mails that have no outcome yet, several at a time over the mailer's
pool of connections, record the outcomes in bulk right after the server answered, and return
the `notification.*` events, in the batch's order, for the caller to produce before the commit.

Exactly once as the unit sees it: a routed event whose e-mail is in the ledger is answered with
its recorded outcome (`repeat=true`) and no e-mail. The one window for a second e-mail is a crash
between the server's acceptance and the ledger write; that repeat carries the same Message-ID,
so the unit's mail system can recognise it (docs/notifier.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import aiosmtplib

from services.notifier import metrics
from services.notifier.ledger import Ledger, LedgerEntry, Status
from services.notifier.mailer import Mailer, RefusedError, SmtpReply
from services.notifier.messages import Composer, notification_key
from shared import events
from shared.events import (
    NotificationFailed,
    NotificationPayload,
    NotificationSent,
    SubmissionRouted,
)
from shared.kafka import Outgoing, Record
from shared.logging import get_logger
from shared.retry import TransientError, backoff, is_transient

log = get_logger(__name__)

MAX_TRACKED_ATTEMPTS = 10_000


def parse(record: Record) -> SubmissionRouted:
    """Return the routed event in `record`, or raise (the runner dead-letters the record)."""
    return SubmissionRouted.model_validate_json(record.value or b"")


def retry_kind(exc: BaseException) -> str:
    """Return a bounded label for a transient failure, for the retries metric."""
    if isinstance(exc, TransientError):
        return "session"  # the server refuses our session or sender: configuration, alert
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return "4xx"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return "disconnected"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError | OSError):
        return "connect"
    return "other"


class Notifier:
    """Turns routed events into at most one e-mail each, and reports every outcome."""

    def __init__(
        self,
        *,
        composer: Composer,
        mailer: Mailer,
        ledger: Ledger,
        producer: events.Producer,
        notifications_topic: str,
        hold_seconds: float,
        ledger_flush_every: int = 50,
        parallel: int = 1,
    ) -> None:
        self._composer = composer
        self._parallel = max(1, parallel)
        self._flush_every = ledger_flush_every
        self._mailer = mailer
        self._ledger = ledger
        self._producer = producer
        self._topic = notifications_topic
        self._hold_seconds = hold_seconds
        # Transient failures per notification, so the outcome says how many attempts it took.
        self._failures: dict[str, int] = {}

    async def notify(self, records: Sequence[Record]) -> list[Outgoing]:
        """Notify each routed event in `records`; return the outcome events to produce."""
        routed = [parse(record) for record in records]
        keys = [notification_key(r.submission_id, r.payload.decision.unit) for r in routed]
        known = await self._ledger.claim(list(dict.fromkeys(keys)))
        fresh: dict[str, SubmissionRouted] = {}
        for event, key in zip(routed, keys, strict=True):
            if key not in known:
                fresh.setdefault(key, event)  # the same event twice in one batch: one e-mail
        sent = await self._send_all(fresh)
        outgoing: list[Outgoing] = []
        for event, key in zip(routed, keys, strict=True):
            entry = known.get(key)
            repeat = entry is not None
            if entry is None:
                entry = known[key] = sent[key]  # a later copy in this batch is a repeat
            else:
                metrics.LEDGER_HITS.labels(entry.unit).inc()
            metrics.EMAILS.labels(entry.unit, "repeat" if repeat else entry.status).inc()
            outgoing.append(self._outcome(event, entry, repeat=repeat))
        return outgoing

    async def _send_all(self, fresh: dict[str, SubmissionRouted]) -> dict[str, LedgerEntry]:
        """Send every e-mail of `fresh` over `parallel` workers; return the outcomes by key.

        Each worker stops at its first failure, and all are awaited before the first failure
        is raised, so nothing is still sending once the batch is retried. Whatever was sent is
        recorded in the ledger before this returns or raises, one bulk write per N e-mails
        overlapping the next SMTP exchanges.
        """
        done: dict[str, LedgerEntry] = {}
        unrecorded: list[LedgerEntry] = []
        writes: list[asyncio.Task[None]] = []
        work = iter(fresh.items())  # shared: each item is taken by exactly one worker

        async def worker() -> None:
            nonlocal unrecorded
            for key, event in work:
                entry = done[key] = await self._send(event, key)
                unrecorded.append(entry)
                if len(unrecorded) >= self._flush_every:
                    writes.append(asyncio.create_task(self._record(unrecorded)))
                    unrecorded = []

        try:
            workers = min(self._parallel, len(fresh))
            failures = await asyncio.gather(
                *(worker() for _ in range(workers)), return_exceptions=True
            )
        finally:
            if unrecorded:
                writes.append(asyncio.create_task(self._record(unrecorded)))
            if writes:
                # Shielded: a shutdown mid-batch must not lose the record of e-mails already sent.
                await asyncio.shield(asyncio.gather(*writes))
        for failure in failures:
            if isinstance(failure, BaseException):
                raise failure
        return done

    async def _send(self, event: SubmissionRouted, key: str) -> LedgerEntry:
        decision = event.payload.decision
        if decision.unit not in self._composer.units:
            log.warning("unit not in units.yaml: sending without personal data", unit=decision.unit)
        email = self._composer.compose(event)
        status: Status = "sent"
        try:
            reply = await self._mailer.send(email)
        except RefusedError as exc:
            reply, status = SmtpReply(exc.code or 0, exc.reply), "failed"
            log.warning(
                "mail server refused the notification",
                reference=event.reference,
                unit=decision.unit,
                smtp_code=exc.code,
            )
        except Exception as exc:
            if is_transient(exc):
                self._count_failure(key)
                metrics.SMTP_RETRIES.labels(retry_kind(exc)).inc()
            raise
        else:
            received_at = event.payload.submission.received_at
            metrics.ACCEPTED_TO_EMAILED.observe((datetime.now(UTC) - received_at).total_seconds())
            log.info(
                "notification sent",
                reference=event.reference,
                unit=decision.unit,
                rule=decision.rule_id,
            )
        return LedgerEntry(
            key=key,
            submission_id=event.submission_id,
            reference=event.reference,
            unit=decision.unit,
            mailbox=decision.mailbox,
            status=status,
            message_id=email.message_id,
            smtp_code=reply.code or None,
            smtp_reply=reply.text[:1000],
            attempts=self._failures.pop(key, 0) + 1,
            recorded_at=datetime.now(UTC),
        )

    def _count_failure(self, key: str) -> None:
        if len(self._failures) >= MAX_TRACKED_ATTEMPTS and key not in self._failures:
            self._failures.clear()  # keys of partitions we lost in a rebalance; only a count
        self._failures[key] = self._failures.get(key, 0) + 1

    async def _record(self, entries: Sequence[LedgerEntry]) -> None:
        # The e-mails are out; keep trying to record them rather than send them again on a retry.
        async for attempt in backoff(self._hold_seconds * 10):
            with attempt:
                await self._ledger.record_many(entries)

    def _outcome(self, event: SubmissionRouted, entry: LedgerEntry, *, repeat: bool) -> Outgoing:
        cls: type[NotificationSent | NotificationFailed] = (
            NotificationSent if entry.status == "sent" else NotificationFailed
        )
        outcome = events.build(
            cls,
            submission_id=event.submission_id,
            reference=event.reference,
            payload=NotificationPayload(
                unit=entry.unit,
                mailbox=entry.mailbox,
                message_id=entry.message_id,
                smtp_code=entry.smtp_code,
                smtp_reply=entry.smtp_reply,
                attempts=entry.attempts,
                repeat=repeat,
            ),
            # The routed event's id is content-aware: the outcome of an edited resubmission's
            # decision is a new event (a repeat, with nothing sent), not a copy of the first.
            discriminator=f"{event.event_id}:{entry.unit}",
            producer=self._producer,
            correlation_id=event.correlation_id,
        )
        return Outgoing(self._topic, event.submission_id, outcome.model_dump_json().encode())
