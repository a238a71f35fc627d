"""The e2e installation: isolated infrastructure, eight service processes, and a results table.

Each test records a row (fault, inputs, lost, duplicates, recovery time); at the end of the
session the rows become `docs/reliability.md` and the README's results block, so the table a
reader sees is the one the suite produced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from deploy.local.topics import ensure_topics
from tests.e2e import harness
from tests.e2e.results import Results
from tests.infra import ROOT


@pytest.fixture(scope="session")
def results() -> Iterator[Results]:
    collected = Results()
    yield collected
    if collected.rows:
        collected.write(ROOT / "docs" / "reliability.md", ROOT / "README.md")


@pytest.fixture(scope="session")
async def cluster() -> AsyncIterator[harness.Cluster]:
    harness.infra("reset")
    harness.infra("up")
    await ensure_topics(harness.BOOTSTRAP, partitions=3, single_node=True)
    processes = harness.Cluster.build()
    await processes.start()
    try:
        yield processes
    finally:
        processes.stop()
        harness.infra("down")


@pytest.fixture
def started_at() -> datetime:
    """The moment a test began: archive queries are limited to what came after it."""
    return datetime.now(UTC)
