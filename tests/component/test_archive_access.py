"""Who read what: the archive API's clients, scopes, redaction and access events (fake store).

Every endpoint that can return submitter data (a submission's timeline, by id or reference, and
the export) is checked with and without the `personal_data` scope; the listing and verification
are checked to carry none for anyone. Every read must leave an `archive.accessed` event on a
chain that verifies, and a read that cannot be recorded must not be served.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from pydantic import SecretStr
from pymongo.errors import AutoReconnect

from services.archive import audit
from services.archive.access import Access, AccessLog, AccessLogUnavailableError
from services.archive.app import build
from services.archive.chain import link_hash
from services.archive.clients import ApiClientConfig
from services.archive.personal_data import REDACTED
from services.archive.settings import ArchiveSettings
from shared import events, topics
from shared.events import Producer
from shared.kafka import make_broker
from shared.settings import KafkaSettings
from tests import archive_samples as samples
from tests.component.archive_fake import InMemoryArchiveStore

Document = dict[str, Any]

AUDITOR = {"Authorization": "Bearer auditor-token"}
READER = {"Authorization": "Bearer reader-token"}
LEGACY = {"Authorization": "Bearer legacy-token"}
NO_READ = {"Authorization": "Bearer no-read-token"}

PERSONAL = (
    "عبدالله الحربي",  # submitter name
    "a.harbi@example.sa",  # submitter e-mail (also written in the body)
    "أرى أن تمديد المدة",  # body
    "مشروع نظام الإثبات",  # subject
    "someone@example.sa",  # inside a raw receipt
    "+966 55 123 4567",  # inside a rejected message's raw bytes
)


def _client(name: str, token: str, *scopes: str) -> ApiClientConfig:
    return ApiClientConfig(name=name, token=SecretStr(token), scopes=scopes)


def _settings(**changes: Any) -> ArchiveSettings:
    return ArchiveSettings(
        api_clients=(
            _client("auditor-1", "auditor-token", "read", "personal_data"),
            _client("dashboard", "reader-token", "read"),
            _client("stranger", "no-read-token", "personal_data"),
        ),
        api_tokens=(SecretStr("legacy-token"),),
        verify_interval_seconds=0,
        kafka=KafkaSettings(lag_interval_seconds=0),
        **changes,
    )


@pytest.fixture
def store() -> InMemoryArchiveStore:
    return InMemoryArchiveStore()


async def _serve(
    store: InMemoryArchiveStore, settings: ArchiveSettings
) -> AsyncIterator[tuple[KafkaBroker, httpx.AsyncClient]]:
    broker = make_broker(settings.kafka, service="archive")
    app = build(settings, store=store, broker=broker)
    async with TestKafkaBroker(broker) as test_broker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://archive") as client:
            yield test_broker, client


@pytest.fixture
async def running(
    store: InMemoryArchiveStore,
) -> AsyncIterator[tuple[KafkaBroker, httpx.AsyncClient]]:
    async for served in _serve(store, _settings()):
        yield served


async def _archive_everything(broker: KafkaBroker) -> str:
    """Archive a receipt, its submission's lifecycle, a rejection and a dead letter."""
    await broker.publish(samples.raw_submission(), topics.SUBMISSIONS)
    source = events.SourcePosition(topic=topics.SUBMISSIONS, partition=0, offset=0)
    sub = samples.submission()
    for topic, event in (
        (topics.ACCEPTED, samples.accepted(sub, source)),
        (topics.ROUTED, samples.routed(sub)),
        (topics.NOTIFICATIONS, samples.notified(sub)),
        (topics.REJECTED, samples.rejected()),
        (topics.DEADLETTER, samples.dead_letter("feedback.routed.v1", 0, 7)),
    ):
        await broker.publish(samples.encode(event), topic)
    return sub.reference


