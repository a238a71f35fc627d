"""The summary of views from the archive's report aggregates (in-memory store): what it counts,
exactly once under redelivery, replay, redrive and a crash before the counts; an edited
resubmission replaces the first; the API answers JSON and HTML, the CLI's Markdown renders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from pymongo.errors import AutoReconnect

from services.archive import report_markdown, reports
from services.archive.app import build
from services.archive.archiver import Archiver
from services.archive.clients import ApiClientConfig
from services.archive.report_model import ConsultationReport
from services.archive.settings import ArchiveSettings, ArchiveTopics
from shared import events
from shared.directory import load_units
from shared.kafka import Record, make_broker
from shared.settings import KafkaSettings
from tests import archive_samples as samples
from tests import report_events as rs
from tests.archive_samples import record
from tests.component.archive_fake import InMemoryArchiveStore

TOPICS = ArchiveTopics()
NOW = datetime(2026, 12, 3, tzinfo=UTC)
REGISTRY = reports.load_registry(rs.REGISTRY)


def _records(items: list[events.SubmissionGrouped], start: int = 0) -> list[Record]:
    return [
        record(TOPICS.grouped, samples.encode(event), offset=start + n)
        for n, event in enumerate(items)
    ]


class Story:
    """A consultation's submissions: two distinct, a campaign of three, one late, one elsewhere."""

    def __init__(self) -> None:
        self.plain = rs.submission(
            "أؤيد تمديد المدة إلى ثلاثين يوما.",
            answers={"q1": "agree", "q2": "art12,art13", "q3": "4", "q4": "المادة 12 واضحة"},
        )
        self.founder = rs.submission(
            "نرفض المادة 14 لأنها تضيق على المتقاضين.",
            answers={"q1": "disagree", "q2": "art14", "q3": "2"},
            channel="email",
        )
        self.copies = [
            rs.submission("نرفض المادة 14 لأنها تضيق على المتقاضين!", answers={"q1": "disagree"})
            for _ in range(2)
        ]
        self.late = rs.submission("Please extend the deadline.", late=True, day=29)
        self.stray = rs.submission(
            "رأي في مشروع آخر", legislation_ref=rs.OTHER_LAW, registered=False
        )
        self.voc = [
            rs.submission("التطبيق متوقف", legislation_ref=None, channel="app", topic="outage")
            for _ in range(3)
        ]

    def events(self) -> list[events.SubmissionGrouped]:
        return [
            rs.grouped(self.plain),
            rs.grouped(self.founder),
            rs.grouped(self.copies[0], self.founder, 2),
            rs.grouped(self.copies[1], self.founder, 3),
            rs.grouped(self.late),
            rs.grouped(self.stray),
            rs.grouped(self.voc[0]),
            rs.grouped(self.voc[1], self.voc[0], 2),
            rs.grouped(self.voc[2], self.voc[0], 3),
        ]


async def _report(store: InMemoryArchiveStore, ref: str = rs.LAW) -> ConsultationReport:
    found = await reports.consultation_report(store, ref, REGISTRY, now=NOW)
    assert found is not None
    return found


def _counts(report: ConsultationReport) -> dict[str, Any]:
    return {
        "total": report.total,
        "late": report.late,
        "kind": {c.key: c.count for c in report.by_kind},
        "channel": {c.key: c.count for c in report.by_channel},
        "days": {d.day: d.count for d in report.per_day if d.count},
        "answers": {
            q.id: (q.answered, {o.id: o.count for o in q.options if o.count})
            for q in report.questions
        },
    }


