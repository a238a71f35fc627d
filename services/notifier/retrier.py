"""The retrier: a background task of every notifier that retries parked notifications when due.

Each look (every `SADA_DEFERRAL__POLL_SECONDS`) reads the due items of the deferred queue and,
for each one this notifier manages to take (`DeferredQueue.take`, one winner per attempt):

1. the ledger first: an outcome recorded by an earlier attempt that stopped before unparking
   is published again (`repeat: true`) and the item unparked, nothing sent;
2. send the e-mail again (same Message-ID);
3. accepted or refused for good (5xx): record the outcome in the ledger, publish
   `notification.sent` / `.failed`, then unpark: in this order, so that a redelivered grouped
   event always finds the key in the queue or in the ledger, never in neither;
4. refused for now again: reschedule with a doubling wait; once the next attempt would fall
   past the retry budget, publish `notification.deferred` (once); past `give_up_seconds`
   record and publish `notification.failed` with the last refusal;
5. a server-wide failure (connection refused, 421…): try again at the next step of the
   schedule; the grouped batches hold meanwhile, as for any outage.

Whatever the schedule, an item whose submission was received `personal_seconds` ago
(`SADA_RETENTION__PERSONAL_DAYS`, below the raw topic's retention) is not tried again: it is
recorded `failed` and published as `notification.failed` with its last refusal, and the
document, with the personal data it holds, deleted. So a mail server down for weeks cannot
keep a submitter's data here longer than Kafka keeps it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.notifier import metrics
from services.notifier.deferred import (
    DeferredItem,
    DeferredQueue,
    consumed_event,
    generation,
    wait_after,
)
from services.notifier.delivery import Notifier
from services.notifier.ledger import Ledger
from services.notifier.mailer import DeferredError
from shared.events import SubmissionGrouped
from shared.kafka import Outgoing
from shared.logging import get_logger
from shared.poller import Poller
from shared.retry import backoff

log = get_logger(__name__)

Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]
Clock = Callable[[], datetime]
DUE_PER_LOOK = 50


def _now() -> datetime:
    return datetime.now(UTC)


class Retrier(Poller):
    """Retries the parked notifications that are due, exactly once each as the unit sees it."""

    task_name = "sada-notifier-retrier"
    postponed = "deferred retries postponed"

    def __init__(
        self,
        *,
        notifier: Notifier,
        queue: DeferredQueue,
        ledger: Ledger,
        publish: Publish,
        poll_seconds: float,
        lease_seconds: float,
        publish_seconds: float,
        personal_seconds: float | None = None,
        clock: Clock = _now,
    ) -> None:
        self._notifier = notifier
        self._personal = personal_seconds
        self._queue = queue
        self._ledger = ledger
        self._publish = publish
        super().__init__(poll_seconds)
        self._lease = lease_seconds
        self._publish_seconds = publish_seconds
        self._clock = clock

    async def run_due(self) -> int:
        """Attempt every due item this notifier can take; return how many it attempted."""
        due = await self._queue.due(self._clock(), DUE_PER_LOOK)
        metrics.DEFERRED_DUE.set(len(due))
        attempted = 0
        for item in due:
            if self.stopping:
                break
            number = generation(item, self._clock(), self._lease)
            if number is None or not await self._queue.take(item.key, item.attempts, number):
                continue  # another notifier has it
            attempted += 1
            await self._attempt(item)
        return attempted

    async def _attempt(self, item: DeferredItem) -> None:
        event = consumed_event(item)
        unit = item.unit
        known = await self._ledger.claim([item.key])
        if item.key in known:
            await self._out([self._notifier.outcome(event, known[item.key], repeat=True)])
            await self._queue.remove(item.key)
            return
        if self._expired(event):
            await self._give_up(item, event)
            return
        attempts = item.attempts + 1
        try:
            result = await self._notifier.send(event, item.key, attempts=attempts)
        except Exception as exc:  # server-wide or unexpected: the schedule goes on
            log.warning("parked notification not sent", unit=unit, error=type(exc).__name__)
            metrics.DEFERRED_ATTEMPTS.labels(unit, "error").inc()
            await self._reschedule(item, event, attempts, item.smtp_code, item.smtp_reply)
            return
        if isinstance(result, DeferredError):
            give_up = item.first_refused_at + timedelta(
                seconds=self._notifier.schedule.give_up_seconds
            )
            if self._clock() < give_up:
                metrics.DEFERRED_ATTEMPTS.labels(unit, "refused").inc()
                await self._reschedule(item, event, attempts, result.code, result.reply)
                return
            result = self._notifier.entry_for_refusal(event, item.key, result, attempts=attempts)
        await self._notifier.record([result])
        await self._out([self._notifier.outcome(event, result, repeat=False)])
        await self._queue.remove(item.key)  # after the ledger: see the module docstring
        metrics.EMAILS.labels(unit, result.status).inc()
        metrics.DEFERRED_ATTEMPTS.labels(unit, result.status).inc()

    def _expired(self, event: SubmissionGrouped) -> bool:
        if self._personal is None:
            return False
        age = self._clock() - event.payload.submission.received_at
        return age.total_seconds() >= self._personal

    async def _give_up(self, item: DeferredItem, event: SubmissionGrouped) -> None:
        """Record and publish `failed` with the last refusal; delete the item (personal data)."""
        days = (self._personal or 0) / 86_400
        refusal = DeferredError(
            item.smtp_code,
            f"not delivered within {days:g} days of receipt (personal data bound); "
            f"last reply: {item.smtp_reply}",
        )
        entry = self._notifier.entry_for_refusal(event, item.key, refusal, attempts=item.attempts)
        await self._notifier.record([entry])
        await self._out([self._notifier.outcome(event, entry, repeat=False)])
        await self._queue.remove(item.key)
        metrics.EMAILS.labels(item.unit, "failed").inc()
        metrics.DEFERRED_ATTEMPTS.labels(item.unit, "failed").inc()
        metrics.GIVEN_UP.labels(item.unit, "deferred").inc()
        log.warning(
            "parked notification given up: its submission may not wait longer",
            reference=item.reference,
            unit=item.unit,
        )

    async def _reschedule(
        self, item: DeferredItem, event: SubmissionGrouped, attempts: int, code: int, reply: str
    ) -> None:
        schedule = self._notifier.schedule
        now = self._clock()
        later = now + wait_after(
            attempts, schedule.retry_initial_seconds, schedule.retry_max_seconds
        )
        budget_end = item.first_refused_at + timedelta(seconds=schedule.park_after_seconds)
        moved = replace(
            item,
            next_attempt_at=later,
            attempts=attempts,
            smtp_code=code,
            smtp_reply=reply[:1000],
            announced=item.announced or later >= budget_end,
        )
        if moved.announced and not item.announced:
            # The quick retries are spent: tell the archive (and the unit's auditors) it waits.
            await self._out([self._notifier.deferred(event, moved)])
            metrics.DEFERRED_ATTEMPTS.labels(item.unit, "announced").inc()
            log.warning(
                "notification deferred: the recipient keeps refusing it",
                reference=item.reference,
                unit=item.unit,
                smtp_code=code,
            )
        await self._queue.reschedule(moved)

    async def _out(self, outgoing: Sequence[Outgoing]) -> None:
        async for attempt in backoff(self._publish_seconds):
            with attempt:
                await self._publish(outgoing)