def _text(response: httpx.Response) -> str:
    """The answer as a person would read it: raw text and JSON with escapes decoded."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.text + json.dumps(response.json(), ensure_ascii=False)
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    events_text = [orjson.loads(line["event"]) for line in lines if line.get("event")]
    return response.text + json.dumps([lines, events_text], ensure_ascii=False)


def _since() -> str:
    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+", "%2B")


def _access_docs(store: InMemoryArchiveStore) -> list[Document]:
    docs = [d for d in store.events.values() if d["event_type"] == "archive.accessed"]
    return sorted(docs, key=lambda d: (d["occurred_at"], d["seq"]))


async def _pii_endpoints(client: httpx.AsyncClient, reference: str) -> list[str]:
    found = (await client.get(f"/v1/submissions/{reference}", headers=AUDITOR)).json()
    sid = found["submission"]["submission_id"]
    export = f"/v1/export?since={_since()}"
    return [f"/v1/submissions/{reference}", f"/v1/submissions/{sid}", export]


async def test_timeline_and_export_serve_personal_data_only_with_the_personal_data_scope(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    reference = await _archive_everything(broker)
    for path in await _pii_endpoints(client, reference):
        full = await client.get(path, headers=AUDITOR)
        assert full.status_code == 200, path
        for personal in PERSONAL[:4]:
            assert personal in _text(full), (path, personal)
        for headers in (READER, LEGACY):
            redacted = await client.get(path, headers=headers)
            assert redacted.status_code == 200, path
            text = _text(redacted)
            assert not [personal for personal in PERSONAL if personal in text], path
            assert REDACTED in text


async def test_redacted_timeline_keeps_the_facts_and_says_what_it_hid(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    reference = await _archive_everything(broker)
    body = (await client.get(f"/v1/submissions/{reference}", headers=READER)).json()
    assert body["submission"]["status"] == "notified"
    by_type = {e["event_type"]: e for e in body["timeline"]}
    accepted = by_type["submission.accepted"]
    assert accepted["redacted"] is True
    assert accepted["event"]["payload"]["submission"]["submitter"] == REDACTED
    assert accepted["event"]["payload"]["submission"]["channel"] == "istitlaa"
    assert by_type["submission.received"]["event"]["raw"] == REDACTED
    assert by_type["notification.sent"]["redacted"] is False
    assert by_type["submission.routed"]["event"]["payload"]["decision"]["unit"] == (
        "legislations_office"
    )


async def test_redacted_export_still_links_every_chain_and_unredacted_lines_verify(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    await _archive_everything(broker)
    export = await client.get(f"/v1/export?since={_since()}", headers=READER)
    lines = [orjson.loads(line) for line in export.text.splitlines()]
    events_only = [line for line in lines if line["event_type"] != "archive.accessed"]
    assert {line["redacted"] for line in events_only} == {True, False}
    for line in lines:
        verifies = link_hash(line["prev_hash"], line["event"]) == line["hash"]
        assert verifies is not line["redacted"], line["event_type"]
    chains: dict[str, list[Document]] = {}
    for line in lines:
        chains.setdefault(line["submission_id"], []).append(line)
    for chain in chains.values():
        chain.sort(key=lambda line: line["seq"])
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(chain))


async def test_listing_and_verify_carry_no_personal_data_for_anyone(
    running: tuple[KafkaBroker, httpx.AsyncClient],
) -> None:
    broker, client = running
    reference = await _archive_everything(broker)
    for path in ("/v1/submissions", f"/v1/submissions/{reference}/verify"):
        for record in ("submission", "receipt", "deadletter"):
            answer = await client.get(f"{path}?record={record}", headers=AUDITOR)
            assert answer.status_code == 200
            assert not [personal for personal in PERSONAL if personal in _text(answer)]


async def test_a_client_without_the_read_scope_is_refused_by_every_endpoint(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, client = running
    reference = await _archive_everything(broker)
    paths = [*await _pii_endpoints(client, reference), "/v1/submissions"]
    before = len(_access_docs(store))
    for path in [*paths, f"/v1/submissions/{reference}/verify"]:
        refused = await client.get(path, headers=NO_READ)
        assert refused.status_code == 403, path
        assert not [personal for personal in PERSONAL if personal in refused.text]
    assert len(_access_docs(store)) == before  # nothing was read, so nothing to record


async def test_every_read_is_an_access_event_naming_client_endpoint_and_submission(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    broker, client = running
    reference = await _archive_everything(broker)
    sid = (await client.get(f"/v1/submissions/{reference}", headers=AUDITOR)).json()
    sid = sid["submission"]["submission_id"]
    await client.get("/v1/submissions?unit=legislations_office&limit=5", headers=READER)
    await client.get(f"/v1/submissions/{reference}/verify", headers=READER)
    await client.get("/v1/submissions/SADA-0000-0000", headers=READER)
    await client.get(f"/v1/export?since={_since()}", headers=LEGACY)
    payloads = [orjson.loads(d["event"])["payload"] for d in _access_docs(store)]
    seen = [
        (p["client"], p["endpoint"], p["submission_id"], p["status"], p["personal_data"])
        for p in payloads
    ]
    assert seen == [
        ("auditor-1", "/v1/submissions/{key}", sid, 200, True),
        ("dashboard", "/v1/submissions", None, 200, False),
        ("dashboard", "/v1/submissions/{key}/verify", sid, 200, False),
        ("dashboard", "/v1/submissions/{key}", "SADA-0000-0000", 404, False),
        ("api-token-1", "/v1/export", None, 200, False),
    ]
    assert payloads[1]["query"]["unit"] == "legislations_office"
    assert payloads[1]["query"]["limit"] == "5"
    assert set(payloads[4]["query"]) == {"since", "until"}
    docs = _access_docs(store)
    assert not [p for p in PERSONAL if any(p in d["event"] for d in docs)]
    day = datetime.now(UTC).date().isoformat()
    assert {d["submission_id"].rsplit(":", 1)[0] for d in docs} == {
        f"access:{day}:auditor-1",
        f"access:{day}:dashboard",
        f"access:{day}:api-token-1",
    }
    summary = await audit.verify_all(store)
    assert summary.ok
    assert summary.chains == len({d["submission_id"] for d in store.events.values()})


async def test_an_edited_access_event_breaks_its_chain(
    running: tuple[KafkaBroker, httpx.AsyncClient], store: InMemoryArchiveStore
) -> None:
    _, client = running
    for _ in range(3):
        await client.get("/v1/submissions", headers=READER)
    middle = _access_docs(store)[1]
    middle["event"] = middle["event"].replace('"dashboard"', '"someone-else"')
    summary = await audit.verify_all(store)
    assert [(b.submission_id, b.seq, b.kind.value) for b in summary.breaks] == [
        (middle["submission_id"], 1, "edited")
    ]


class FailingStore(InMemoryArchiveStore):
    """A store that refuses access events for a reason that retrying will not fix."""

    async def append_events(self, docs: Sequence[Document]) -> int:
        raise ValueError("refused (fake)")


async def test_a_read_that_cannot_be_recorded_is_refused_and_not_served() -> None:
    store = FailingStore()
    async for broker, client in _serve(store, _settings()):
        reference = await _archive_everything(broker)
        for path in (f"/v1/submissions/{reference}", f"/v1/export?since={_since()}"):
            refused = await client.get(path, headers=AUDITOR)
            assert refused.status_code == 503, path
            assert refused.headers["retry-after"] == "5"
            assert not [personal for personal in PERSONAL if personal in refused.text]


class GatedStore(InMemoryArchiveStore):
    """A store whose appends wait for `gate`; `entered` says a write is in hand."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def append_events(self, docs: Sequence[Document]) -> int:
        self.entered.set()
        await self.gate.wait()
        return await super().append_events(docs)


