"""Notifying a batch of grouped submissions: ledger first, then SMTP, then the outcome events.

The notifier consumes `submission.grouped` (a routed submission with the campaign of
near-identical submissions it joined, if any), so the e-mail can say it is one of many.

For each batch: parse every event (a malformed one raises, and the batch runner dead-letters
it), claim the whole batch in the ledger in one write (reading back only the outcomes of keys
claimed before), send the e-mails that have no outcome yet, several at a time over the mailer's
pool of connections, record the outcomes in bulk right after the server answered, and return
the `notification.*` events, in the batch's order, for the caller to produce before the commit.

Exactly once as the unit sees it: a grouped event whose e-mail is in the ledger is answered with
its recorded outcome (`repeat=true`) and no e-mail. The one window for a second e-mail is a crash
between the server's acceptance and the ledger write; that repeat carries the same Message-ID,
so the unit's mail system can recognise it (docs/notifier.md).

With a `Triage` (the app always has one), the fresh notifications of a batch are split first:
those a calm mailbox gets one by one are e-mailed here; a surge's and a campaign's later copies
are set aside, durably, for the mailbox's next digest (`services/notifier/triage.py`,
docs/digests.md), and their outcomes are published by the digest sender once it is out.

A recipient that refuses for now (4xx to RCPT TO) does not hold the batch: its notification is
parked in the deferred queue (`services/notifier/deferred.py`) before the batch commits, gets no
outcome yet, and is retried on a schedule by the retrier; every other e-mail goes out as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import aiosmtplib

from services.notifier import metrics
from services.notifier.deferred import DeferredItem, DeferredQueue, wait_after
from services.notifier.digests import DigestItem
from services.notifier.ledger import Ledger, LedgerEntry, Status
from services.notifier.mailer import DeferredError, Mailer, RefusedError, SmtpReply
from services.notifier.messages import Composer, message_id, notification_key
from services.notifier.triage import Triage
from shared import events
from shared.events import (
    DeferredPayload,
    DigestRef,
    NotificationDeferred,
    NotificationFailed,
    NotificationPayload,
    NotificationSent,
    SubmissionGrouped,
)
from shared.kafka import Outgoing, Record
from shared.logging import get_logger
from shared.retry import TransientError, backoff, is_transient

log = get_logger(__name__)

MAX_TRACKED_ATTEMPTS = 10_000


def parse(record: Record) -> SubmissionGrouped:
    """Return the grouped event in `record`, or raise (the runner dead-letters the record)."""
    return SubmissionGrouped.model_validate_json(record.value or b"")


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


class About(Protocol):
    """What an outcome event names: a grouped event, or a digest item made from one."""

    @property
    def submission_id(self) -> str:
        """The submission's id."""
        ...

    @property
    def reference(self) -> str:
        """The submission's reference."""
        ...

    @property
    def event_id(self) -> str:
        """The consumed grouped event's id (the outcome's id derives from it)."""
        ...

    @property
    def correlation_id(self) -> str:
        """Carried from the consumed event."""
        ...


@dataclass(frozen=True, slots=True)
class Schedule:
    """How a refused recipient is retried (`DeferralSettings`, in what the notifier needs)."""

    park_after_seconds: float = 180.0
    retry_initial_seconds: float = 5.0
    retry_max_seconds: float = 300.0
    give_up_seconds: float = 5 * 24 * 3600.0


