"""`submission.grouped` in the archive (in-memory store): its place in the lifecycle, the
`campaigns` projection under redelivery and disorder, and `GET /v1/campaigns` with its scopes,
pages and access events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from pydantic import SecretStr
from pymongo.errors import AutoReconnect

from services.archive import audit
from services.archive.app import build
from services.archive.archiver import Archiver
from services.archive.clients import ApiClientConfig
from services.archive.projection import current
from services.archive.settings import ArchiveSettings, ArchiveTopics
from shared import events, topics
from shared.kafka import Record, make_broker
from shared.models import Submission
from shared.settings import KafkaSettings
from tests import archive_samples as samples
from tests.archive_samples import record
from tests.component.archive_fake import InMemoryArchiveStore

Document = dict[str, Any]

AUDITOR = {"Authorization": "Bearer auditor-token"}
READER = {"Authorization": "Bearer reader-token"}
LAW = samples.LEGISLATION_REF
TOPICS = ArchiveTopics()


@pytest.fixture
def store() -> InMemoryArchiveStore:
    return InMemoryArchiveStore()


@pytest.fixture
async def running(
    store: InMemoryArchiveStore,
) -> AsyncIterator[tuple[KafkaBroker, httpx.AsyncClient]]:
    settings = ArchiveSettings(
        api_clients=(
            ApiClientConfig(
                name="auditor-1",
                token=SecretStr("auditor-token"),
                scopes=("read", "personal_data"),
            ),
            ApiClientConfig(name="dashboard", token=SecretStr("reader-token"), scopes=("read",)),
        ),
        verify_interval_seconds=0,
        kafka=KafkaSettings(lag_interval_seconds=0),
    )
    broker = make_broker(settings.kafka, service="archive")
    app = build(settings, store=store, broker=broker)
    async with TestKafkaBroker(broker) as test_broker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://archive") as client:
            yield test_broker, client


async def _grouped(broker: KafkaBroker, event: events.SubmissionGrouped) -> None:
    await broker.publish(samples.encode(event), topics.GROUPED)


def _text(response: httpx.Response) -> str:
    return response.text + json.dumps(response.json(), ensure_ascii=False)


async def _campaign(
    broker: KafkaBroker,
    size: int,
    *,
    legislation_ref: str | None = LAW,
    unit: str = "legislations_office",
    body: str = samples.BODY,
) -> Submission:
    """Archive a campaign of `size` members, members in order; return its first member."""
    first = samples.submission(legislation_ref=legislation_ref, body=body)
    await broker.publish(samples.encode(samples.accepted(first)), topics.ACCEPTED)
    await _grouped(broker, samples.grouped(first, unit=unit))
    for n in range(2, size + 1):
        copy = samples.submission(legislation_ref=legislation_ref, body=body)
        await _grouped(broker, samples.grouped(copy, samples.member(first, n, unit=unit), unit))
    return first


async def _page(client: httpx.AsyncClient, query: str, headers: dict[str, str]) -> Document:
    response = await client.get(f"/v1/campaigns?{query}", headers=headers)
    assert response.status_code == 200, response.text
    body: Document = response.json()
    return body


async def test_sizes_are_right_whatever_the_order_and_however_often_members_arrive(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, client = running
    first = samples.submission()
    members = [samples.submission() for _ in range(4)]  # sizes 2, 3, 4, 5
    decided = [
        samples.grouped(sub, samples.member(first, n)) for n, sub in enumerate(members, start=2)
    ]
    for event in (decided[2], decided[0], decided[0], decided[3], decided[1], decided[2]):
        await _grouped(broker, event)  # out of order, two of them twice
    body = await _page(client, f"legislation_ref={LAW}", AUDITOR)
    [campaign] = body["items"]
    assert campaign["size"] == 5
    assert campaign["campaign_id"] == samples.member(first, 2).campaign_id
    assert campaign["first_member"] == {
        "submission_id": first.submission_id,
        "reference": first.reference,
    }
    assert (campaign["scope"], campaign["legislation_ref"], campaign["unit"]) == (
        f"legislation:{LAW}",
        LAW,
        "legislations_office",
    )
    assert body["next_cursor"] is None
    # The first member's own event (no campaign) and a replay of everything change nothing.
    before = dict(store.campaigns)
    await _grouped(broker, samples.grouped(first))
    for event in decided:
        await _grouped(broker, event)
    assert store.campaigns == before
    assert sum(1 for d in store.events.values() if d["event_type"] == "submission.grouped") == 5


async def test_the_representative_text_is_served_only_with_the_personal_data_scope(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    first = await _campaign(broker, 3)
    full = (await _page(client, f"legislation_ref={LAW}", AUDITOR))["items"][0]
    assert full["representative"] == {
        "submission_id": first.submission_id,
        "reference": first.reference,
        "subject": first.subject,
        "body": first.body,
        "redacted": False,
    }
    answer = await client.get(f"/v1/campaigns?legislation_ref={LAW}", headers=READER)
    assert answer.status_code == 200
    redacted = answer.json()["items"][0]
    assert redacted["representative"] == {
        "submission_id": first.submission_id,
        "reference": first.reference,
        "subject": None,
        "body": None,
        "redacted": True,
    }
    assert redacted["size"] == full["size"] == 3
    for personal in (samples.BODY, "a.harbi@example.sa", "عبدالله الحربي", "مشروع نظام الإثبات"):
        assert personal not in _text(answer)


async def test_a_representative_whose_events_are_not_archived_yet_has_no_text(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    first = samples.submission()
    await _grouped(broker, samples.grouped(samples.submission(), samples.member(first, 2)))
    [campaign] = (await _page(client, f"legislation_ref={LAW}", AUDITOR))["items"]
    representative = campaign["representative"]
    assert representative["reference"] == first.reference
    assert (representative["subject"], representative["body"]) == (None, None)
    assert representative["redacted"] is False


async def test_campaigns_are_listed_per_scope_largest_first_then_by_id(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    big = await _campaign(broker, 4)
    small = [await _campaign(broker, 2) for _ in range(2)]
    elsewhere = await _campaign(broker, 5, legislation_ref="MOJ-DRAFT-2026-014")
    voc = await _campaign(broker, 3, legislation_ref=None, unit="voice_of_customer")
    listed = (await _page(client, f"legislation_ref={LAW}", AUDITOR))["items"]
    ids = sorted(samples.member(s, 2).campaign_id for s in small)
    assert [(c["size"], c["campaign_id"]) for c in listed] == [
        (4, samples.member(big, 2).campaign_id),
        (2, ids[0]),
        (2, ids[1]),
    ]
    other = (await _page(client, "legislation_ref=MOJ-DRAFT-2026-014", AUDITOR))["items"]
    assert [c["first_member"]["reference"] for c in other] == [elsewhere.reference]
    by_unit = (await _page(client, "unit=voice_of_customer", READER))["items"]
    assert [(c["scope"], c["unit"], c["legislation_ref"], c["size"]) for c in by_unit] == [
        ("unit:voice_of_customer", "voice_of_customer", None, 3)
    ]
    assert by_unit[0]["first_member"]["submission_id"] == voc.submission_id
    assert (await _page(client, "unit=legislations_office", AUDITOR))["items"] == []


async def test_pages_follow_the_cursor_through_every_campaign_once(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    firsts = [await _campaign(broker, size) for size in (2, 5, 3, 3, 2, 4, 3)]
    expected = sorted(
        (
            (-size, samples.member(f, 2).campaign_id)
            for f, size in zip(firsts, (2, 5, 3, 3, 2, 4, 3), strict=True)
        )
    )
    for limit in (1, 3, 7):
        seen: list[tuple[int, str]] = []
        cursor = None
        for _ in range(10):
            query = f"legislation_ref={LAW}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            body = await _page(client, query, AUDITOR)
            assert len(body["items"]) <= limit
            seen += [(-c["size"], c["campaign_id"]) for c in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, limit
    assert (await _page(client, f"legislation_ref={LAW}&limit=7", AUDITOR))["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        "",
        f"legislation_ref={LAW}&unit=voice_of_customer",
        "unit=a.harbi@example.sa",
        'unit={"$gt": ""}',
        "legislation_ref=%07",
        f"legislation_ref={'x' * 65}",
        f"legislation_ref={LAW}&limit=0",
        f"legislation_ref={LAW}&limit=201",
        f"legislation_ref={LAW}&cursor=$$$",
        f"legislation_ref={LAW}&cursor=bm90LWEtY3Vyc29y",
    ],
)
async def test_listing_parameters_are_validated_before_any_query(
    running: tuple[KafkaBroker, httpx.AsyncClient], query: str
) -> None:
    _, client = running
    response = await client.get(f"/v1/campaigns?{query}", headers=AUDITOR)
    assert response.status_code == 422
    assert "example.sa" not in response.text


async def test_every_campaign_read_is_an_access_event_and_refusals_read_nothing(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, client = running
    await _campaign(broker, 2)
    await client.get(f"/v1/campaigns?legislation_ref={LAW}&limit=5", headers=AUDITOR)
    await client.get("/v1/campaigns?unit=voice_of_customer", headers=READER)
    assert (await client.get(f"/v1/campaigns?legislation_ref={LAW}")).status_code == 401
    accessed = sorted(
        (d for d in store.events.values() if d["event_type"] == "archive.accessed"),
        key=lambda d: (d["occurred_at"], d["seq"]),
    )
    payloads = [orjson.loads(d["event"])["payload"] for d in accessed]
    assert [(p["client"], p["endpoint"], p["personal_data"], p["query"]) for p in payloads] == [
        ("auditor-1", "/v1/campaigns", True, {"legislation_ref": LAW, "limit": "5"}),
        ("dashboard", "/v1/campaigns", False, {"unit": "voice_of_customer", "limit": "50"}),
    ]
    assert not [d for d in accessed if samples.BODY in d["event"]]
    assert (await audit.verify_all(store)).ok


async def test_the_openapi_document_describes_the_campaign_listing(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    _, client = running
    spec = (await client.get("/openapi.json")).json()
    listing = spec["paths"]["/v1/campaigns"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "legislation_ref",
        "unit",
        "limit",
        "cursor",
    }
    assert "personal_data" in listing["description"]
    assert {"CampaignPage", "CampaignView", "Representative"} <= set(spec["components"]["schemas"])


# The lifecycle: where a grouped event puts a submission (archiver and fake store alone).


class Feed:
    """Hands out records with increasing offsets, like a partition."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, topic: str, event: events.Envelope) -> Record:
        self.offset += 1
        return record(topic, samples.encode(event), offset=self.offset)


