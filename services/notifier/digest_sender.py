"""The digest sender: every notifier looks for due digests; one sends each mailbox's at a time.

Each look (every `SADA_DIGEST__POLL_SECONDS`) reads the small `digest_heads` collection (one
document per waiting bucket), exports the age of each unit's oldest waiting submission, and for
each mailbox with a bucket whose window ended `settle_seconds` ago takes the mailbox's lease
(`shared.lease`: insert-only terms, one winner). The holder then, for that mailbox:

1. finishes any plan left open by a notifier that stopped (same members, same Message-ID);
2. reads the due buckets by `_id`, and plans a digest of up to `max_items` submissions, oldest
   first: the plan (members, buckets, Message-ID) is stored **before** the e-mail is sent;
3. sends the digest, marks the plan `sent` (or `failed` on a permanent refusal);
4. records a ledger entry per member (the digest's Message-ID, `digest_id`), publishes each
   member's `notification.sent` (with `digest`), deletes the buckets and their heads, marks
   the plan `done`;
5. repeats while due buckets remain; then releases the lease. A bucket written into a window
   already sent has its own head, so the next look sends it.

A digest that cannot go out (server away, mailbox refusing for now) is retried; once its oldest
member's submission was received `personal_seconds` ago (`SADA_RETENTION__PERSONAL_DAYS`, below
the raw topic's retention) it is given up instead: recorded `failed` like a permanent refusal,
each member's `notification.failed` published and its buckets, with their personal data, deleted.

A crash anywhere repeats from the stored plan: before the server took the e-mail, it is sent
then; between the server's acceptance and the `sent` mark (the one window, as for single
e-mails), it is sent again with the same Message-ID and members; after it, nothing is sent again
and the ledger writes and outcome events (same ids) are simply repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pymongo.asynchronous.collection import AsyncCollection

from services.notifier import metrics
from services.notifier.digests import (
    Digest,
    DigestItem,
    DigestPolicy,
    digest_message_id,
)
from services.notifier.ledger import Ledger, LedgerEntry, Status
from services.notifier.mailer import DeferredError, Mailer, RefusedError
from services.notifier.messages import Email
from services.notifier.pending import ORPHAN_SECONDS, Bucket, Head, PendingStore, Plan
from services.notifier.triage import Triage
from shared.events import DigestRef
from shared.kafka import Outgoing
from shared.lease import MongoLease
from shared.logging import get_logger
from shared.mongo import Document
from shared.poller import Poller
from shared.retry import backoff

log = get_logger(__name__)

Clock = Callable[[], datetime]
Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]
OUTCOMES_PER_PUBLISH = 1_000
LEDGER_PER_WRITE = 1_000
PLANS_KEPT_SECONDS = 24 * 3600.0
PRUNE_EVERY_SECONDS = 300.0
RETRY_INITIAL_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


class DigestComposing(Protocol):
    """Builds a digest's e-mail (`services.notifier.digest_messages.DigestComposer`)."""

    @property
    def message_id_domain(self) -> str:
        """Right-hand side of the digest's Message-ID."""
        ...

    def compose(self, digest: Digest, *, list_limit: int) -> Email:
        """Return the complete e-mail of `digest`."""
        ...


class Outcomes(Protocol):
    """Builds the outcome event of one member (`delivery.Notifier.outcome_of`)."""

    def outcome_of(
        self, item: DigestItem, entry: LedgerEntry, *, repeat: bool, digest: DigestRef | None
    ) -> Outgoing:
        """Return the `notification.*` record of `item`."""
        ...


class Leases(Protocol):
    """One lease per mailbox (`shared.lease.MongoLease`)."""

    async def acquire(self, now: datetime) -> bool:
        """Return True when this process holds a fresh term."""
        ...

    async def release(self, now: datetime) -> None:
        """End the term held."""
        ...


class NotSentError(Exception):
    """The digest could not go out now (server away, mailbox refusing for now): later."""


