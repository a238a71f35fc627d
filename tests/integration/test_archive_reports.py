"""The summary of views on the real Kafka and FerretDB: grouped events of a project, keyed by
scope as the router keys them, sent twice (the second time unkeyed, on any partition) and
replayed by a second archive into the same database, give one count per submission; the API
answers JSON and HTML, and `sada report consultation --format md` reads the same database."""

from __future__ import annotations

import os
import subprocess
import sys

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.archive.report_model import ConsultationReport
from tests import archive_samples as samples
from tests import infra
from tests import report_events as rs
from tests.integration.archive_support import (
    READER,
    Producer,
    eventually,
    private_topics,
    running,
    settings_for,
)


def _story() -> list[tuple[str, bytes]]:
    """Return (scope key, grouped event) of 12 submissions: a campaign of 8, 3 others, 1 late."""
    founder = rs.submission("نرفض المادة 14 لأنها تضيق على المتقاضين.", answers={"q1": "disagree"})
    copies = [
        rs.submission("نرفض المادة 14 لأنها تضيق على المتقاضين", answers={"q1": "disagree"})
        for _ in range(7)
    ]
    others = [
        rs.submission(f"رأي رقم {n} في المادة 12", answers={"q1": "agree", "q3": str(n + 2)})
        for n in range(3)
    ]
    late = rs.submission("Please extend the deadline.", late=True, day=29)
    grouped = [rs.grouped(founder)]
    grouped += [rs.grouped(c, founder, n + 2) for n, c in enumerate(copies)]
    grouped += [rs.grouped(s) for s in [*others, late]]
    return [(f"legislation:{rs.LAW}", samples.encode(g)) for g in grouped]


async def _caught_up(group: str, topic: str, partitions: int = 3) -> bool:
    """Return whether `group` has committed every record of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.KAFKA, group_id=group)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, n) for n in range(partitions)]
        ends = await consumer.end_offsets(parts)
        done = [await consumer.committed(tp) for tp in parts]
        return all((offset or 0) >= ends[tp] for tp, offset in zip(parts, done, strict=True))
    finally:
        await consumer.stop()


def _cli(database: str, *args: str) -> str:
    env = {
        **os.environ,
        "SADA_MONGO__DATABASE": database,
        "SADA_MONGO__URI": infra.MONGO_URI,
        "SADA_CONSULTATIONS_PATH": str(rs.REGISTRY),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from shared.cli import main; main()", "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def test_a_projects_report_counts_each_submission_once_and_is_served_as_json_and_html() -> (
    None
):
    names = await private_topics()
    settings = settings_for(names).model_copy(update={"consultations_path": rs.REGISTRY})
    story = _story()
    database = settings.mongo.database
    async with running(settings) as api, Producer() as kafka:
        await kafka.send_all([(names.grouped, value, key) for key, value in story])
        await kafka.send_all([(names.grouped, value, None) for _, value in story])  # again

        async def counted() -> bool:
            answer = await api.get(f"/v1/consultations/{rs.LAW}/report", headers=READER)
            return answer.status_code == 200 and answer.json()["total"] == 12

        await eventually(counted)
        await kafka.send_all([(names.grouped, value, key) for key, value in story[:4]])
        answer = await api.get(f"/v1/consultations/{rs.LAW}/report", headers=READER)
        report = ConsultationReport.model_validate_json(answer.content)
        assert (report.total, report.late) == (12, 1)
        assert [(c.size, c.representative) for c in report.campaigns] == [
            (8, "نرفض المادة 14 لأنها تضيق على المتقاضين.")
        ]
        assert report.comments_total == 5  # the founder, three others, the late one
        q1 = next(q for q in report.questions if q.id == "q1")
        assert {o.id: o.count for o in q1.options} == {"agree": 3, "disagree": 8}
        page = await api.get(
            f"/v1/consultations/{rs.LAW}/report", headers={**READER, "Accept": "text/html"}
        )
        assert page.headers["content-type"].startswith("text/html")
        assert "مشروع تعديل نظام الإثبات" in page.text
        listed = (await api.get("/v1/consultations", headers=READER)).json()["items"]
        assert {i["ref"]: i["total"] for i in listed}[rs.LAW] == 12
    # A second archive with a fresh group replays the topic into the same database.
    again = settings_for(names, database=database).model_copy(
        update={"consultations_path": rs.REGISTRY}
    )
    async with running(again) as api:
        await eventually(lambda: _caught_up(again.group_id, names.grouped))
        body = (await api.get(f"/v1/consultations/{rs.LAW}/report", headers=READER)).json()
        assert body["total"] == 12
    markdown = _cli(database, "consultation", rs.LAW, "--format", "md")
    assert "| 12 | 1 | 0 |" in markdown
    assert "| لا أوافق | I disagree | 8 |" in markdown
