"""The listing's reads: a page of submissions with several snapshots each, read in few trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.archive import reads
from services.archive.status import RecordType
from services.archive.store import Position, SnapshotQuery
from tests.component.archive_fake import InMemoryArchiveStore

START = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


class CountingStore(InMemoryArchiveStore):
    """Counts the listing's reads of snapshots."""

    def __init__(self) -> None:
        super().__init__()
        self.listing_reads = 0

    async def list_snapshots(
        self, query: SnapshotQuery, after: Position | None, limit: int
    ) -> list[dict[str, Any]]:
        self.listing_reads += 1
        return await super().list_snapshots(query, after, limit)


def _seed(store: InMemoryArchiveStore, submissions: int) -> None:
    """Give each submission the three snapshots the archive writes (accepted, routed, notified)."""
    for i in range(submissions):
        chain = f"00000000-0000-5000-8000-{i:012d}"
        for rank, status in ((1, "accepted"), (2, "routed"), (3, "notified")):
            store.submissions[f"{chain}:{rank}:2"] = {
                "_id": f"{chain}:{rank}:2",
                "submission_id": chain,
                "record": RecordType.SUBMISSION.value,
                "status": status,
                "rank": rank,
                "revision": 2,
                "created_at": START + timedelta(seconds=i),
            }


async def test_a_full_page_of_three_snapshot_submissions_takes_one_listing_read() -> None:
    store = CountingStore()
    _seed(store, 200)
    page = await reads.list_submissions(
        store, SnapshotQuery(record=RecordType.SUBMISSION), None, 50
    )
    assert store.listing_reads == 1
    assert len(page.items) == 50
    assert {item["status"] for item in page.items} == {"notified"}
    assert len({item["submission_id"] for item in page.items}) == 50
    assert page.next is not None


async def test_pages_by_cursor_list_each_submission_once_by_its_current_state() -> None:
    store = CountingStore()
    _seed(store, 120)
    seen: list[str] = []
    after = None
    while True:
        page = await reads.list_submissions(
            store, SnapshotQuery(record=RecordType.SUBMISSION), after, 50
        )
        seen += [item["submission_id"] for item in page.items]
        assert {item["status"] for item in page.items} <= {"notified"}
        if page.next is None:
            break
        after = page.next
    assert len(seen) == len(set(seen)) == 120
