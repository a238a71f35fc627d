"""The campaigns service's work on a batch: routed events in, durable decisions, grouped out.

Routed events are keyed by scope, so the consumer that owns a partition owns its scopes and
decides them in the order Kafka holds them: the same input in the same order gives the same
campaigns, whichever replica decides. Per batch:

1. parse every record (a record that is not a routed event raises before anything changes,
   so `BatchRunner` isolates it to the dead-letter topic);
2. read each scope's persisted position; a scope this process holds at another position
   (another replica decided it since: a rebalance) is reloaded from MongoDB;
3. a record at or before its scope's position was decided before (a redelivery after a crash):
   its persisted decision is published again, unchanged;
4. every other record is decided in memory (`grouping.group`), the changes are saved, each
   scope's position advanced last and conditionally; only then are the events built.

Any failure drops the batch's scopes from memory, so the retried batch starts from what is
durable, never from decisions that were not saved.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from datasketch import MinHash
from prometheus_client import Counter, Gauge

from services.campaigns.grouping import (
    WINDOW,
    Grouping,
    Indexed,
    Member,
    MemoryStore,
    group,
    scope_of,
)
from services.campaigns.store import CampaignState, Decided, Position, ScopeChanges, text_document
from shared import events, logging
from shared.kafka import Outgoing, Record

SERVICE = "campaigns"
MAX_SCOPES = 16
"""Scopes held in memory at once, the least recently used forgotten first (and reloaded)."""
EXPIRE_EVERY = timedelta(hours=1)
"""How often a unit scope's texts that left the window are deleted from MongoDB."""

DECISIONS = Counter(
    "sada_campaign_decisions_total",
    "Submissions grouped: joined as an identical or a near-identical copy, or joined none.",
    ["outcome"],
)
LOADS = Counter(
    "sada_campaign_scope_loads_total",
    "Scopes rebuilt from MongoDB: a start, a rebalance, or a scope evicted from memory.",
)
HELD = Gauge("sada_campaign_scopes_held", "Scopes held in this process's memory.")
log = logging.get_logger(__name__)


def outcome(grouping: Grouping) -> str:
    """Return the metric label of a decision."""
    if grouping.campaign_id is None:
        return "none"
    return "identical" if grouping.similarity == 1.0 else "near_identical"


def grouped_event(
    routed: events.SubmissionRouted, grouping: Grouping, producer: events.Producer
) -> events.SubmissionGrouped:
    """Return the `submission.grouped` event for a routed one and its decision.

    Its id derives from the routed event's id alone, so a redelivery, even one decided again,
    is the same event to the notifier and the archive.
    """
    campaign = None
    if grouping.campaign_id is not None:
        campaign = events.CampaignMembership(
            campaign_id=grouping.campaign_id,
            size=grouping.campaign_size or 2,
            first_reference=grouping.first_reference or "",
            first_submission_id=grouping.first_submission_id or "",
            similar_to=grouping.similar_to or "",
            similarity=grouping.similarity or 0.0,
        )
    payload = events.GroupedPayload(
        submission=routed.payload.submission,
        decision=routed.payload.decision,
        scope=grouping.scope,
        campaign=campaign,
    )
    return events.build(
        events.SubmissionGrouped,
        submission_id=routed.submission_id,
        reference=routed.reference,
        payload=payload,
        discriminator=routed.event_id,
        producer=producer,
        correlation_id=routed.correlation_id,
    )


class _Recorder:
    """A `SignatureStore` over the process's memory that records what a batch changed."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._change = ScopeChanges("", Position())  # replaced by `at` before each decision
        self._seq = 0
        self._seen_at = datetime.min

    def at(self, change: ScopeChanges, seq: int, seen_at: datetime) -> None:
        """Record the next decision's changes into `change`, as decision number `seq`."""
        self._change, self._seq, self._seen_at = change, seq, seen_at

    def exact(self, scope: str, digest: bytes) -> Member | None:
        """Delegate."""
        return self._store.exact(scope, digest)

    def candidates(self, scope: str, minhash: MinHash) -> Iterable[Indexed]:
        """Delegate."""
        return self._store.candidates(scope, minhash)

    def expire(self, scope: str, before: datetime) -> None:
        """Delegate (MongoDB forgets on its own schedule: `Campaigns._expire_due`)."""
        self._store.expire(scope, before)

    def remember(
        self, scope: str, digest: bytes, member: Member, index: Indexed | None, minhash: MinHash
    ) -> None:
        """Remember in memory, and keep the text's document for the batch's save."""
        self._store.remember(scope, digest, member, index, minhash)
        self._change.texts.append(text_document(scope, self._seq, digest, member, index, minhash))

    def join(self, scope: str, founder_id: str) -> int:
        """Count the member in memory, and keep the campaign's new size for the batch's save."""
        size = self._store.join(scope, founder_id)
        self._change.sizes[founder_id] = (size, self._seq, self._seen_at)
        return size


