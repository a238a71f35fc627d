"""Measure what recording every API read costs: the archive's access log on the real database.

`python -m bench.access_log [--mongo mongodb://127.0.0.1:27017/]` runs `AccessLog` on a fresh
database: 200 reads one after another (each waits for its own insert), then 2,000 reads by 20
and by 200 concurrent readers (group commit: one insert per burst), and prints the time per
read, reads per second and inserts made. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from services.archive.access import Access, AccessLog
from services.archive.store import MongoArchiveStore
from shared.events import Producer
from shared.mongo import make_client
from shared.settings import MongoSettings

READ = Access(client="dashboard", endpoint="/v1/submissions", status=200, personal_data=False)


class CountingStore(MongoArchiveStore):
    """The real store, counting its appends."""

    appends = 0

    async def append_events(self, docs: Sequence[dict[str, Any]]) -> int:
        """Count, then append as the real store does."""
        self.appends += 1
        return await super().append_events(docs)


async def _readers(log: AccessLog, readers: int, reads: int) -> None:
    async def one_reader() -> None:
        for _ in range(reads // readers):
            await log.record(READ)

    await asyncio.gather(*(one_reader() for _ in range(readers)))


async def _run(uri: str) -> None:
    client = make_client(MongoSettings(uri=uri), app_name="bench-access")
    database = f"bench_access_{uuid.uuid4().hex[:8]}"
    store = CountingStore(client, database)
    await store.ensure_indexes()
    producer = Producer(service="archive", version="bench")
    log = AccessLog(store, producer=producer, queue_size=10_000, batch_size=500, timeout=30)
    await log.start()
    try:
        started = time.perf_counter()
        for _ in range(200):
            await log.record(READ)
        each = (time.perf_counter() - started) / 200 * 1000
        print(f"1 reader: 200 reads, {each:.2f} ms each, {store.appends} inserts")
        for readers in (20, 200):
            store.appends = 0
            started = time.perf_counter()
            await _readers(log, readers, 2000)
            rate = 2000 / (time.perf_counter() - started)
            print(f"{readers} readers: 2000 reads, {rate:,.0f} reads/s, {store.appends} inserts")
    finally:
        await log.stop()
        await client.drop_database(database)
        await client.close()


def main() -> None:
    """Parse the arguments and measure."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017/")
    asyncio.run(_run(parser.parse_args().mongo))


if __name__ == "__main__":
    main()
