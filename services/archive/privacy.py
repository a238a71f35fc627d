"""Data keys of the archive's personal data: create, read, destroy (docs/privacy.md).

One small collection beside `events`, `privacy_keys`: `_id` = a random key id, `wrapped` (the
data key wrapped by the keyring), `day` (UTC day of archiving), `slot` (HMAC of the person's
primary identifier and the day: this process's cache key), `blinds` (the person's blind indexes
`n:`/`e:`/`p:`, or `c:` for an anonymous chain), `created_at`. A key id in an event says nothing
about a person.

FerretDB 1.24 answers every query but `_id` equality with a scan, so the write path only
inserts: a person's first event of the day in this process creates a key (one insert, random
id, never refused), which a bounded LRU cache keeps for a minute at a time (re-checked by one
`_id` read). Two replicas, or a restarted process, may each seal the same person's day under a
key of their own: harmless, as erasure and retention find keys by blind index and by day, not
by slot, and it saves the second document (and the race) a shared slot would cost. The read
path reads keys by id, never caches them: an erasure is visible at once.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

import orjson
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.archive import envelope, metrics
from services.archive.chain import EMPTY, Head, seal_direct
from services.archive.records import Entry, canonical_json
from shared import ids
from shared.events import ErasurePayload, PrivacyErased, Producer
from shared.lease import Lease
from shared.logging import get_logger
from shared.mongo import insert_unordered
from shared.poller import Poller

log = get_logger(__name__)

Document = dict[str, Any]

KEYS: Final = "privacy_keys"
REQUESTS: Final = "privacy_requests"
RETENTION_LEASE: Final = "privacy-retention"
ERASED_EVENT: Final = "privacy.erased"
CHAIN_PREFIX: Final = "privacy:"
DUE_DAYS: Final = 30
"""PDPL: a data subject's request is answered within 30 days, extendable once by 30."""
CACHE_SECONDS: Final = 60.0
"""How long a process reuses a slot it looked up (see `_remember`)."""
BY_ID_READS: Final = 64
"""Up to this many keys are read one `_id` at a time; more (an export page) in one `$in` scan."""
KEYS_PER_EVENT: Final = 1000
"""Key ids named by one `privacy.erased` event at most (a retention run may write several)."""


_Split = tuple[dict[str, Any], list[envelope.Secret], str]
"""An event split once: (redacted, secrets, event id)."""


@dataclass(frozen=True, slots=True)
class Slot:
    """The data key sealing one person's (or anonymous chain's) events of one day."""

    key_id: str
    data_key: bytes