class Campaigns:
    """Decides batches of routed events; see the module docstring for the steps."""

    def __init__(
        self,
        state: CampaignState,
        *,
        producer: events.Producer,
        topic: str,
        window: timedelta = WINDOW,
        max_scopes: int = MAX_SCOPES,
    ) -> None:
        self._state = state
        self._producer = producer
        self._topic = topic
        self._window = window
        self._max_scopes = max_scopes
        self._store = MemoryStore()
        self._recorder = _Recorder(self._store)
        self._held: OrderedDict[str, Position] = OrderedDict()
        self._expired_at: dict[str, datetime] = {}

    async def decide(self, records: Sequence[Record]) -> list[Outgoing]:
        """Decide every record, make the decisions durable, return the grouped events."""
        routed = [
            (record, events.SubmissionRouted.model_validate_json(record.value or b""))
            for record in records
        ]
        scopes = [scope_of(e.payload.submission, e.payload.decision.unit) for _, e in routed]
        stored = await self._state.positions(scopes)
        try:
            for scope in dict.fromkeys(scopes):
                await self._hold(scope, stored[scope])
            redone = [
                event.event_id
                for (record, event), scope in zip(routed, scopes, strict=True)
                if stored[scope].covers(record.partition, record.offset)
            ]
            earlier = await self._state.decided(redone)
            changes = {scope: ScopeChanges(scope, stored[scope]) for scope in stored}
            outgoing, tally = [], Tally[str]()
            for (record, event), scope in zip(routed, scopes, strict=True):
                grouping = earlier.get(event.event_id) or self._decide(
                    record, event, changes[scope]
                )
                tally[outcome(grouping)] += 1
                grouped = grouped_event(event, grouping, self._producer)
                outgoing.append(Outgoing(self._topic, event.submission_id, _json(grouped)))
            await self._state.save(list(changes.values()))
        except BaseException:
            for scope in stored:
                self._drop(scope)
            raise
        for scope, change in changes.items():
            self._held[scope] = change.after
        self._evict()
        for label, n in tally.items():
            DECISIONS.labels(label).inc(n)
        for scope, cut in self._expire_due(changes.values(), datetime.now(UTC)):
            await self._state.expire(scope, cut)
        return outgoing

    def _decide(
        self, record: Record, event: events.SubmissionRouted, change: ScopeChanges
    ) -> Grouping:
        submission = event.payload.submission
        seq = change.before.seq + len(change.decisions) + 1
        self._recorder.at(change, seq, submission.submitted_at)
        unit = event.payload.decision.unit
        grouping = group(submission, unit, self._recorder, window=self._window)
        change.decisions.append(
            Decided(event.event_id, seq, record.partition, record.offset, grouping)
        )
        return grouping

    async def _hold(self, scope: str, position: Position) -> None:
        """Make memory hold `scope` as of `position`, reloading it when it is elsewhere."""
        if self._held.get(scope) == position:
            self._held.move_to_end(scope)
            return
        self._drop(scope)
        texts = await self._state.load(scope, position, self._store)
        LOADS.inc()
        # The scope names a draft law or a unit, never a person: safe to log.
        log.info("scope loaded from MongoDB", scope=scope, seq=position.seq, texts=texts)
        self._held[scope] = position
        HELD.set(len(self._held))

    def _evict(self) -> None:
        """Forget the least recently used scopes beyond `max_scopes`.

        Only between batches: a batch may touch more scopes than that, and a scope it loaded
        must stay until its decisions are saved.
        """
        while len(self._held) > self._max_scopes:
            oldest, _ = self._held.popitem(last=False)
            self._store.forget(oldest)
        HELD.set(len(self._held))

    def _drop(self, scope: str) -> None:
        self._held.pop(scope, None)
        self._store.forget(scope)
        HELD.set(len(self._held))

    def _expire_due(
        self, changes: Iterable[ScopeChanges], now: datetime
    ) -> list[tuple[str, datetime]]:
        """Return the unit scopes whose out-of-window texts are due for deletion, and the cut.

        The cut is measured like the window in memory, on `submitted_at` (the newest decided
        here, minus the window), so a replay of old traffic keeps what it still needs; the
        deletion runs at most every `EXPIRE_EVERY` of the clock per scope, so a year of a unit
        scope's texts never piles up in MongoDB.
        """
        due = []
        for change in changes:
            if not change.scope.startswith("unit:") or not change.texts:
                continue
            last = self._expired_at.get(change.scope)
            if last is None or now - last >= EXPIRE_EVERY:
                self._expired_at[change.scope] = now
                newest = max(doc["seen_at"] for doc in change.texts)
                due.append((change.scope, newest - self._window))
        return due


def _json(event: events.SubmissionGrouped) -> bytes:
    return event.__pydantic_serializer__.to_json(event)
