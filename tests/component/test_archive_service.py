"""The archive service wired with FastStream's TestKafkaBroker, an in-memory store and its API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from pydantic import SecretStr
from pymongo.errors import OperationFailure

from services.archive.app import build
from services.archive.chain import link_hash
from services.archive.clients import ApiClientConfig
from services.archive.records import UNREADABLE
from services.archive.settings import ArchiveSettings
from shared import events, kafka, topics
from shared.kafka import make_broker
from shared.models import Kind, Submission
from shared.settings import KafkaSettings
from tests import archive_samples as samples
from tests.component.archive_fake import InMemoryArchiveStore

TOKEN = "component-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READER = {"Authorization": "Bearer second-token"}
"""A token of the older plain list: a client with the `read` scope only."""


@pytest.fixture
def store() -> InMemoryArchiveStore:
    return InMemoryArchiveStore()


@pytest.fixture
def settings() -> ArchiveSettings:
    auditor = ApiClientConfig(
        name="auditor", token=SecretStr(TOKEN), scopes=("read", "personal_data")
    )
    return ArchiveSettings(
        api_clients=(auditor,),
        api_tokens=(SecretStr("second-token"),),
        verify_interval_seconds=0,
        kafka=KafkaSettings(lag_interval_seconds=0),
    )


@pytest.fixture
async def running(
    store: InMemoryArchiveStore, settings: ArchiveSettings
) -> AsyncIterator[tuple[KafkaBroker, httpx.AsyncClient]]:
    broker = make_broker(settings.kafka, service="archive")
    app = build(settings, store=store, broker=broker)
    async with TestKafkaBroker(broker) as test_broker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://archive") as client:
            yield test_broker, client


async def _publish(broker: KafkaBroker, topic: str, value: bytes) -> None:
    await broker.publish(value, topic)


async def _lifecycle(broker: KafkaBroker, sub: Submission | None = None) -> str:
    sub = sub or samples.submission()
    await _publish(broker, topics.ACCEPTED, samples.encode(samples.accepted(sub)))
    await _publish(broker, topics.ROUTED, samples.encode(samples.routed(sub)))
    await _publish(broker, topics.NOTIFICATIONS, samples.encode(samples.notified(sub)))
    return sub.submission_id


async def test_every_topic_lands_in_the_archive(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, _ = running
    raw = samples.raw_submission()
    await _publish(broker, topics.SUBMISSIONS, raw)
    sid = await _lifecycle(broker)
    await _publish(broker, topics.GROUPED, samples.encode(samples.grouped(samples.submission())))
    await _publish(broker, topics.REJECTED, samples.encode(samples.rejected()))
    await _publish(broker, topics.DEADLETTER, samples.encode(samples.dead_letter("x.v1", 0, 1)))
    by_topic = {d["topic"] for d in store.events.values()}
    assert by_topic == set(topics.ALL)
    assert [d["seq"] for d in store.events.values() if d["submission_id"] == sid] == [0, 1, 2]
    receipt = next(d for d in store.events.values() if d["topic"] == topics.SUBMISSIONS)
    assert isinstance(receipt["event"], str)
    assert orjson.loads(receipt["event"])["raw"] == raw.decode()


async def test_redelivered_events_are_a_no_op(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, _ = running
    sub = samples.submission()
    await _lifecycle(broker, sub)
    before = {k: dict(v) for k, v in store.events.items()}
    await _lifecycle(broker, sub)
    assert store.events == before


async def test_unreadable_record_is_dead_lettered_then_archived_from_the_dead_letter_topic(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, _ = running
    await _publish(broker, topics.ROUTED, b'{"not": "an event", "email": "x@example.sa"}')
    letters = [d for d in store.events.values() if d["event_type"] == "message.deadlettered"]
    assert len(letters) == 1
    payload = orjson.loads(letters[0]["event"])["payload"]
    assert payload["source"]["topic"] == topics.ROUTED
    assert payload["service"] == "archive"
    assert "example.sa" not in payload["error"]


async def test_garbage_on_the_dead_letter_topic_is_archived_raw_without_looping(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, _ = running
    await _publish(broker, topics.DEADLETTER, b"\x00\xffnot an event")
    assert [d["event_type"] for d in store.events.values()] == [UNREADABLE]


async def test_a_dead_letter_the_store_refuses_is_skipped_and_counted_never_dead_lettered_again(
    running: tuple[KafkaBroker, httpx.AsyncClient],
    store: InMemoryArchiveStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker, _ = running
    insert = store.insert_events

    async def refuse_dead_letters(docs: Sequence[dict[str, Any]]) -> set[int]:
        if any(doc["topic"] == topics.DEADLETTER for doc in docs):
            raise OperationFailure("object to insert too large", code=10334)  # the record's fault
        return await insert(docs)

    monkeypatch.setattr(store, "insert_events", refuse_dead_letters)
    skipped = kafka.DEADLETTER_UNHANDLED.labels("archive", topics.DEADLETTER)
    dead_lettered = kafka.DEADLETTERS.labels("archive", topics.DEADLETTER)
    before = (skipped._value.get(), dead_lettered._value.get())
    await _publish(broker, topics.DEADLETTER, samples.encode(samples.dead_letter("x.v1", 0, 1)))
    assert (skipped._value.get(), dead_lettered._value.get()) == (before[0] + 1, before[1])
    sid = await _lifecycle(broker)  # the archive goes on
    assert [d["seq"] for d in store.events.values() if d["submission_id"] == sid] == [0, 1, 2]


async def test_api_refuses_a_request_without_a_valid_token(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    _, client = running
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.get("/v1/submissions", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/v1/export?since=2026-01-01T00:00:00Z")).status_code == 401
    ok = await client.get("/v1/submissions", headers=READER)
    assert ok.status_code == 200
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/submissions/{key}/verify" in spec["paths"]


async def test_submission_by_reference_or_id_has_its_full_timeline_with_the_receipt(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    raw = samples.raw_submission()
    await _publish(broker, topics.SUBMISSIONS, raw)
    source = events.SourcePosition(topic=topics.SUBMISSIONS, partition=0, offset=0)
    sub = samples.submission()
    await _publish(broker, topics.ACCEPTED, samples.encode(samples.accepted(sub, source)))
    await _publish(broker, topics.ROUTED, samples.encode(samples.routed(sub)))
    for key in (sub.reference, sub.reference.lower(), sub.submission_id.upper()):
        response = await client.get(f"/v1/submissions/{key}", headers=AUTH)
        assert response.status_code == 200, key
        body = response.json()
        assert body["submission"]["status"] == "routed"
        assert body["submission"]["unit"] == "legislations_office"
        types = [e["event_type"] for e in body["timeline"]]
        assert types == ["submission.received", "submission.accepted", "submission.routed"]
    timeline = body["timeline"]
    assert timeline[0]["event"]["raw"] == raw.decode()
    assert timeline[2]["prev_hash"] == timeline[1]["hash"]


async def test_timeline_follows_the_lifecycle_when_events_arrive_out_of_order_in_one_instant(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    sub = samples.submission()
    instant = datetime.now(UTC).replace(microsecond=0)
    lifecycle = [samples.accepted(sub), samples.routed(sub), samples.notified(sub)]
    same_time = [e.model_copy(update={"occurred_at": instant}) for e in lifecycle]
    for topic, event in zip(
        (topics.NOTIFICATIONS, topics.ROUTED, topics.ACCEPTED), reversed(same_time), strict=True
    ):
        await _publish(broker, topic, samples.encode(event))
    body = (await client.get(f"/v1/submissions/{sub.reference}", headers=AUTH)).json()
    assert [e["event_type"] for e in body["timeline"]] == [
        "submission.accepted",
        "submission.routed",
        "notification.sent",
    ]
    assert [e["seq"] for e in body["timeline"]] == [2, 1, 0]
    assert body["submission"]["status"] == "notified"


async def test_unknown_or_malformed_submission_key_gives_no_personal_data_back(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    _, client = running
    missing = await client.get("/v1/submissions/SADA-0000-0000", headers=AUTH)
    assert missing.status_code == 404
    bad = await client.get("/v1/submissions/someone@example.sa", headers=AUTH)
    assert bad.status_code == 422
    assert "example.sa" not in bad.text
    bad_filter = await client.get("/v1/submissions?unit=a.harbi@example.sa", headers=AUTH)
    assert bad_filter.status_code == 422
    assert "example.sa" not in bad_filter.text


@pytest.mark.parametrize(
    "query",
    [
        "unit[$ne]=x&status=nope",
        'unit={"$gt": ""}',
        "channel=$where",
        "kind=opinion'||'1",
        "since=yesterday",
        "since=2026-11-30T00:00:00",  # naive: which zone?
        "limit=201",
        "cursor=$$$",
        "cursor=bm90LWEtY3Vyc29y",
    ],
)
async def test_list_parameters_are_validated_before_any_query(
    running: tuple[KafkaBroker, httpx.AsyncClient], query: str
) -> None:
    _, client = running
    response = await client.get(f"/v1/submissions?{query}", headers=AUTH)
    assert response.status_code == 422


async def test_list_filters_by_unit_status_channel_kind_and_time(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    start = datetime.now(UTC) - timedelta(seconds=1)
    done = await _lifecycle(broker)
    routed_only = samples.submission(channel="najiz_portal", kind=Kind.IDEA)
    await _publish(broker, topics.ACCEPTED, samples.encode(samples.accepted(routed_only)))
    await _publish(
        broker, topics.ROUTED, samples.encode(samples.routed(routed_only, "voice_of_customer"))
    )
    accepted_only = samples.submission()
    await _publish(broker, topics.ACCEPTED, samples.encode(samples.accepted(accepted_only)))

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/v1/submissions?{query}", headers=AUTH)
        assert response.status_code == 200, response.text
        return [item["submission_id"] for item in response.json()["items"]]

    assert sorted(await ids("")) == sorted(
        [done, routed_only.submission_id, accepted_only.submission_id]
    )
    assert await ids("status=notified") == [done]
    assert await ids("status=accepted") == [accepted_only.submission_id]
    assert await ids("unit=voice_of_customer") == [routed_only.submission_id]
    assert await ids("channel=najiz_portal&kind=idea") == [routed_only.submission_id]
    assert await ids("kind=opinion&status=routed") == []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await ids(f"since={later.replace('+', '%2B')}") == []
    assert len(await ids(f"since={start.isoformat().replace('+', '%2B')}")) == 3
    assert await ids("record=receipt") == []


async def test_list_pages_with_a_cursor_through_every_submission_once(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    expected = {await _lifecycle(broker) for _ in range(7)}
    for order in ("asc", "desc"):
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            query = f"limit=3&order={order}" + (f"&cursor={cursor}" if cursor else "")
            body = (await client.get(f"/v1/submissions?{query}", headers=AUTH)).json()
            seen += [item["submission_id"] for item in body["items"]]
            assert len(body["items"]) <= 3
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(expected)


async def test_verify_endpoint_reports_an_edited_event(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, client = running
    sid = await _lifecycle(broker)
    ok = (await client.get(f"/v1/submissions/{sid}/verify", headers=AUTH)).json()
    assert ok == {"submission_id": sid, "ok": True, "events": 3, "breaks": []}
    routed = next(d for d in store.events.values() if d["submission_id"] == sid and d["seq"] == 1)
    routed["event"] = routed["event"].replace("legislations_office", "voice_of_customer")
    report = (await client.get(f"/v1/submissions/{sid}/verify", headers=AUTH)).json()
    assert report["ok"] is False
    assert [(b["seq"], b["kind"]) for b in report["breaks"]] == [(1, "edited")]


async def test_export_streams_json_lines_an_auditor_can_verify(
    running: tuple[KafkaBroker, httpx.AsyncClient], settings: ArchiveSettings
) -> None:
    broker, client = running
    start = datetime.now(UTC) - timedelta(seconds=1)
    for _ in range(4):
        await _lifecycle(broker)
    settings.export_page_size = 5  # several internal pages
    since = start.isoformat().replace("+", "%2B")
    response = await client.get(f"/v1/export?since={since}", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 12
    assert len({line["event_id"] for line in lines}) == 12
    assert all(link_hash(line["prev_hash"], line["event"]) == line["hash"] for line in lines)
    empty = await client.get(f"/v1/export?since={since}&until={since}", headers=AUTH)
    assert empty.status_code == 422
