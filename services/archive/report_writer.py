"""The archiver's report step: count a batch's grouped events into the report aggregates.

Per scope of the batch (see `aggregates.py` for the documents and why this is exactly once):
1. read the fences of the batch's scopes (one read of the small `report_scopes`);
2. keep the events past their fence, the latest version of each submission;
3. insert their entries; read back the refused ones (a retried batch, an edit) and settle what
   each changes; replace the entries of edits;
4. insert the batch's comment page (insert-only; a retried batch finds its page by id and adds
   only what it lacks);
5. apply the counts and move the fence in one conditional update; if another consumer moved
   the fence in between, raise `TransientError`: the batch is retried, and skips what that
   consumer counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from services.archive import aggregates
from services.archive.aggregates import Fact, ScopeWork
from services.archive.store import ArchiveStore
from shared.retry import TransientError

MAX_PAGE_ROUNDS = 20


async def count(store: ArchiveStore, facts: Sequence[Fact]) -> int:
    """Count `facts` into their scopes' aggregates; return how many were new."""
    if not facts:
        return 0
    by_scope: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        by_scope[fact.scope].append(fact)
    stored = await store.report_scopes(sorted(by_scope), ["positions"])
    counted = 0
    for scope, mine in sorted(by_scope.items()):
        doc = stored.get(scope)
        fences = _fences(doc)
        work = ScopeWork(scope, fences, exists=doc is not None)
        work.facts = aggregates.past_fence(mine, fences)
        if not work.facts:
            continue
        await _write(store, work)
        counted += len(work.facts)
    return counted


def _fences(doc: dict[str, object] | None) -> dict[str, int]:
    positions = (doc or {}).get("positions")
    if not isinstance(positions, dict):
        return {}
    return {str(k): v for k, v in positions.items() if isinstance(v, int)}


async def _write(store: ArchiveStore, work: ScopeWork) -> None:
    scope = work.scope
    moved = work.new_fences()
    work.inserts = [aggregates.entry(fact, None) for fact in work.facts]
    refused = await store.insert_report_entries(scope, work.inserts)
    known = (
        await store.report_entries(scope, [work.inserts[i]["_id"] for i in sorted(refused)])
        if refused
        else {}
    )
    aggregates.settle(work, known)
    if work.replaces:
        await store.replace_report_entries(scope, work.replaces)
    await _pages(store, scope, work.facts)
    delta = aggregates.nonzero(work.delta)
    first = aggregates.scope_document(work, delta, moved) if not work.exists else None
    update = aggregates.counts_update(delta, moved)
    if not await store.count_report(scope, work.fences if work.exists else None, first, update):
        raise TransientError("a report's counts moved under this batch (another consumer)")


async def _pages(store: ArchiveStore, scope: str, facts: Sequence[Fact]) -> None:
    """Insert the facts' comment page; a page already there (a retry) keeps what it has."""
    remaining = sorted(facts, key=lambda f: (f.partition, f.offset))
    for _ in range(MAX_PAGE_ROUNDS):
        if not remaining:
            return
        partition = remaining[0].partition
        items = [aggregates.page_item(f) for f in remaining if f.partition == partition]
        there = await store.insert_report_page(scope, aggregates.page_document(partition, items))
        if there is None:
            remaining = [f for f in remaining if f.partition != partition]
            continue
        have = {(str(i.get("id")), i.get("o")) for i in aggregates.page_items(there)}
        remaining = [
            f
            for f in remaining
            if not (f.partition == partition and (f.submission_id, f.offset) in have)
        ]
    raise TransientError("comment pages did not settle")