class KeyVault:
    """The data keys in the archive's database, wrapped by `keyring`."""

    def __init__(self, db: AsyncDatabase[Document], keyring: envelope.Keyring, *, cache_size: int):
        self.keyring = keyring
        self.keys: AsyncCollection[Document] = db[KEYS]
        self.requests: AsyncCollection[Document] = db[REQUESTS]
        self.events: AsyncCollection[Document] = db["events"]
        self._cache: OrderedDict[str, tuple[float, Slot]] = OrderedDict()
        self._cache_size = cache_size

    # --- write path ---------------------------------------------------------------------------

    async def protect(self, entries: Sequence[Entry], now: datetime) -> list[Entry]:
        """Return `entries` with their personal data sealed (one key lookup per person and day)."""
        day = now.astimezone(UTC).date().isoformat()
        plans: list[tuple[Entry, _Split | None, list[str]]] = []
        for entry in entries:
            data = orjson.loads(entry.canonical)
            redacted, secrets = envelope.split(data)
            if not secrets or not isinstance(data, dict):
                plans.append((entry, None, []))
                continue
            labels = envelope.submitter_labels(envelope.find_submitter(data))
            once: _Split = (redacted, secrets, str(data.get("event_id")))
            plans.append((entry, once, labels or [envelope.chain_label(entry.chain_id)]))
        wanted = {labels[0]: labels for _, plan, labels in plans if plan is not None}
        slots = await self.slots_for(wanted, day, now)
        out = []
        for entry, plan, labels in plans:
            if plan is None:
                out.append(entry)
                continue
            slot = slots[labels[0]]
            stored = envelope.sealed(*plan, slot.key_id, slot.data_key)
            out.append(replace(entry, canonical=canonical_json(stored), key_id=slot.key_id))
        return out

    async def slots_for(
        self, people: Mapping[str, list[str]], day: str, now: datetime
    ) -> dict[str, Slot]:
        """Return the slot of each person (primary label -> all labels) on `day`."""
        found: dict[str, Slot] = {}
        missing: dict[str, tuple[str, list[str]]] = {}
        for primary, labels in people.items():
            slot_id = envelope.slot_id(self.keyring, primary, day)
            slot = await self._cached(slot_id)
            if slot is not None:
                found[primary] = slot
            else:
                missing[primary] = (slot_id, labels)
        if not missing:
            return found
        fresh: dict[str, Slot] = {}
        key_docs = []
        for primary, (slot_id, labels) in missing.items():
            key_id, data_key = uuid.uuid4().hex, envelope.new_data_key()
            fresh[primary] = Slot(key_id, data_key)
            key_docs.append(
                {
                    "_id": key_id,
                    "wrapped": self.keyring.wrap(key_id, data_key),
                    "day": day,
                    "slot": slot_id,
                    "blinds": [envelope.blind_index(self.keyring, label) for label in labels],
                    "created_at": now,
                }
            )
        await insert_unordered(self.keys, key_docs)  # random ids: never refused
        for primary, slot in fresh.items():
            self._remember(missing[primary][0], slot)
        return found | fresh

    async def _cached(self, slot_id: str) -> Slot | None:
        """Return the cached slot, checked again (one `_id` read) once its minute is up."""
        cached = self._cache.get(slot_id)
        if cached is None:
            return None
        expires, slot = cached
        if expires <= _clock():
            stored = await self.keys.find_one({"_id": slot.key_id}, {"_id": 1})
            if stored is None:  # erased meanwhile
                del self._cache[slot_id]
                return None
            self._cache[slot_id] = (_clock() + CACHE_SECONDS, slot)
        self._cache.move_to_end(slot_id)
        return slot

    def _remember(self, slot_id: str, slot: Slot) -> None:
        # Held for a minute only: an erasure run elsewhere (the CLI) cannot reach this cache, so
        # at most a minute of the person's new events is sealed under the key it destroyed.
        self._cache[slot_id] = (_clock() + CACHE_SECONDS, slot)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # --- read path ----------------------------------------------------------------------------

    async def data_keys(self, key_ids: Sequence[str]) -> dict[str, bytes]:
        """Return the data keys that still exist among `key_ids` (one query)."""
        wanted = sorted(set(key_ids))
        if not wanted:
            return {}
        if len(wanted) <= BY_ID_READS:
            # `_id` equality is the one read FerretDB 1.24 answers without a scan (the key
            # collection holds a key per person and day: a year of traffic is a large one).
            docs = [doc for key_id in wanted if (doc := await self.keys.find_one({"_id": key_id}))]
        else:
            docs = [doc async for doc in self.keys.find({"_id": {"$in": wanted}})]
        return {doc["_id"]: self.keyring.unwrap(doc["_id"], bytes(doc["wrapped"])) for doc in docs}

    async def reveal(self, docs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Return each sealed document's event in clear (by `_id`); erased ones read `[erased]`."""
        parsed: dict[str, dict[str, Any]] = {}
        for doc in docs:
            if not doc.get("key_id"):
                continue
            try:
                event = orjson.loads(doc.get("event") or "")
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                parsed[str(doc["_id"])] = event
        keys = await self.data_keys(
            [k for e in parsed.values() if (k := envelope.key_id_of(e)) is not None]
        )
        return {
            event_id: envelope.reveal(event, keys.get(envelope.key_id_of(event) or ""))
            for event_id, event in parsed.items()
        }

    # --- erasure --------------------------------------------------------------------------------

    async def keys_with_blinds(self, blinds: Sequence[str]) -> list[Document]:
        """Return the key documents carrying any of `blinds` (a scan of a small collection)."""
        if not blinds:
            return []
        cursor = self.keys.find({"blinds": {"$in": list(blinds)}}, {"wrapped": 0})
        return [doc async for doc in cursor]

    async def destroy(self, keys: Sequence[Mapping[str, Any]]) -> None:
        """Delete `keys`; forget any cached slot of them."""
        if not keys:
            return
        key_ids = [str(doc["_id"]) for doc in keys]
        slots = [str(doc["slot"]) for doc in keys if doc.get("slot")]
        await self.keys.delete_many({"_id": {"$in": key_ids}})
        for slot_id in slots:
            self._cache.pop(slot_id, None)

    async def count_events_by_key(self, key_ids: Sequence[str]) -> dict[str, int]:
        """Return how many events each of `key_ids` sealed (one scan: operator commands only)."""
        counts: dict[str, int] = {}
        if key_ids:
            cursor = self.events.find({"key_id": {"$in": list(key_ids)}}, {"key_id": 1})
            async for doc in cursor:
                counts[str(doc["key_id"])] = counts.get(str(doc["key_id"]), 0) + 1
        return counts

    async def record_erasure(
        self,
        *,
        request_id: str,
        reason: str,
        trigger: Literal["request", "retention"],
        key_ids: Sequence[str],
        events: int | None,
        requested_by: str,
        producer: Producer,
    ) -> list[str]:
        """Archive the `privacy.erased` event(s) of one erasure on chain `privacy:<request id>`."""
        chain = f"{CHAIN_PREFIX}{request_id}"
        step = KEYS_PER_EVENT
        chunks = [list(key_ids[i : i + step]) for i in range(0, len(key_ids), step)]
        head, now, written = EMPTY, datetime.now(UTC), []
        docs = []
        for part, chunk in enumerate(chunks or [[]]):
            event = PrivacyErased(
                event_id=ids.event_id(chain, ERASED_EVENT, str(part)),
                submission_id=chain,
                occurred_at=now,
                producer=producer,
                payload=ErasurePayload(
                    request_id=request_id,
                    reason=reason,
                    trigger=trigger,
                    keys=len(key_ids),
                    events=events,
                    key_ids=chunk,
                    part=part,
                    parts=max(len(chunks), 1),
                    requested_by=requested_by,
                ),
            )
            canonical = canonical_json(event.model_dump(mode="json"))
            doc = seal_direct(event.event_id, chain, ERASED_EVENT, canonical, head, now, now)
            doc["reference"] = None
            head = Head(doc["seq"], doc["hash"])
            docs.append(doc)
            written.append(event.event_id)
        await self.events.insert_many(docs, ordered=True)
        return written

    # --- retention ------------------------------------------------------------------------------

    async def expired_keys(self, before: date) -> list[Document]:
        """Return the keys of days before `before` (a scan of the small key collection)."""
        cursor = self.keys.find({"day": {"$lt": before.isoformat()}}, {"wrapped": 0})
        return [doc async for doc in cursor]

    # --- requests -------------------------------------------------------------------------------

    async def past_due(self, now: datetime) -> int:
        """Return how many data subjects' requests are open past their due date."""
        return await self.requests.count_documents({"answered_at": None, "due_at": {"$lt": now}})


def _clock() -> float:
    """Return the slot cache's clock (monotonic; a test moves it on)."""
    return time.monotonic()


def vault(
    client: AsyncMongoClient[Document], database: str, keyring: envelope.Keyring, cache_size: int
) -> KeyVault:
    """Return the key vault in `database`."""
    return KeyVault(client[database], keyring, cache_size=cache_size)


def keyring_from(master_key: str) -> envelope.LocalKeyring:
    """Return the local keyring of a base64 master key."""
    return envelope.LocalKeyring(envelope.parse_master_key(master_key))


async def retain(keys: KeyVault, retention_days: int, now: datetime, *, producer: Producer) -> int:
    """Destroy the keys of days older than `retention_days`; return how many went."""
    cutoff = now.astimezone(UTC).date() - timedelta(days=retention_days)
    expired = await keys.expired_keys(cutoff)
    if not expired:
        return 0
    await keys.destroy(expired)
    await keys.record_erasure(
        request_id=f"retention-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}",
        reason="retention",
        trigger="retention",
        key_ids=[str(doc["_id"]) for doc in expired],
        events=None,
        requested_by="archive",
        producer=producer,
    )
    log.info("personal data past retention destroyed", keys=len(expired), before=str(cutoff))
    return len(expired)


class PrivacyTasks(Poller):
    """Refreshes the past-due gauge and, under a lease, destroys keys past retention."""

    task_name = "archive-privacy"
    postponed = "privacy task failed"

    def __init__(
        self,
        keys: KeyVault,
        *,
        retention_days: int,
        interval: float,
        lease: Lease | None,
        producer: Producer,
    ) -> None:
        super().__init__(interval)
        self._keys = keys
        self._retention_days = retention_days
        self._interval = interval
        self._lease = lease
        self._producer = producer

    async def start(self) -> None:
        """Start the periodic work (a no-op when the interval is 0)."""
        if self._interval > 0:
            await super().start()

    async def run_due(self) -> int:
        """Do this interval's work (see `run_once`)."""
        await self.run_once(datetime.now(UTC))
        return 0

    async def run_once(self, now: datetime) -> None:
        """Refresh the gauge; destroy expired keys if this replica holds the lease's term."""
        try:
            metrics.PRIVACY_PAST_DUE.set(await self._keys.past_due(now))
            if self._lease is None or await self._lease.acquire(now):
                await retain(self._keys, self._retention_days, now, producer=self._producer)
        except Exception as exc:  # an outage: try again next time
            log.warning("privacy task failed", error=type(exc).__name__)
