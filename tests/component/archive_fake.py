"""An in-memory `ArchiveStore` with the same unique constraints as the real indexes."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import AutoReconnect

from services.archive import aggregates
from services.archive.campaigns import CampaignPosition
from services.archive.store import Position, SnapshotQuery

Document = dict[str, Any]


class InMemoryArchiveStore:
    """Events unique by `_id` and by (submission_id, seq); snapshots unique by `_id`.

    Campaigns are upserted with the two operators the archive uses, `$setOnInsert` and `$max`.
    """

    def __init__(self) -> None:
        self.events: dict[str, Document] = {}
        self.slots: set[tuple[str, int]] = set()
        self.submissions: dict[str, Document] = {}
        self.campaigns: dict[str, Document] = {}
        self.campaign_writes = 0
        self.report_counters: dict[str, Document] = {}
        self.report_entries_by_scope: dict[str, dict[str, Document]] = {}
        self.report_pages_by_scope: dict[str, dict[str, Document]] = {}
        self.fail_counts = 0
        """Counter updates to fail (a crash after the entries and pages were written)."""
        self.down = False
        self.inserts = 0
        self.reads = 0

    def _check(self) -> None:
        if self.down:
            raise AutoReconnect("database unreachable (fake)")

    async def ensure_indexes(self) -> None:
        self._check()

    async def ping(self) -> bool:
        return not self.down

    async def insert_events(self, docs: Sequence[Document]) -> set[int]:
        self._check()
        self.inserts += 1
        refused = set()
        for i, doc in enumerate(docs):
            slot = (doc["submission_id"], doc["seq"])
            if doc["_id"] in self.events or slot in self.slots:
                refused.add(i)
                continue
            self.events[doc["_id"]] = copy.deepcopy(doc)
            self.slots.add(slot)
        return refused

    async def append_events(self, docs: Sequence[Document]) -> int:
        self._check()
        self.inserts += 1
        for i, doc in enumerate(docs):
            slot = (doc["submission_id"], doc["seq"])
            if doc["_id"] in self.events or slot in self.slots:
                return i
            self.events[doc["_id"]] = copy.deepcopy(doc)
            self.slots.add(slot)
        return len(docs)

    async def find_events(self, event_ids: Sequence[str]) -> dict[str, Document]:
        self._check()
        self.reads += 1
        return {
            i: {k: self.events[i][k] for k in ("_id", "submission_id", "seq", "hash")}
            for i in event_ids
            if i in self.events
        }

    async def chain_events(
        self, chain_ids: Sequence[str], *, brief: bool = False
    ) -> list[Document]:
        self._check()
        self.reads += 1
        found = [copy.deepcopy(d) for d in self.events.values() if d["submission_id"] in chain_ids]
        return sorted(found, key=lambda d: (d["submission_id"], d["seq"]))

    async def insert_snapshots(self, docs: Sequence[Document]) -> None:
        self._check()
        for doc in docs:
            self.submissions.setdefault(doc["_id"], copy.deepcopy(doc))

    async def snapshots(self, chain_ids: Sequence[str]) -> list[Document]:
        self._check()
        return [
            copy.deepcopy(d) for d in self.submissions.values() if d["submission_id"] in chain_ids
        ]

    async def chain_for_reference(self, reference: str) -> str | None:
        self._check()
        found = [d for d in self.submissions.values() if d.get("reference") == reference]
        found.sort(key=lambda d: d.get("record") != "submission")
        return str(found[0]["submission_id"]) if found else None

    async def list_snapshots(
        self, query: SnapshotQuery, after: Position | None, limit: int
    ) -> list[Document]:
        self._check()

        def matches(doc: Document) -> bool:
            if doc["record"] != query.record.value:
                return False
            if query.status is not None and doc["status"] != query.status.value:
                return False
            for name in ("unit", "channel", "kind"):
                if getattr(query, name) is not None and doc.get(name) != getattr(query, name):
                    return False
            if query.since is not None and doc["created_at"] < query.since:
                return False
            if query.until is not None and doc["created_at"] >= query.until:
                return False
            if after is not None:
                key, mark = (doc["created_at"], doc["_id"]), (after.at, after.id)
                return key < mark if query.descending else key > mark
            return True

        found = sorted(
            (d for d in self.submissions.values() if matches(d)),
            key=lambda d: (d["created_at"], d["_id"]),
            reverse=query.descending,
        )
        return [copy.deepcopy(d) for d in found[:limit]]

    async def events_between(
        self, since: datetime, until: datetime, after: Position | None, limit: int
    ) -> list[Document]:
        self._check()
        found = sorted(
            (
                d
                for d in self.events.values()
                if since <= d["archived_at"] < until
                and (after is None or (d["archived_at"], d["_id"]) > (after.at, after.id))
            ),
            key=lambda d: (d["archived_at"], d["_id"]),
        )
        return [copy.deepcopy(d) for d in found[:limit]]

    async def all_events(self) -> AsyncIterator[Document]:
        self._check()
        for doc in sorted(self.events.values(), key=lambda d: (d["submission_id"], d["seq"])):
            yield copy.deepcopy(doc)

    async def all_snapshots(self) -> AsyncIterator[Document]:
        self._check()
        for doc in sorted(self.submissions.values(), key=lambda d: d["submission_id"]):
            yield copy.deepcopy(doc)

    async def upsert_campaigns(self, updates: Sequence[tuple[str, Document]]) -> None:
        self._check()
        for campaign_id, change in updates:
            if set(change) - {"$setOnInsert", "$max"}:
                raise AssertionError(f"operator the fake does not know: {sorted(change)}")
            self.campaign_writes += 1
            doc = self.campaigns.get(campaign_id)
            if doc is None:
                doc = {"_id": campaign_id, **copy.deepcopy(change.get("$setOnInsert", {}))}
                self.campaigns[campaign_id] = doc
            for name, value in change.get("$max", {}).items():
                if name not in doc or value > doc[name]:
                    doc[name] = value

    async def list_campaigns(
        self, scope: str, after: CampaignPosition | None, limit: int
    ) -> list[Document]:
        self._check()
        found = sorted(
            (
                d
                for d in self.campaigns.values()
                if d.get("scope") == scope
                and (after is None or (-d["size"], d["_id"]) > (-after.size, after.id))
            ),
            key=lambda d: (-d["size"], d["_id"]),
        )
        return [copy.deepcopy(d) for d in found[:limit]]

    # --- report aggregates (services/archive/aggregates.py) ---

    async def report_scopes(
        self, scopes: Sequence[str] | None, fields: Sequence[str] | None = None
    ) -> dict[str, Document]:
        self._check()
        return {
            name: copy.deepcopy(doc)
            for name, doc in self.report_counters.items()
            if scopes is None or name in scopes
        }

    async def count_report(
        self, scope: str, read: Mapping[str, int] | None, first: Document | None, update: Document
    ) -> bool:
        self._check()
        if self.fail_counts:
            self.fail_counts -= 1
            raise AutoReconnect("crashed before the counts (fake)")
        if read is None:
            if scope in self.report_counters:
                return False
            assert first is not None
            self.report_counters[scope] = copy.deepcopy(first)
            return True
        doc = self.report_counters.get(scope)
        if doc is None:
            return False
        for name, wanted in aggregates.fence_condition(scope, read, update).items():
            if name == "_id":
                continue
            have = doc.get("positions", {}).get(name.removeprefix("positions."))
            if (have is not None) if isinstance(wanted, dict) else have != wanted:
                return False
        for dotted, n in update.get("$inc", {}).items():
            node = doc
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = node.get(leaf, 0) + n
        for dotted, value in update.get("$set", {}).items():
            node = doc
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return True

    async def insert_report_entries(self, scope: str, docs: Sequence[Document]) -> set[int]:
        self._check()
        entries = self.report_entries_by_scope.setdefault(scope, {})
        refused = set()
        for i, doc in enumerate(docs):
            if doc["_id"] in entries:
                refused.add(i)
            else:
                entries[doc["_id"]] = copy.deepcopy(doc)
        return refused

    async def report_entries(self, scope: str, ids: Sequence[str]) -> dict[str, Document]:
        self._check()
        entries = self.report_entries_by_scope.get(scope, {})
        return {i: copy.deepcopy(entries[i]) for i in ids if i in entries}

    async def replace_report_entries(self, scope: str, docs: Sequence[Document]) -> None:
        self._check()
        entries = self.report_entries_by_scope.setdefault(scope, {})
        for doc in docs:
            entries[doc["_id"]] = copy.deepcopy(doc)

    async def insert_report_page(self, scope: str, doc: Document) -> Document | None:
        self._check()
        pages = self.report_pages_by_scope.setdefault(scope, {})
        if doc["_id"] in pages:
            return copy.deepcopy(pages[doc["_id"]])
        pages[doc["_id"]] = copy.deepcopy(doc)
        return None

    async def report_pages(self, scope: str) -> list[Document]:
        self._check()
        return [copy.deepcopy(d) for d in self.report_pages_by_scope.get(scope, {}).values()]


class MemoryLogStore:
    """The partition logs' `LogStore`: leaves unique by `_id`, heads updated by their size."""

    def __init__(self) -> None:
        self.leaf_docs: dict[str, Document] = {}
        self.heads: dict[str, Document] = {}

    async def head(self, name: str) -> Document | None:
        return copy.deepcopy(self.heads.get(name))

    async def insert_leaves(self, docs: Sequence[Document]) -> set[int]:
        refused = set()
        for i, doc in enumerate(docs):
            if doc["_id"] in self.leaf_docs:
                refused.add(i)
            else:
                self.leaf_docs[doc["_id"]] = copy.deepcopy(doc)
        return refused

    async def leaves(self, ids: Sequence[str]) -> dict[str, Document]:
        return {i: copy.deepcopy(self.leaf_docs[i]) for i in ids if i in self.leaf_docs}

    async def insert_head(self, doc: Document) -> bool:
        if doc["_id"] in self.heads:
            return False
        self.heads[doc["_id"]] = copy.deepcopy(doc)
        return True

    async def update_head(self, name: str, size: int, fields: Document) -> bool:
        head = self.heads.get(name)
        if head is None or head["size"] != size:
            return False
        head.update(copy.deepcopy(fields))
        return True
