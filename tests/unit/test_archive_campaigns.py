"""The archive and `submission.grouped`: its status, the campaign it names, the projection's
updates, the listing's cursor and the representative's text."""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.archive import campaigns, records
from services.archive.campaigns import CampaignPosition, Membership
from services.archive.projection import current, snapshot_order
from services.archive.settings import ArchiveTopics
from services.archive.status import RANK, Status
from shared import events
from tests import archive_samples as samples
from tests.archive_samples import record

TOPICS = ArchiveTopics()
AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _read(event: events.Envelope) -> records.Entry:
    return records.read(record(TOPICS.grouped, samples.encode(event)), TOPICS)


def test_the_archive_reads_the_grouped_topic() -> None:
    assert TOPICS.grouped == "feedback.grouped.v1"
    assert TOPICS.grouped in TOPICS.all()


def test_a_grouped_event_has_the_grouped_status_and_the_routing_facts() -> None:
    first = samples.submission()
    entry = _read(samples.grouped(samples.submission(), samples.member(first, 2)))
    assert entry.event_type == "submission.grouped"
    assert entry.facts.status is Status.GROUPED
    assert (entry.facts.unit, entry.facts.rule_id, entry.facts.channel) == (
        "legislations_office",
        "legislation-reference",
        "istitlaa",
    )


def test_grouped_ranks_above_routed_and_below_every_notification_outcome() -> None:
    grouped = RANK[Status.GROUPED]
    assert RANK[Status.ROUTED] < grouped < RANK[Status.NOTIFICATION_DEFERRED]
    assert grouped < RANK[Status.NOTIFICATION_FAILED] < RANK[Status.NOTIFIED]


def test_snapshots_stored_with_the_ranks_before_grouped_are_ordered_by_their_status() -> None:
    # Before `grouped` existed: deferred 5, failed 6, notified 7.
    old_deferred = {"status": "notification_deferred", "rank": 5, "revision": 2}
    old_notified = {"status": "notified", "rank": 7, "revision": 2}
    new_grouped = {"status": "grouped", "rank": RANK[Status.GROUPED], "revision": 9}
    new_failed = {"status": "notification_failed", "rank": RANK[Status.NOTIFICATION_FAILED]}
    assert snapshot_order(old_deferred) > snapshot_order(new_grouped)
    assert snapshot_order(old_notified) > snapshot_order(new_failed)
    chosen = current([new_grouped, old_deferred])
    assert chosen is not None
    assert chosen["status"] == "notification_deferred"


def test_a_member_names_its_campaign_and_its_first_member() -> None:
    first, second = samples.submission(), samples.submission()
    joined = samples.member(first, 2)
    entry = _read(samples.grouped(second, joined))
    assert entry.campaign == Membership(
        campaign_id=joined.campaign_id,
        scope="legislation:MOJ-DRAFT-2026-003",
        size=2,
        first_submission_id=first.submission_id,
        first_reference=first.reference,
        legislation_ref="MOJ-DRAFT-2026-003",
        unit="legislations_office",
        occurred_at=entry.occurred_at,
    )


def test_a_first_member_on_its_own_event_names_no_campaign() -> None:
    assert _read(samples.grouped(samples.submission())).campaign is None


def test_a_campaign_of_a_unit_scope_keeps_the_unit_and_no_legislation() -> None:
    first = samples.submission(legislation_ref=None)
    joined = samples.member(first, 2, unit="voice_of_customer")
    second = samples.submission(legislation_ref=None)
    found = _read(samples.grouped(second, joined, unit="voice_of_customer")).campaign
    assert found is not None
    assert (found.scope, found.unit, found.legislation_ref) == (
        "unit:voice_of_customer",
        "voice_of_customer",
        None,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"scope": "consultation:x"},
        {"scope": "unit:a.harbi@example.sa"},
        {"scope": "legislation:\x07bell"},
        {"campaign": {"first_reference": "call me on 0551234567"}},
        {"campaign": {"campaign_id": "{'$gt': ''}"}},
        {"campaign": {"size": 0}},
    ],
)
def test_a_membership_of_an_unexpected_form_is_archived_but_not_projected(
    change: dict[str, object],
) -> None:
    first = samples.submission()
    data = orjson.loads(
        samples.encode(samples.grouped(samples.submission(), samples.member(first, 2)))
    )
    payload = data["payload"]
    for name, value in change.items():
        if isinstance(value, dict):
            payload[name].update(value)
        else:
            payload[name] = value
    entry = records.read(record(TOPICS.grouped, orjson.dumps(data)), TOPICS)
    assert entry.facts.status is Status.GROUPED
    assert entry.campaign is None


def _member(size: int, *, at: datetime = AT, campaign: str = "c-1") -> Membership:
    return Membership(
        campaign_id=campaign,
        scope="legislation:L-1",
        size=size,
        first_submission_id="s-1",
        first_reference="SADA-0000-0001",
        legislation_ref="L-1",
        unit="legislations_office",
        occurred_at=at,
    )


