"""In-memory stand-ins for the notifier's digest store and leases (component tests only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.notifier.digest_sender import Leases
from services.notifier.digests import DigestItem
from services.notifier.pending import Bucket, Head, Plan


@dataclass
class MemoryPendingStore:
    """`PendingStore` in memory, with the same semantics as the MongoDB one."""

    markers: set[str] = field(default_factory=set)
    head_map: dict[str, Head] = field(default_factory=dict)
    bucket_map: dict[str, tuple[DigestItem, ...]] = field(default_factory=dict)
    rates: dict[tuple[str, datetime, str], int] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)

    async def pend(self, buckets: Sequence[Bucket]) -> None:
        for bucket in buckets:
            self.head_map[bucket.bucket_id] = bucket.head
        for bucket in buckets:
            self.markers.update(item.key for item in bucket.items)
            self.bucket_map[bucket.bucket_id] = bucket.items

    async def waiting(self, keys: Sequence[str]) -> set[str]:
        return self.markers.intersection(keys)

    async def count(self, writer: str, counts: Mapping[tuple[str, datetime], int]) -> None:
        for (inbox, bucket), n in counts.items():
            self.rates[(inbox, bucket, writer)] = self.rates.get((inbox, bucket, writer), 0) + n

    async def counts(self, since: datetime) -> list[tuple[str, datetime, int]]:
        return [(i, b, n) for (i, b, _w), n in self.rates.items() if b >= since]

    async def heads(self) -> list[Head]:
        return list(self.head_map.values())

    async def bucket_items(self, bucket_id: str) -> tuple[DigestItem, ...] | None:
        return self.bucket_map.get(bucket_id)

    async def remove_buckets(self, bucket_ids: Sequence[str]) -> None:
        for bucket_id in bucket_ids:
            self.bucket_map.pop(bucket_id, None)
            self.head_map.pop(bucket_id, None)

    async def remove_heads(self, bucket_ids: Sequence[str]) -> None:
        for bucket_id in bucket_ids:
            self.head_map.pop(bucket_id, None)

    async def open_plans(self, inbox: str) -> list[Plan]:
        found = [p for p in self.plans.values() if p.inbox == inbox and p.state != "done"]
        return sorted(found, key=lambda p: p.window_end)

    async def save_plan(self, plan: Plan) -> Plan:
        return self.plans.setdefault(plan.digest_id, plan)

    async def mark(self, plan: Plan) -> None:
        stored = self.plans[plan.digest_id]
        self.plans[plan.digest_id] = replace(plan, keys=stored.keys, buckets=stored.buckets)

    async def prune(self, rates_before: datetime, plans_before: datetime) -> None:
        self.rates = {k: n for k, n in self.rates.items() if k[1] >= rates_before}


@dataclass
class MemoryLease:
    """One mailbox's lease: held or not (one process's tests share it by name)."""

    name: str
    held: dict[str, bool]

    async def acquire(self, now: datetime) -> bool:
        if self.held.get(self.name):
            return False
        self.held[self.name] = True
        return True

    async def release(self, now: datetime) -> None:
        self.held[self.name] = False


def memory_leases() -> Callable[[str], Leases]:
    """Return a factory of leases over one shared table."""
    held: dict[str, bool] = {}

    def lease_for(inbox: str) -> Leases:
        return MemoryLease(inbox, held)

    return lease_for