class Notifier:
    """Turns grouped events into at most one e-mail each, and reports every outcome."""

    def __init__(
        self,
        *,
        composer: Composer,
        mailer: Mailer,
        ledger: Ledger,
        queue: DeferredQueue,
        producer: events.Producer,
        notifications_topic: str,
        ledger_write_seconds: float,
        schedule: Schedule | None = None,
        ledger_flush_every: int = 50,
        parallel: int = 1,
        triage: Triage | None = None,
    ) -> None:
        self._composer = composer
        self._queue = queue
        self._triage = triage
        self.schedule = schedule or Schedule()
        # Ledger writes of e-mails already sent, awaited at shutdown before MongoDB closes.
        self._writes: set[asyncio.Task[None]] = set()
        self._parallel = max(1, parallel)
        self._flush_every = ledger_flush_every
        self._mailer = mailer
        self._ledger = ledger
        self._producer = producer
        self._topic = notifications_topic
        self._ledger_write_seconds = ledger_write_seconds
        # Transient failures per notification, so the outcome says how many attempts it took.
        self._failures: dict[str, int] = {}

    async def notify(self, records: Sequence[Record]) -> list[Outgoing]:
        """Notify each grouped event in `records`; return the outcome events to produce."""
        grouped = [parse(record) for record in records]
        keys = [notification_key(g.submission_id, g.payload.decision.unit) for g in grouped]
        distinct = list(dict.fromkeys(keys))
        # Parked and set aside are read before the ledger: the retrier and the digest sender
        # record an outcome before they let go of a key, so a key is always found in one of
        # them (docs/notifier.md, docs/digests.md).
        parked = await self._queue.parked(distinct)
        again = await self._ledger.claim_keys(distinct)
        waiting = set()
        if again and self._triage is not None:
            waiting = await self._triage.waiting([k for k in distinct if k in again])
        known = await self._ledger.outcomes([k for k in distinct if k in again])
        waiting -= known.keys()
        fresh: dict[str, SubmissionGrouped] = {}
        for event, key in zip(grouped, keys, strict=True):
            if key not in known and key not in parked and key not in waiting:
                fresh.setdefault(key, event)  # the same event twice in one batch: one e-mail
        if self._triage is not None:
            fresh, aside = await self._triage.split(fresh)
            waiting.update(item.key for item in aside)
        sent = await self._send_all(fresh)
        outgoing: list[Outgoing] = []
        tally: Counter[str] = Counter()
        for event, key in zip(grouped, keys, strict=True):
            entry = known.get(key)
            repeat = entry is not None
            if entry is None:
                if key in waiting:
                    continue  # its digest publishes the outcome
                new = None if key in parked else sent[key]
                if new is None:
                    parked.add(key)  # the retrier owns it now, and publishes its outcome
                    continue
                entry = known[key] = new  # a later copy in this batch is a repeat
            else:
                metrics.LEDGER_HITS.labels(entry.unit).inc()
            outcome = "repeat" if repeat else entry.status
            metrics.EMAILS.labels(entry.unit, outcome).inc()
            tally[outcome] += 1
            outgoing.append(self._outcome(event, entry, repeat=repeat))
        if outgoing or parked or waiting:
            # One line per batch, not per e-mail: at a few hundred e-mails a second a line each
            # cost the notifier a tenth of its CPU (bench/README.md). The outcome events name
            # every submission; `SADA_LOG_LEVEL=DEBUG` logs each e-mail too.
            log.info(
                "notifications sent",
                records=len(records),
                parked=len(parked),
                for_digests=len(waiting),
                **tally,
            )
        return outgoing

    async def _send_all(self, fresh: dict[str, SubmissionGrouped]) -> dict[str, LedgerEntry | None]:
        """Send every e-mail of `fresh` over `parallel` workers; return the outcomes by key.

        None as an outcome: the recipient refused for now, and the notification is parked.

        Each worker stops at its first failure, and all are awaited before the first failure
        is raised, so nothing is still sending once the batch is retried. Whatever was sent is
        recorded in the ledger before this returns or raises, one bulk write per N e-mails
        overlapping the next SMTP exchanges.
        """
        done: dict[str, LedgerEntry | None] = {}
        unrecorded: list[LedgerEntry] = []
        writes: list[asyncio.Task[None]] = []
        work = iter(fresh.items())  # shared: each item is taken by exactly one worker

        async def worker() -> None:
            nonlocal unrecorded
            for key, event in work:
                result = await self._send(event, key)
                if isinstance(result, DeferredError):
                    await self._park(event, key, result)
                    done[key] = None
                    continue
                entry = done[key] = result
                unrecorded.append(entry)
                if len(unrecorded) >= self._flush_every:
                    writes.append(self._record_soon(unrecorded))
                    unrecorded = []

        try:
            workers = min(self._parallel, len(fresh))
            failures = await asyncio.gather(
                *(worker() for _ in range(workers)), return_exceptions=True
            )
        finally:
            if unrecorded:
                writes.append(self._record_soon(unrecorded))
            if writes:
                # Shielded: a shutdown mid-batch must not lose the record of e-mails already sent.
                await asyncio.shield(asyncio.gather(*writes))
        for failure in failures:
            if isinstance(failure, BaseException):
                raise failure
        return done

    async def _send(
        self, event: SubmissionGrouped, key: str, *, attempts: int | None = None
    ) -> LedgerEntry | DeferredError:
        """Send the e-mail of `event`; return its ledger entry, or the refusal for now.

        `attempts` is the number this try makes (default: counted here, for a batch).
        """
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
        except DeferredError as exc:
            log.warning(
                "mail server refused the recipient for now",
                reference=event.reference,
                unit=decision.unit,
                smtp_code=exc.code,
            )
            return exc
        except Exception as exc:
            if is_transient(exc):
                self._count_failure(key)
                metrics.SMTP_RETRIES.labels(retry_kind(exc)).inc()
            raise
        else:
            received_at = event.payload.submission.received_at
            metrics.ACCEPTED_TO_EMAILED.observe((datetime.now(UTC) - received_at).total_seconds())
            # At DEBUG: a batch logs one summary line (`notify`), a parked one its own (`send`).
            # Checked first: structlog runs its processors before the level filter.
            if log.is_enabled_for(logging.DEBUG):
                log.debug(
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
            attempts=attempts if attempts is not None else self._failures.pop(key, 0) + 1,
            recorded_at=datetime.now(UTC),
        )

    async def _park(self, event: SubmissionGrouped, key: str, refusal: DeferredError) -> None:
        """Hand the notification to the retrier: stored before the batch may commit."""
        now = datetime.now(UTC)
        attempts = self._failures.pop(key, 0) + 1
        first_wait = wait_after(
            attempts, self.schedule.retry_initial_seconds, self.schedule.retry_max_seconds
        )
        await self._queue.park(
            DeferredItem(
                key=key,
                submission_id=event.submission_id,
                reference=event.reference,
                unit=event.payload.decision.unit,
                event=event.model_dump_json(),
                first_refused_at=now,
                next_attempt_at=now + first_wait,
                attempts=attempts,
                announced=False,
                smtp_code=refusal.code,
                smtp_reply=refusal.reply[:1000],
            )
        )
        metrics.EMAILS.labels(event.payload.decision.unit, "parked").inc()

    async def send(
        self, event: SubmissionGrouped, key: str, *, attempts: int
    ) -> LedgerEntry | DeferredError:
        """Send one parked notification again (the retrier's way in); see `_send`."""
        result = await self._send(event, key, attempts=attempts)
        if isinstance(result, LedgerEntry) and result.status == "sent":
            log.info(
                "parked notification sent",
                reference=event.reference,
                unit=event.payload.decision.unit,
                attempts=attempts,
            )
        return result

    def entry_for_refusal(
        self, event: SubmissionGrouped, key: str, refusal: DeferredError, *, attempts: int
    ) -> LedgerEntry:
        """Return the `failed` ledger entry of a notification refused for too long."""
        decision = event.payload.decision
        return LedgerEntry(
            key=key,
            submission_id=event.submission_id,
            reference=event.reference,
            unit=decision.unit,
            mailbox=decision.mailbox,
            status="failed",
            message_id=message_id(
                event.submission_id, decision.unit, self._composer.message_id_domain
            ),
            smtp_code=refusal.code,
            smtp_reply=refusal.reply[:1000],
            attempts=attempts,
            recorded_at=datetime.now(UTC),
        )

    def _count_failure(self, key: str) -> None:
        if len(self._failures) >= MAX_TRACKED_ATTEMPTS and key not in self._failures:
            self._failures.clear()  # keys of partitions we lost in a rebalance; only a count
        self._failures[key] = self._failures.get(key, 0) + 1

    def _record_soon(self, entries: Sequence[LedgerEntry]) -> asyncio.Task[None]:
        task = asyncio.create_task(self.record(entries))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    async def record(self, entries: Sequence[LedgerEntry]) -> None:
        """Record e-mails that are out, retrying while MongoDB is away.

        For up to `ledger_write_seconds`, which fits inside max.poll.interval
        (`settings.budget_problems`).
        """
        # Keep trying to record them rather than send them again on a retry.
        async for attempt in backoff(self._ledger_write_seconds):
            with attempt:
                await self._ledger.record_many(entries)

    async def drain(self, seconds: float) -> None:
        """At shutdown: wait up to `seconds` for ledger writes in flight, before MongoDB closes.

        The batch that started them may have been cancelled by the broker's graceful timeout;
        the writes are their own tasks and finish here (a write still failing after that is
        the documented crash window).
        """
        pending = set(self._writes)
        if pending:
            log.info("waiting for ledger writes before stopping", writes=len(pending))
            await asyncio.wait(pending, timeout=seconds)

    def outcome(self, event: SubmissionGrouped, entry: LedgerEntry, *, repeat: bool) -> Outgoing:
        """Return the `notification.sent`/`.failed` record for `entry`."""
        return self._outcome(event, entry, repeat=repeat)

    def deferred(self, event: SubmissionGrouped, item: DeferredItem) -> Outgoing:
        """Return the `notification.deferred` record of the parked `item`."""
        decision = event.payload.decision
        payload = DeferredPayload(
            unit=decision.unit,
            mailbox=decision.mailbox,
            message_id=message_id(
                event.submission_id, decision.unit, self._composer.message_id_domain
            ),
            smtp_code=item.smtp_code,
            smtp_reply=item.smtp_reply,
            attempts=item.attempts,
            deferred_since=item.first_refused_at,
            next_attempt_at=item.next_attempt_at,
            give_up_at=item.first_refused_at + timedelta(seconds=self.schedule.give_up_seconds),
        )
        return self._about(NotificationDeferred, event, payload, decision.unit)

    def outcome_of(
        self, item: DigestItem, entry: LedgerEntry, *, repeat: bool, digest: DigestRef | None
    ) -> Outgoing:
        """Return the outcome record of a submission that went out in a digest."""
        return self._outcome(item, entry, repeat=repeat, digest=digest)

    def _outcome(
        self,
        event: About,
        entry: LedgerEntry,
        *,
        repeat: bool,
        digest: DigestRef | None = None,
    ) -> Outgoing:
        cls: type[NotificationSent | NotificationFailed] = (
            NotificationSent if entry.status == "sent" else NotificationFailed
        )
        payload = NotificationPayload(
            unit=entry.unit,
            mailbox=entry.mailbox,
            message_id=entry.message_id,
            smtp_code=entry.smtp_code,
            smtp_reply=entry.smtp_reply,
            attempts=entry.attempts,
            repeat=repeat,
            digest=digest,
        )
        return self._about(cls, event, payload, entry.unit)

    def _about(
        self,
        cls: type[NotificationSent | NotificationFailed | NotificationDeferred],
        event: About,
        payload: NotificationPayload | DeferredPayload,
        unit: str,
    ) -> Outgoing:
        """Return the record of a `notification.*` event about the grouped `event` for `unit`."""
        built = events.build(
            cls,
            submission_id=event.submission_id,
            reference=event.reference,
            payload=payload,
            # The grouped event's id derives from the routed one's, which is content-aware:
            # what follows an edited resubmission's decision is a new event (a repeat, with
            # nothing sent), not a copy of the first.
            discriminator=f"{event.event_id}:{unit}",
            producer=self._producer,
            correlation_id=event.correlation_id,
        )
        return Outgoing(self._topic, event.submission_id, built.model_dump_json().encode())
