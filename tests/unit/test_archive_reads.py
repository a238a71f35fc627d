"""Cursors, listing filters and settings of the archive's read API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.archive import reads
from services.archive.settings import ArchiveSettings
from services.archive.status import RANK, STATUS_AT, RecordType, Status
from services.archive.store import Position, SnapshotQuery, events_filter, snapshot_filter
from shared.settings import MongoSettings

AT = datetime(2026, 11, 30, 6, 0, 0, 123000, tzinfo=UTC)


def test_cursor_round_trips_a_position() -> None:
    position = Position(AT, "c6d1b9e2-0000-5000-8000-000000000000:3:5")
    cursor = reads.encode_cursor(position)
    assert cursor.replace("-", "").replace("_", "").isalnum()
    assert reads.decode_cursor(cursor) == position


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!",
        "bm90LWpzb24",
        "WzEsMl0",
        "WyJub3QtYS1kYXRlIiwiaWQiXQ",
        "WyIyMDI2LTExLTMwIiwiaWQiXQ",
    ],
)
def test_a_cursor_the_api_did_not_issue_is_refused(cursor: str) -> None:
    with pytest.raises(reads.BadCursorError):
        reads.decode_cursor(cursor)


def _values(found: Any) -> list[Any]:
    """Every value in a filter, depth first (operators are keys, never values from outside)."""
    if isinstance(found, dict):
        return [v for value in found.values() for v in _values(value)]
    if isinstance(found, list):
        return [v for value in found for v in _values(value)]
    return [found]


def _keys(found: Any) -> set[str]:
    if isinstance(found, dict):
        return set(found) | {k for value in found.values() for k in _keys(value)}
    if isinstance(found, list):
        return {k for value in found for k in _keys(value)}
    return set()


@given(unit=st.text(max_size=20), channel=st.text(max_size=20), ident=st.text(max_size=20))
def test_listing_filter_only_ever_holds_plain_values_under_fixed_keys(
    unit: str, channel: str, ident: str
) -> None:
    query = SnapshotQuery(
        status=Status.ROUTED, unit=unit, channel=channel, kind="idea", since=AT, until=AT
    )
    found = snapshot_filter(query, Position(AT, ident))
    assert _keys(found) <= {
        "record",
        "status",
        "unit",
        "channel",
        "kind",
        "created_at",
        "$gte",
        "$lt",
        "$gt",
        "$or",
        "_id",
    }
    assert all(isinstance(v, str | datetime) for v in _values(found))
    assert found["unit"] == unit


def test_listing_keyset_follows_the_order() -> None:
    after = Position(AT, "x")
    newest_first = snapshot_filter(SnapshotQuery(descending=True), after)["$or"]
    oldest_first = snapshot_filter(SnapshotQuery(descending=False), after)["$or"]
    assert newest_first == [{"created_at": {"$lt": AT}}, {"created_at": AT, "_id": {"$lt": "x"}}]
    assert oldest_first[1] == {"created_at": AT, "_id": {"$gt": "x"}}
    assert snapshot_filter(SnapshotQuery(record=RecordType.RECEIPT), None) == {"record": "receipt"}
    assert events_filter(AT, AT, None) == {"archived_at": {"$gte": AT, "$lt": AT}}


def test_statuses_never_share_a_rank_and_only_rise() -> None:
    assert [RANK[s] for s in Status] == list(range(len(Status)))
    assert RANK[Status.NOTIFIED] > RANK[Status.NOTIFICATION_FAILED] > RANK[Status.ROUTED]
    assert RANK[Status.ACCEPTED] > RANK[Status.REJECTED] > RANK[Status.RECEIVED]
    assert all(STATUS_AT[RANK[s]] is s for s in Status)


def test_default_api_token_is_refused_outside_local_mode() -> None:
    assert ArchiveSettings().api_tokens == ()  # the local default client comes from clients.load
    with pytest.raises(ValidationError, match="SADA_ARCHIVE_API_TOKENS"):
        ArchiveSettings(
            environment="production", allow_insecure_transport=True, api_tokens=("local-dev-token",)
        )
    with pytest.raises(ValidationError, match="SADA_ARCHIVE_API_TOKEN"):
        ArchiveSettings(
            environment="production", allow_insecure_transport=True, archive_api_token="changeme"
        )
    ok = ArchiveSettings(
        environment="production", allow_insecure_transport=True, api_tokens=("a-real-long-token",)
    )
    assert ok.api_tokens[0].get_secret_value() == "a-real-long-token"


def test_tokens_and_topics_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SADA_ARCHIVE_API_TOKENS", '["t-one", "t-two"]')
    monkeypatch.setenv("SADA_TOPICS__ROUTED", "test.routed")
    monkeypatch.setenv("SADA_MONGO__DATABASE", "elsewhere")
    settings = ArchiveSettings()
    assert [t.get_secret_value() for t in settings.api_tokens] == ["t-one", "t-two"]
    assert settings.topics.routed == "test.routed"
    assert settings.topics.all()[0] == "feedback.submissions.v1"
    assert settings.mongo.database == "elsewhere"


def test_shared_mongo_settings_are_accepted_with_the_archive_database_as_default() -> None:
    given = ArchiveSettings(mongo=MongoSettings(uri="mongodb://h:1/"))
    assert given.mongo.database == "sada_archive"
    assert given.mongo.uri.get_secret_value() == "mongodb://h:1/"
    named = ArchiveSettings(mongo=MongoSettings(database="x", timeout_ms=1000))
    assert (named.mongo.database, named.mongo.timeout_ms) == ("x", 1000)


def test_setting_only_the_mongo_uri_keeps_the_archive_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SADA_MONGO__URI", "mongodb://db.internal:27017/")
    settings = ArchiveSettings()
    assert settings.mongo.database == "sada_archive"
    assert settings.mongo.uri.get_secret_value() == "mongodb://db.internal:27017/"
    assert "t-one" not in repr(settings)