async def test_a_projects_report_counts_answers_campaigns_and_distinct_comments() -> None:
    store, story = InMemoryArchiveStore(), Story()
    await Archiver(store, TOPICS, cache_size=100).archive(_records(story.events()))
    report = await _report(store)
    assert report.consultation.title_en == "Draft amendments to the Evidence Law"
    assert (report.total, report.late, report.unregistered) == (5, 1, 0)
    assert _counts(report)["channel"] == {"istitlaa": 4, "email": 1}
    assert _counts(report)["days"] == {date(2026, 11, 25): 4, date(2026, 11, 29): 1}
    days = [d.day for d in report.per_day]
    assert days[0] == date(2026, 11, 15)
    assert days[-1] == date(2026, 11, 30)
    answers = _counts(report)["answers"]
    assert answers["q1"] == (4, {"agree": 1, "disagree": 3})
    assert answers["q2"] == (2, {"art12": 1, "art13": 1, "art14": 1})
    assert answers["q3"] == (2, {"2": 1, "4": 1})
    text = next(q for q in report.questions if q.id == "q4")
    assert [a.text for a in text.free_text] == ["المادة 12 واضحة"]
    assert [(c.size, c.first_reference) for c in report.campaigns] == [(3, story.founder.reference)]
    assert report.campaigns[0].representative == story.founder.body
    refs = {c.reference: c for c in report.comments}
    assert set(refs) == {story.plain.reference, story.founder.reference, story.late.reference}
    assert refs[story.founder.reference].campaign_size == 3
    assert refs[story.late.reference].late
    stray = await _report(store, rs.OTHER_LAW)
    assert (stray.total, stray.unregistered, stray.consultation.registered) == (1, 1, False)
    listed = {c.ref: c for c in await reports.list_consultations(store, REGISTRY)}
    assert set(listed) == {rs.LAW, rs.OTHER_LAW, "MOJ-DRAFT-2026-009"}
    assert (listed[rs.LAW].total, listed["MOJ-DRAFT-2026-009"].total) == (5, 0)


async def test_redelivery_replay_and_redrive_count_each_submission_once() -> None:
    store, story = InMemoryArchiveStore(), Story()
    archiver = Archiver(store, TOPICS, cache_size=100)
    batch = _records(story.events())
    await archiver.archive(batch)
    before = _counts(await _report(store))
    await archiver.archive(batch)  # redelivered
    await archiver.archive(batch[2:5])  # part of it again
    await Archiver(store, TOPICS, cache_size=0).archive(batch)  # replayed by a new process
    await archiver.archive(_records(story.events(), start=100))  # redriven: same ids, new offsets
    after = await _report(store)
    assert _counts(after) == before
    assert len(after.comments) == 3


async def test_a_crash_before_the_counts_is_healed_by_the_redelivery() -> None:
    store, story = InMemoryArchiveStore(), Story()
    archiver = Archiver(store, TOPICS, cache_size=100)
    batch = _records(story.events())
    store.fail_counts = 1  # entries and pages written, then the process dies
    with pytest.raises(AutoReconnect):
        await archiver.archive(batch)
    await archiver.archive(batch + _records([rs.grouped(rs.submission("تعليق جديد"))], start=9))
    report = await _report(store)
    assert (report.total, len(report.comments)) == (6, 4)


async def test_an_edited_resubmission_replaces_the_first_version() -> None:
    store, story = InMemoryArchiveStore(), Story()
    archiver = Archiver(store, TOPICS, cache_size=100)
    await archiver.archive(_records(story.events()))
    edited = rs.submission(
        "أؤيد تمديد المدة إلى ستين يوما.",
        answers={"q1": "disagree", "q3": "5"},
        ref=story.plain.channel_ref,
        day=27,
    )
    assert edited.submission_id == story.plain.submission_id
    store.fail_counts = 1  # even when the first attempt dies before its counts
    with pytest.raises(AutoReconnect):
        await archiver.archive(_records([rs.grouped(edited)], start=20))
    await archiver.archive(_records([rs.grouped(edited)], start=20))
    report = await _report(store)
    counts = _counts(report)
    assert report.total == 5
    assert counts["answers"]["q1"] == (4, {"disagree": 4})
    assert counts["answers"]["q3"] == (2, {"2": 1, "5": 1})
    assert counts["days"] == {date(2026, 11, 25): 3, date(2026, 11, 27): 1, date(2026, 11, 29): 1}
    texts = {c.reference: c.text for c in report.comments}
    assert texts[story.plain.reference] == edited.body
    assert not next(q for q in report.questions if q.id == "q4").free_text


