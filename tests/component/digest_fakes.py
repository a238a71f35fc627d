"""In-memory stand-ins for the notifier's digest store and leases (component tests only)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.notifier.digest_sender import Leases
from services.notifier.digests import DigestItem
from services.notifier.pending import Bucket, Plan, Window


@dataclass
class MemoryPendingStore:
    """`PendingStore` in memory, with the same semantics as the MongoDB one."""

    markers: set[str] = field(default_factory=set)
    bucket_map: dict[str, Bucket] = field(default_factory=dict)
    window_map: dict[str, Window] = field(default_factory=dict)
    rates: dict[tuple[str, datetime, str], int] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)

    async def pend(self, items: Sequence[DigestItem], windows: Sequence[Window]) -> None:
        if not items:
            return
        by_inbox: dict[str, list[DigestItem]] = {}
        for item in items:
            self.markers.add(item.key)
            by_inbox.setdefault(item.inbox, []).append(item)
        for inbox, group in by_inbox.items():
            bucket_id = f"b:{uuid.uuid4().hex}"
            self.bucket_map[bucket_id] = Bucket(bucket_id, inbox, group[0].pended_at, tuple(group))
        await self.add_windows(windows)

    async def add_windows(self, windows: Sequence[Window]) -> None:
        for window in windows:
            self.window_map.setdefault(window.window_id, window)

    async def waiting(self, keys: Sequence[str]) -> set[str]:
        return self.markers.intersection(keys)

    async def count(self, writer: str, counts: Mapping[tuple[str, datetime], int]) -> None:
        for (inbox, bucket), n in counts.items():
            self.rates[(inbox, bucket, writer)] = self.rates.get((inbox, bucket, writer), 0) + n

    async def counts(self, since: datetime) -> list[tuple[str, datetime, int]]:
        return [(i, b, n) for (i, b, _w), n in self.rates.items() if b >= since]

    async def windows(self) -> list[Window]:
        return list(self.window_map.values())

    async def buckets(self, inbox: str) -> list[Bucket]:
        found = [b for b in self.bucket_map.values() if b.inbox == inbox]
        return sorted(found, key=lambda b: b.pended_at)

    async def remove_buckets(self, bucket_ids: Sequence[str]) -> None:
        for bucket_id in bucket_ids:
            self.bucket_map.pop(bucket_id, None)

    async def remove_windows(self, window_ids: Sequence[str]) -> None:
        for window_id in window_ids:
            self.window_map.pop(window_id, None)

    async def open_plans(self, inbox: str) -> list[Plan]:
        found = [p for p in self.plans.values() if p.inbox == inbox and p.state != "done"]
        return sorted(found, key=lambda p: p.window_end)

    async def save_plan(self, plan: Plan) -> Plan:
        return self.plans.setdefault(plan.digest_id, plan)

    async def mark(self, plan: Plan) -> None:
        self.plans[plan.digest_id] = replace(plan, keys=self.plans[plan.digest_id].keys)

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
