"""The digest sender: every notifier looks for due digests; one sends each mailbox's at a time.

Each look (every `SADA_DIGEST__POLL_SECONDS`) reads the small `digest_windows` collection,
exports the age of each unit's oldest waiting submission, and for each mailbox with a window
ended `settle_seconds` ago takes the mailbox's lease (`shared.lease`: insert-only terms, one
winner). The holder then, for that mailbox:

1. finishes any plan left open by a notifier that stopped (same members, same Message-ID);
2. reads the waiting buckets, and plans a digest of up to `max_items` submissions, oldest
   first: the plan (members, Message-ID) is stored **before** the e-mail is sent;
3. sends the digest, marks the plan `sent` (or `failed` on a permanent refusal);
4. records a ledger entry per member (the digest's Message-ID, `digest_id`), publishes each
   member's `notification.sent` (with `digest`), deletes the buckets, marks the plan `done`;
5. repeats while submissions wait, deletes the due windows, and if anything arrived meanwhile
   makes sure a window remains for it; then releases the lease.

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
    window_end,
)
from services.notifier.ledger import Ledger, LedgerEntry, Status
from services.notifier.mailer import DeferredError, Mailer, RefusedError
from services.notifier.messages import Email
from services.notifier.pending import Bucket, PendingStore, Plan, Window
from services.notifier.poller import Poller
from services.notifier.triage import Triage
from shared.events import DigestRef
from shared.kafka import Outgoing
from shared.lease import MongoLease
from shared.logging import get_logger
from shared.mongo import Document
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
        clock: Clock = _now,
    ) -> None:
        self._store = store
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
        self._bucket_ids: dict[str, set[str]] = {}
        self._seen_units: set[str] = set()
        self._pruned_at: datetime | None = None

    async def run_due(self) -> int:
        """Send every digest that is due and this notifier may send; return how many."""
        now = self._clock()
        windows = await self._store.windows()
        self._export_oldest(windows, now)
        await self._triage.refresh_modes()
        due: dict[str, list[Window]] = {}
        for window in windows:
            if window.closes_at + self._settle <= now:
                due.setdefault(window.inbox, []).append(window)
        sent = 0
        for inbox, closed in sorted(due.items()):
            if self.stopping:
                break
            retry = self._retry_at.get(inbox)
            if retry is not None and retry[0] > now:
                continue
            lease = self._leases.setdefault(inbox, self._lease_for(inbox))
            if not await lease.acquire(self._clock()):
                continue  # another notifier sends this mailbox's digest
            started = self._clock()
            try:
                sent += await self._send_inbox(inbox, closed, started)
                self._retry_at.pop(inbox, None)
            except NotSentError:
                wait = min(RETRY_MAX_SECONDS, (retry[1] * 2) if retry else RETRY_INITIAL_SECONDS)
                self._retry_at[inbox] = (self._clock() + timedelta(seconds=wait), wait)
            finally:
                await lease.release(self._clock())
        await self._prune(now)
        return sent

    async def _send_inbox(self, inbox: str, closed: Sequence[Window], started: datetime) -> int:
        sent = 0
        for plan in await self._store.open_plans(inbox):
            await self._finish(plan, started)
            sent += 1
        unit, mailbox = closed[0].unit, closed[0].mailbox
        policy = self._triage.policy(unit)
        end = max(w.closes_at for w in closed)
        # Each read of the buckets is a scan of `digest_pending` on FerretDB 1.24 (every item
        # waiting, every mailbox, decoded), the sender's largest cost under a surge: one read
        # plans the digest and finds its members, and the read after the windows are deleted
        # finds what was written meanwhile, so only a digest cut at `max_items` reads again.
        waiting = await self._store.buckets(inbox)
        buckets = [b for b in waiting if b.pended_at <= end]
        while buckets:
            items: dict[str, DigestItem] = {}
            rest = False
            for bucket in buckets:  # oldest first; whole buckets, at least one
                if items and len(items) + len(bucket.items) > policy.max_items:
                    rest = True
                    break
                for item in bucket.items:
                    items.setdefault(item.key, item)  # the same item twice: listed once
            plan = await self._plan(inbox, unit, mailbox, end, policy, tuple(items.values()))
            await self._finish(plan, started, waiting)
            sent += 1
            if not rest:
                break
            waiting = await self._store.buckets(inbox)
            buckets = [b for b in waiting if b.pended_at <= end]
        await self._store.remove_windows([w.window_id for w in closed])
        late = await self._due_buckets(inbox, end)
        if late:  # written just now into a window we closed: a later window must name them
            closes = window_end(self._clock(), policy.window_seconds)
            await self._store.add_windows(
                [
                    Window(
                        window_id=f"{inbox}|{closes.timestamp():.0f}",
                        inbox=inbox,
                        unit=unit,
                        mailbox=mailbox,
                        closes_at=closes,
                        first_at=late[0].pended_at,
                        window_seconds=policy.window_seconds,
                    )
                ]
            )
        return sent

    async def _due_buckets(self, inbox: str, end: datetime) -> list[Bucket]:
        """Return `inbox`'s buckets set aside before `end`, oldest first."""
        return [b for b in await self._store.buckets(inbox) if b.pended_at <= end]

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
            state="planned",
            message_id=digest_message_id(digest, self._composer.message_id_domain),
        )
        return await self._store.save_plan(plan)

    async def _finish(
        self, plan: Plan, started: datetime, read: Sequence[Bucket] | None = None
    ) -> None:
        """Take `plan` from wherever it stands to done (`read`: the inbox's buckets, just read)."""
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
        await self._store.remove_buckets(sorted(self._bucket_ids.pop(plan.digest_id, set())))
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
        """Return the plan's members still waiting, in the plan's order, noting their buckets.

        `read`: all of the inbox's buckets as read to make the plan a moment ago (only this
        lease holder deletes them), else they are read again.
        """
        wanted = set(plan.keys)
        found: dict[str, DigestItem] = {}
        buckets: set[str] = set()
        for bucket in read if read is not None else await self._store.buckets(plan.inbox):
            hit = False
            for item in bucket.items:
                if item.key in wanted:
                    found.setdefault(item.key, item)
                    hit = True
            if hit and all(item.key in wanted for item in bucket.items):
                buckets.add(bucket.bucket_id)
        self._bucket_ids[plan.digest_id] = buckets
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
            metrics.DIGESTS.labels(plan.unit, "retry").inc()
            log.warning("mailbox refused a digest for now", unit=plan.unit, smtp_code=exc.code)
            raise NotSentError from exc
        except Exception as exc:
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

    def _export_oldest(self, windows: Sequence[Window], now: datetime) -> None:
        oldest: dict[str, datetime] = {}
        for window in windows:
            first = oldest.get(window.unit)
            if first is None or window.first_at < first:
                oldest[window.unit] = window.first_at
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