def _log(store: InMemoryArchiveStore, *, queue_size: int = 100, timeout: float = 30) -> AccessLog:
    return AccessLog(
        store,
        producer=Producer(service="archive", version="test"),
        queue_size=queue_size,
        batch_size=500,
        timeout=timeout,
        writer="test-writer",
    )


READ = Access(client="dashboard", endpoint="/v1/submissions", status=200, personal_data=False)


async def test_reads_waiting_together_are_stored_in_one_write_and_nothing_is_lost_at_stop() -> None:
    store = GatedStore()
    log = _log(store)
    await log.start()
    first = asyncio.create_task(log.record(READ))
    await store.entered.wait()  # the writer holds the first read's event
    waiting = [asyncio.create_task(log.record(READ)) for _ in range(50)]
    await asyncio.sleep(0)  # let them queue behind the write in hand
    stopping = asyncio.create_task(log.stop())
    store.gate.set()
    await asyncio.gather(first, *waiting, stopping)
    assert len(store.events) == 51
    assert store.inserts == 2  # the first read, then the fifty that waited: one write each
    summary = await audit.verify_all(store)
    assert (summary.ok, summary.chains, summary.events) == (True, 1, 51)
    with pytest.raises(AccessLogUnavailableError):
        await log.record(READ)


async def test_a_full_access_queue_refuses_the_read_at_once() -> None:
    store = GatedStore()
    log = _log(store, queue_size=1)
    await log.start()
    first = asyncio.create_task(log.record(READ))
    await store.entered.wait()
    second = asyncio.create_task(log.record(READ))
    await asyncio.sleep(0)  # the second read now fills the queue
    with pytest.raises(AccessLogUnavailableError, match="full"):
        await log.record(READ)
    store.gate.set()
    await asyncio.gather(first, second)
    await log.stop()
    assert len(store.events) == 2


async def test_a_position_taken_by_another_writer_is_re_read_and_re_chained() -> None:
    store = InMemoryArchiveStore()
    one, two = _log(store), _log(store)  # the same writer id: the same chain
    await one.start()
    await two.start()
    await one.record(READ)
    await two.record(READ)  # its head is stale: the position is taken, re-read, re-chained
    await one.record(READ)
    await one.stop()
    await two.stop()
    summary = await audit.verify_all(store)
    assert (summary.ok, summary.chains, summary.events) == (True, 1, 3)


class LostAnswerStore(InMemoryArchiveStore):
    """Stores the first append, then loses the answer (as a dropped connection does)."""

    async def append_events(self, docs: Sequence[Document]) -> int:
        stored = await super().append_events(docs)
        if self.inserts == 1:
            raise AutoReconnect("connection lost after the write (fake)")
        return stored


async def test_a_write_retried_after_a_lost_answer_is_not_stored_twice() -> None:
    store = LostAnswerStore()
    log = _log(store)
    await log.start()
    await asyncio.gather(*(log.record(READ) for _ in range(3)))
    await log.record(READ)
    await log.stop()
    summary = await audit.verify_all(store)
    assert (summary.ok, summary.chains, summary.events) == (True, 1, 4)