async def test_a_unit_report_has_its_volume_by_day_channel_kind_topic_and_campaigns() -> None:
    store, story = InMemoryArchiveStore(), Story()
    await Archiver(store, TOPICS, cache_size=100).archive(_records(story.events()))
    units = load_units()
    voc = await reports.unit_report(
        store, rs.VOC, date(2026, 11, 20), date(2026, 11, 30), names=units, now=NOW
    )
    assert voc.name_en == "Voice of the Customer"
    assert voc.total == 3
    assert len(voc.per_day) == 11
    assert [(c.key, c.count) for c in voc.by_topic] == [("outage", 3)]
    assert [(c.size, c.representative) for c in voc.campaigns] == [(3, story.voc[0].body)]
    office = await reports.unit_report(
        store, "legislations_office", date(2026, 11, 25), date(2026, 11, 25), names=units, now=NOW
    )
    assert office.total == 5  # four on the law, one on the unregistered ref, that day
    empty = await reports.unit_report(
        store, rs.VOC, date(2026, 12, 1), date(2026, 12, 2), names=units, now=NOW
    )
    assert (empty.total, empty.campaigns) == (0, ())


async def test_the_markdown_report_is_tables_in_both_languages() -> None:
    store, story = InMemoryArchiveStore(), Story()
    await Archiver(store, TOPICS, cache_size=100).archive(_records(story.events()))
    text = report_markdown.consultation(await _report(store))
    assert "# مشروع تعديل نظام الإثبات" in text
    assert "| أوافق | I agree | 1 |" in text
    assert story.founder.reference in text
    assert "a.harbi@example.sa" not in text.replace(story.plain.body or "", "")


@pytest.fixture
async def api() -> AsyncIterator[tuple[InMemoryArchiveStore, httpx.AsyncClient]]:
    store = InMemoryArchiveStore()
    settings = ArchiveSettings(
        api_clients=(
            ApiClientConfig(name="office", token=SecretStr("office-token"), scopes=("read",)),
        ),
        consultations_path=rs.REGISTRY,
        verify_interval_seconds=0,
        kafka=KafkaSettings(lag_interval_seconds=0),
    )
    app = build(settings, store=store, broker=make_broker(settings.kafka, service="archive"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": "Bearer office-token"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://archive", headers=headers
        ) as client:
            yield store, client


async def test_the_api_answers_json_and_html_and_logs_each_read(
    api: tuple[InMemoryArchiveStore, httpx.AsyncClient],
) -> None:
    store, client = api
    story = Story()
    await Archiver(store, TOPICS, cache_size=100).archive(_records(story.events()))
    listed = (await client.get("/v1/consultations")).json()["items"]
    assert [(i["ref"], i["total"]) for i in listed] == [
        (rs.LAW, 5),
        ("MOJ-DRAFT-2026-009", 0),
        (rs.OTHER_LAW, 1),
    ]
    answer = await client.get(f"/v1/consultations/{rs.LAW}/report")
    assert answer.headers["content-type"].startswith("application/json")
    assert ConsultationReport.model_validate_json(answer.content).total == 5
    assert "عبدالله الحربي" not in answer.text  # the submitter's name never
    page = await client.get(f"/v1/consultations/{rs.LAW}/report", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "مشروع تعديل نظام الإثبات" in page.text
    assert (await client.get(f"/v1/consultations/{rs.LAW}/report?format=html")).text == page.text
    assert (await client.get("/v1/consultations/NOPE-1/report")).status_code == 404
    unit = await client.get(f"/v1/units/{rs.VOC}/report?from=2026-11-01&to=2026-11-30")
    assert unit.json()["total"] == 3
    html = await client.get(f"/v1/units/{rs.VOC}/report?from=2026-11-01&to=2026-11-30&format=html")
    assert "صوت المستفيد" in html.text
    bad = await client.get(f"/v1/units/{rs.VOC}/report?from=2026-11-30&to=2026-11-01")
    assert bad.status_code == 422
    assert (await client.get("/v1/consultations", headers={"Authorization": ""})).status_code == 401
    accessed = [
        orjson.loads(d["event"])["payload"]
        for d in store.events.values()
        if d["event_type"] == "archive.accessed"
    ]
    endpoints = {(p["endpoint"], p["query"].get("format")) for p in accessed}
    assert {
        ("/v1/consultations", None),
        ("/v1/consultations/{ref}/report", "json"),
        ("/v1/consultations/{ref}/report", "html"),
        ("/v1/units/{unit}/report", "json"),
    } <= endpoints
