"""Chunked bulk updates: small commands for FerretDB, and which refusals are transient."""

from __future__ import annotations

from typing import Any, cast

import pytest
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shared.mongo import DUPLICATE_KEY, UPDATES_PER_COMMAND, Document, bulk_write_chunked
from shared.retry import TransientError


class Collection:
    """Records each bulk_write's size; refuses with `details` when given."""

    def __init__(self, details: dict[str, Any] | None = None) -> None:
        self.commands: list[int] = []
        self.details = details

    async def bulk_write(self, requests: list[UpdateOne], *, ordered: bool) -> None:
        assert not ordered
        self.commands.append(len(requests))
        if self.details is not None:
            raise BulkWriteError(self.details)


def updates(n: int) -> list[UpdateOne]:
    return [UpdateOne({"_id": i}, {"$max": {"size": 2}}, upsert=True) for i in range(n)]


def collection(fake: Collection) -> AsyncCollection[Document]:
    return cast(AsyncCollection[Document], fake)


async def test_updates_go_in_commands_far_below_the_100_that_wedge_ferretdb() -> None:
    fake = Collection()
    await bulk_write_chunked(collection(fake), updates(150))
    assert sum(fake.commands) == 150
    assert max(fake.commands) == UPDATES_PER_COMMAND < 100


async def test_a_concurrent_upsert_of_the_same_document_is_transient() -> None:
    fake = Collection({"writeErrors": [{"index": 0, "code": DUPLICATE_KEY}]})
    with pytest.raises(TransientError):
        await bulk_write_chunked(collection(fake), updates(3))


async def test_any_other_refusal_is_raised_as_it_is() -> None:
    fake = Collection({"writeErrors": [{"index": 0, "code": 2}]})
    with pytest.raises(BulkWriteError):
        await bulk_write_chunked(collection(fake), updates(3))


async def test_nothing_to_write_sends_no_command() -> None:
    fake = Collection()
    await bulk_write_chunked(collection(fake), [])
    assert fake.commands == []