def test_one_change_per_campaign_with_its_largest_size_and_latest_time() -> None:
    later = AT + timedelta(minutes=5)
    merged = campaigns.changes(
        [_member(3, at=later), _member(2), _member(5, campaign="c-2"), _member(3, at=later)]
    )
    assert [(m.campaign_id, m.size, m.occurred_at) for m in merged] == [
        ("c-1", 3, later),
        ("c-2", 5, AT),
    ]


def test_the_update_is_an_idempotent_upsert_of_set_on_insert_and_max_only() -> None:
    change = campaigns.update(_member(4), AT)
    assert set(change) == {"$setOnInsert", "$max"}
    assert change["$max"] == {"size": 4, "last_seen_at": AT}
    assert change["$setOnInsert"] == {
        "scope": "legislation:L-1",
        "first_submission_id": "s-1",
        "first_reference": "SADA-0000-0001",
        "legislation_ref": "L-1",
        "unit": "legislations_office",
        "created_at": AT,
    }


def _apply(
    doc: dict[str, object] | None, change: dict[str, dict[str, object]]
) -> dict[str, object]:
    """Apply an upsert as MongoDB does, for the two operators the archive uses."""
    out = dict(change["$setOnInsert"]) if doc is None else dict(doc)
    for name, value in change["$max"].items():
        if name not in out or value > out[name]:  # type: ignore[operator]
            out[name] = value
    return out


@given(st.lists(st.integers(min_value=2, max_value=9), min_size=1, max_size=12))
def test_any_order_and_any_repeats_of_the_members_give_the_same_campaign(sizes: list[int]) -> None:
    members = [_member(size, at=AT + timedelta(seconds=size)) for size in sizes]
    results = set()
    for order in itertools.islice(itertools.permutations(members), 6):
        doc = None
        for member in order:
            doc = _apply(doc, campaigns.update(member, AT))
        assert doc is not None
        results.add((doc["size"], doc["last_seen_at"]))
    assert results == {(max(sizes), AT + timedelta(seconds=max(sizes)))}


def test_scope_of_a_listing() -> None:
    assert campaigns.scope_of("MOJ-DRAFT-2026-003", None) == "legislation:MOJ-DRAFT-2026-003"
    assert campaigns.scope_of(None, "voice_of_customer") == "unit:voice_of_customer"


def test_cursor_round_trips_a_position() -> None:
    position = CampaignPosition(412, "0b6c5d1e-1f2a-5b3c-8d4e-5f6a7b8c9d0e")
    cursor = campaigns.encode_cursor(position)
    assert cursor.replace("-", "").replace("_", "").isalnum()
    assert campaigns.decode_cursor(cursor) == position


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1]", b'["3", "id"]', b'[true, "id"]', b'[-1, "id"]', b'[3, {"$gt": ""}]'],
)
def test_a_campaign_cursor_the_api_did_not_issue_is_refused(raw: bytes) -> None:
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(campaigns.BadCursorError):
        campaigns.decode_cursor(cursor)


def test_the_listing_filter_takes_the_scope_and_the_cursor_as_values_only() -> None:
    assert campaigns.listing_filter("unit:x", None) == {"scope": "unit:x"}
    assert campaigns.listing_filter("unit:x", CampaignPosition(7, "c-9")) == {
        "scope": "unit:x",
        "$or": [{"size": {"$lt": 7}}, {"size": 7, "_id": {"$gt": "c-9"}}],
    }


def _stored(event: events.Envelope, seq: int) -> dict[str, object]:
    return {
        "submission_id": event.submission_id,
        "seq": seq,
        "event_type": event.event_type,
        "event": samples.encode(event).decode(),
    }


def test_the_representative_text_is_the_first_grouped_decision_else_the_routed_one() -> None:
    founder = samples.submission(subject="Article 12", body="Thirty days is fair.")
    edited = founder.model_copy(update={"body": "Sixty days is fair."})
    other = samples.submission(subject="Article 3", body="Keep it.")
    docs = [
        _stored(samples.accepted(founder), 0),
        _stored(samples.routed(founder), 1),
        _stored(samples.grouped(edited), 3),
        _stored(samples.grouped(founder), 2),
        _stored(samples.accepted(other), 0),
        _stored(samples.routed(other), 1),
        _stored(samples.notified(other), 2),
    ]
    texts = campaigns.representative_text(docs)
    assert texts[founder.submission_id] == campaigns.Text("Article 12", "Thirty days is fair.")
    assert texts[other.submission_id] == campaigns.Text("Article 3", "Keep it.")


def test_a_tampered_or_textless_chain_gives_no_representative_text() -> None:
    sub = samples.submission()
    tampered = {**_stored(samples.grouped(sub), 0), "event": "{not json"}
    assert campaigns.representative_text([tampered, _stored(samples.notified(sub), 1)]) == {}