def _status(store: InMemoryArchiveStore, chain: str) -> object:
    state = current([d for d in store.submissions.values() if d["submission_id"] == chain])
    assert state is not None
    return state["status"]


async def test_a_grouped_submission_is_grouped_until_its_notification() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    archiver = Archiver(store, TOPICS, cache_size=100)
    await archiver.archive([feed(TOPICS.accepted, samples.accepted(sub))])
    await archiver.archive([feed(TOPICS.routed, samples.routed(sub))])
    assert _status(store, sub.submission_id) == "routed"
    await archiver.archive([feed(TOPICS.grouped, samples.grouped(sub))])
    assert _status(store, sub.submission_id) == "grouped"
    await archiver.archive([feed(TOPICS.notifications, samples.notified(sub))])
    assert _status(store, sub.submission_id) == "notified"


@pytest.mark.parametrize("cache_size", [100, 0])
async def test_a_grouped_event_after_the_notification_never_moves_the_status_back(
    cache_size: int,
) -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    first = samples.submission()
    archiver = Archiver(store, TOPICS, cache_size=cache_size)
    await archiver.archive([feed(TOPICS.notifications, samples.notified(sub))])
    await archiver.archive([feed(TOPICS.accepted, samples.accepted(sub))])
    await archiver.archive([feed(TOPICS.grouped, samples.grouped(sub, samples.member(first, 2)))])
    assert _status(store, sub.submission_id) == "notified"
    state = current(
        [d for d in store.submissions.values() if d["submission_id"] == sub.submission_id]
    )
    assert state is not None
    assert (state["unit"], state["rule_id"]) == ("legislations_office", "legislation-reference")
    assert [c["size"] for c in store.campaigns.values()] == [2]