class DigestSender(Poller):
    """Sends due digests, each exactly once as the unit sees it (see the module docstring)."""

    task_name = "sada-notifier-digests"
    postponed = "digests postponed"

    def __init__(
        self,
        *,
        store: PendingStore,
        triage: Triage,
        ledger: Ledger,
        mailer: Mailer,
        composer: DigestComposing,
        outcomes: Outcomes,
        publish: Publish,
        lease_for: Callable[[str], Leases],
        poll_seconds: float,
        settle_seconds: float,
        lease_seconds: float,
        publish_seconds: float,
        personal_seconds: float | None = None,
        clock: Clock = _now,
    ) -> None:
        self._store = store
        self._personal = personal_seconds
        self._triage = triage
        self._ledger = ledger
        self._mailer = mailer
        self._composer = composer
        self._outcomes = outcomes
        self._publish = publish
        self._lease_for = lease_for
        self._leases: dict[str, Leases] = {}
        super().__init__(poll_seconds)
        self._settle = timedelta(seconds=settle_seconds)
        self._lease_seconds = lease_seconds
        self._publish_seconds = publish_seconds
        self._clock = clock
        self._retry_at: dict[str, tuple[datetime, float]] = {}
        self._seen_units: set[str] = set()
        self._pruned_at: datetime | None = None

    async def run_due(self) -> int:
        """Send every digest that is due and this notifier may send; return how many."""
        now = self._clock()
        heads = await self._store.heads()
        self._export_oldest(heads, now)
        await self._triage.refresh_modes()
        by_inbox: dict[str, list[Head]] = {}
        for head in heads:
            by_inbox.setdefault(head.inbox, []).append(head)
        sent = 0
        for inbox, waiting in sorted(by_inbox.items()):
            if self.stopping:
                break
            if not any(h.closes_at + self._settle <= now for h in waiting):
                continue
            retry = self._retry_at.get(inbox)
            if retry is not None and retry[0] > now:
                continue
            lease = self._leases.get(inbox)
            if lease is None:
                lease = self._leases[inbox] = self._lease_for(inbox)
            if not await lease.acquire(self._clock()):
                continue  # another notifier sends this mailbox's digest
            started = self._clock()
            try:
                sent += await self._send_inbox(inbox, waiting, started)
                self._retry_at.pop(inbox, None)
            except NotSentError:
                wait = min(RETRY_MAX_SECONDS, (retry[1] * 2) if retry else RETRY_INITIAL_SECONDS)
                self._retry_at[inbox] = (self._clock() + timedelta(seconds=wait), wait)
            finally:
                await lease.release(self._clock())
        await self._prune(now)
        return sent

    async def _send_inbox(self, inbox: str, heads: Sequence[Head], started: datetime) -> int:
        """Finish open plans, then send what was set aside up to the last window ended."""
        sent = 0
        finished: set[str] = set()
        for plan in await self._store.open_plans(inbox):
            await self._finish(plan, started)
            finished.update(plan.buckets)
            sent += 1
        now = self._clock()
        end = max(h.closes_at for h in heads if h.closes_at + self._settle <= now)
        due = sorted(
            (h for h in heads if h.pended_at <= end and h.bucket_id not in finished),
            key=lambda h: (h.pended_at, h.bucket_id),
        )
        unit, mailbox = due[0].unit if due else heads[0].unit, heads[0].mailbox
        policy = self._triage.policy(unit)
        while due:
            chosen: list[Bucket] = []
            count = 0
            while due and (not chosen or count + due[0].items <= policy.max_items):
                head = due.pop(0)
                found = await self._store.bucket_items(head.bucket_id)
                if found is None:  # its writer is still writing it, or died in between
                    if (now - head.pended_at).total_seconds() > ORPHAN_SECONDS:
                        await self._store.remove_heads([head.bucket_id])
                    continue
                chosen.append(Bucket(head, found))
                count += len(found)
            if not chosen:
                break
            items: dict[str, DigestItem] = {}
            for bucket in chosen:
                for item in bucket.items:
                    items.setdefault(item.key, item)  # the same item twice: listed once
            plan = await self._plan(inbox, unit, mailbox, end, policy, tuple(items.values()))
            plan = await self._store.save_plan(
                replace(plan, buckets=tuple(b.bucket_id for b in chosen))
            )
            await self._finish(plan, started, chosen)
            sent += 1
        return sent

    async def _plan(
        self,
        inbox: str,
        unit: str,
        mailbox: str,
        end: datetime,
        policy: DigestPolicy,
        items: tuple[DigestItem, ...],
    ) -> Plan:
        digest = Digest(
            inbox=inbox,
            unit=unit,
            mailbox=mailbox,
            window_end=end,
            window_seconds=policy.window_seconds,
            items=items,
        )
        plan = Plan(
            digest_id=digest.digest_id,
            inbox=inbox,
            unit=unit,
            mailbox=mailbox,
            window_end=end,
            window_seconds=policy.window_seconds,
            keys=digest.keys,
            buckets=(),
            state="planned",
            message_id=digest_message_id(digest, self._composer.message_id_domain),
        )
        return plan

    async def _finish(
        self, plan: Plan, started: datetime, read: Sequence[Bucket] | None = None
    ) -> None:
        """Take `plan` from wherever it stands to done (`read`: its buckets, just read)."""
        policy = self._triage.policy(plan.unit)
        members = await self._members(plan, read)
        digest = Digest(
            inbox=plan.inbox,
            unit=plan.unit,
            mailbox=plan.mailbox,
            window_end=plan.window_end,
            window_seconds=plan.window_seconds,
            items=tuple(members.values()),
            digest_id=plan.digest_id,
        )
        if plan.state == "planned":
            if not members:  # recorded by an earlier holder that stopped before `sent`
                plan = replace(plan, state="sent", status="sent")
            else:
                plan = await self._send(plan, digest, policy, started)
            await self._store.mark(plan)
        entries = [self._entry(plan, item) for item in members.values()]
        for start in range(0, len(entries), LEDGER_PER_WRITE):
            chunk = entries[start : start + LEDGER_PER_WRITE]
            async for attempt in backoff(self._publish_seconds):
                with attempt:
                    await self._ledger.record_many(chunk)
        ref = DigestRef(
            digest_id=plan.digest_id,
            items=max(1, len(plan.keys)),
            window_end=plan.window_end,
            why="surge",
        )
        outgoing = [
            self._outcomes.outcome_of(
                item, entry, repeat=False, digest=ref.model_copy(update={"why": item.why})
            )
            for item, entry in zip(members.values(), entries, strict=True)
        ]
        for start in range(0, len(outgoing), OUTCOMES_PER_PUBLISH):
            chunk_out = outgoing[start : start + OUTCOMES_PER_PUBLISH]
            async for attempt in backoff(self._publish_seconds):
                with attempt:
                    await self._publish(chunk_out)
        await self._store.remove_buckets(list(plan.buckets))
        await self._store.mark(replace(plan, state="done"))
        if plan.status is not None:
            metrics.DIGESTS.labels(plan.unit, plan.status).inc()
        outcome = "failed" if plan.status == "failed" else "digested"
        metrics.EMAILS.labels(plan.unit, outcome).inc(len(entries))
        log.info(
            "digest recorded",
            unit=plan.unit,
            digest_id=plan.digest_id,
            items=len(entries),
            status=plan.status,
        )

    async def _members(
        self, plan: Plan, read: Sequence[Bucket] | None = None
    ) -> dict[str, DigestItem]:
        """Return the plan's members still waiting, in the plan's order.

        `read`: the plan's buckets as read to make it a moment ago; else each is read by `_id`
        (a bucket already deleted held members whose outcomes are recorded).
        """
        if read is None:
            stored = [await self._store.bucket_items(b) for b in plan.buckets]
            groups = [items for items in stored if items is not None]
        else:
            groups = [bucket.items for bucket in read]
        wanted = set(plan.keys)
        found: dict[str, DigestItem] = {}
        for items in groups:
            for item in items:
                if item.key in wanted:
                    found.setdefault(item.key, item)
        return {key: found[key] for key in plan.keys if key in found}

    async def _send(
        self, plan: Plan, digest: Digest, policy: DigestPolicy, started: datetime
    ) -> Plan:
        if (self._clock() - started).total_seconds() > self._lease_seconds / 2:
            raise NotSentError  # too late in our term: another notifier may take over soon
        # In a thread: a digest of 10,000 items takes about a second to render, which would
        # otherwise hold up this notifier's consumer on the same event loop.
        email = await asyncio.to_thread(
            self._composer.compose, digest, list_limit=policy.list_limit
        )
        status: Status = "sent"
        try:
            reply = await self._mailer.send(email)
            code, text = reply.code, reply.text
        except RefusedError as exc:
            status, code, text = "failed", exc.code or 0, exc.reply
            log.warning("mail server refused a digest", unit=plan.unit, smtp_code=exc.code)
        except DeferredError as exc:
            if self._expired(digest):
                return self._given_up(plan, digest, exc.code, exc.reply)
            metrics.DIGESTS.labels(plan.unit, "retry").inc()
            log.warning("mailbox refused a digest for now", unit=plan.unit, smtp_code=exc.code)
            raise NotSentError from exc
        except Exception as exc:
            if self._expired(digest):
                return self._given_up(plan, digest, 0, type(exc).__name__)
            metrics.DIGESTS.labels(plan.unit, "retry").inc()
            log.warning("digest not sent", unit=plan.unit, error=type(exc).__name__)
            raise NotSentError from exc
        metrics.DIGEST_ITEMS.labels(plan.unit).observe(len(digest.items))
        now = self._clock()
        for item in digest.items:
            metrics.ACCEPTED_TO_EMAILED.observe((now - item.received_at).total_seconds())
        return replace(
            plan, state="sent", status=status, smtp_code=code or None, smtp_reply=text[:1000]
        )

    def _expired(self, digest: Digest) -> bool:
        """Return True when the oldest member may not wait longer (personal data bound)."""
        if self._personal is None or not digest.items:
            return False
        oldest = min(item.received_at for item in digest.items)
        return (self._clock() - oldest).total_seconds() >= self._personal

    def _given_up(self, plan: Plan, digest: Digest, code: int, reply: str) -> Plan:
        days = (self._personal or 0) / 86_400
        metrics.GIVEN_UP.labels(plan.unit, "digest").inc(len(digest.items))
        log.warning("digest given up: its submissions may not wait longer", unit=plan.unit)
        text = f"not delivered within {days:g} days of receipt (personal data bound); last: {reply}"
        return replace(
            plan, state="sent", status="failed", smtp_code=code or None, smtp_reply=text[:1000]
        )

    @staticmethod
    def _entry(plan: Plan, item: DigestItem) -> LedgerEntry:
        return LedgerEntry(
            key=item.key,
            submission_id=item.submission_id,
            reference=item.reference,
            unit=item.unit,
            mailbox=item.mailbox,
            status=plan.status or "sent",
            message_id=plan.message_id,
            smtp_code=plan.smtp_code,
            smtp_reply=plan.smtp_reply,
            attempts=1,
            recorded_at=datetime.now(UTC),
            digest_id=plan.digest_id,
        )

    def _export_oldest(self, heads: Sequence[Head], now: datetime) -> None:
        oldest: dict[str, datetime] = {}
        for head in heads:
            first = oldest.get(head.unit)
            if first is None or head.pended_at < first:
                oldest[head.unit] = head.pended_at
        for unit in set(self._seen_units) | set(oldest):
            first_at = oldest.get(unit)
            age = (now - first_at).total_seconds() if first_at else 0.0
            metrics.DIGEST_OLDEST_SECONDS.labels(unit).set(max(0.0, age))
        self._seen_units.update(oldest)

    async def _prune(self, now: datetime) -> None:
        if self._pruned_at and (now - self._pruned_at).total_seconds() < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        rates = now - timedelta(seconds=self._triage.longest_rate_seconds * 2)
        await self._store.prune(rates, now - timedelta(seconds=PLANS_KEPT_SECONDS))


def mongo_leases(
    collection: AsyncCollection[Document], *, ttl: float, holder: str
) -> Callable[[str], Leases]:
    """Return a factory of per-mailbox leases in `collection` (`digest_leases`)."""

    def lease_for(inbox: str) -> Leases:
        return MongoLease(collection, f"digest:{inbox}", ttl=ttl, holder=holder)

    return lease_for