async def test_a_timeline_in_one_instant_puts_grouped_between_routed_and_notified(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    sub = samples.submission()
    instant = datetime.now(UTC).replace(microsecond=0)
    lifecycle: list[tuple[str, events.Envelope]] = [
        (topics.NOTIFICATIONS, samples.notified(sub)),
        (topics.GROUPED, samples.grouped(sub)),
        (topics.ROUTED, samples.routed(sub)),
        (topics.ACCEPTED, samples.accepted(sub)),
    ]
    for topic, event in lifecycle:
        await broker.publish(
            samples.encode(event.model_copy(update={"occurred_at": instant})), topic
        )
    body = (await client.get(f"/v1/submissions/{sub.reference}", headers=READER)).json()
    assert [e["event_type"] for e in body["timeline"]] == [
        "submission.accepted",
        "submission.routed",
        "submission.grouped",
        "notification.sent",
    ]
    assert body["submission"]["status"] == "notified"
    grouped = body["timeline"][2]
    assert grouped["redacted"] is True
    assert grouped["event"]["payload"]["submission"]["body"] == "[redacted]"


async def test_a_batch_of_many_members_writes_each_campaign_once() -> None:
    store, feed = InMemoryArchiveStore(), Feed()
    firsts = [samples.submission() for _ in range(2)]
    batch = [
        feed(TOPICS.grouped, samples.grouped(samples.submission(), samples.member(first, n)))
        for n in range(2, 12)
        for first in firsts
    ]
    await Archiver(store, TOPICS, cache_size=100).archive(batch)
    assert store.campaign_writes == 2
    assert sorted(c["size"] for c in store.campaigns.values()) == [11, 11]


async def test_a_crash_before_the_campaigns_are_written_is_healed_by_the_redelivery() -> None:
    store, feed, first = InMemoryArchiveStore(), Feed(), samples.submission()
    batch = [
        feed(TOPICS.grouped, samples.grouped(samples.submission(), samples.member(first, n)))
        for n in (2, 3)
    ]
    original = store.upsert_campaigns

    async def crash(_updates: object) -> None:
        raise AutoReconnect("gone")

    store.upsert_campaigns = crash  # type: ignore[method-assign,assignment]
    with pytest.raises(AutoReconnect):
        await Archiver(store, TOPICS, cache_size=100).archive(batch)
    assert len(store.events) == 2
    assert store.campaigns == {}
    store.upsert_campaigns = original  # type: ignore[method-assign]
    await Archiver(store, TOPICS, cache_size=100).archive(batch)
    assert [c["size"] for c in store.campaigns.values()] == [3]
