"""The summary of views at the size of a popular consultation: 100,000 of 500,000 submissions.

`python -m bench.consultation_report` (`make bench-report`; FerretDB of `make infra-up`, or
`--mongo-uri`) seeds a fresh database with the report aggregates of 500,000 submissions — one
project of 100,000, nine of 30,000, and 130,000 to the Voice of the Customer without a draft
law — then times the real report path (`services.archive.reports`, what the API and
`sada report` call) for the big project: the report built from the database, its JSON, and its
HTML page (`services.archive.report_page`). Target: ≤ 2 s each (issue 15).

Seeding: not through the archiver (500,000 grouped events through Kafka and FerretDB would take
an hour here), but with the very documents it writes (`services.archive.aggregates`): each
submission's `Fact` folded into its scope's counter document, its entry, its comment-page item
(pages of 500, as the archiver writes for batches of 500), and the `campaigns` projection's
documents. Mix of every project (as `bench.campaigns`): 80% copies of 20 campaign templates,
20% comments in the submitters' own words; every submission answers a choice and a scale
question, one in five a text question; submissions spread over a 30-day window.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from services.archive import aggregates, report_page, reports
from services.archive.aggregates import Fact, ScopeWork
from services.archive.store import MongoArchiveStore
from shared import ids
from shared.consultations import Consultation, Option, Question, QuestionType
from shared.directory import load_units

Document = dict[str, Any]

BIG = "BENCH-DRAFT-000"
OPENS = datetime(2026, 11, 1, tzinfo=aggregates.RIYADH)
_WORDS = (
    "أرى أن تمديد المدة يحقق العدالة للأطراف الذين يسكنون بعيدا عن المحكمة ويجب قبول التوقيع "
    "الإلكتروني دليلا كاملا في الإثبات مع ضمان حق الاعتراض خلال ثلاثين يوما من تاريخ التبليغ "
    "the article should allow electronic evidence and a longer period for parties abroad"
)
WORDS = tuple(_WORDS.split())
CHANNELS = ("istitlaa", "email", "app", "web")
PAGE = 500
INSERT_CHUNK = 1000


def registry() -> dict[str, Consultation]:
    """Return the registry of the bench's projects (one questionnaire for all)."""
    questions = (
        Question(
            id="q1",
            text_ar="هل توافق؟",
            text_en="Do you agree?",
            type=QuestionType.SINGLE_CHOICE,
            options=(
                Option(id="agree", label_ar="أوافق", label_en="Agree"),
                Option(id="partly", label_ar="جزئيا", label_en="Partly"),
                Option(id="disagree", label_ar="لا أوافق", label_en="Disagree"),
            ),
        ),
        Question(
            id="q2", text_ar="الوضوح", text_en="Clarity", type=QuestionType.SCALE, min=1, max=5
        ),
        Question(id="q3", text_ar="ملاحظاتك", text_en="Remarks", type=QuestionType.TEXT),
    )
    return {
        f"BENCH-DRAFT-{n:03d}": Consultation(
            ref=f"BENCH-DRAFT-{n:03d}",
            title_ar=f"مشروع النظام رقم {n}",
            title_en=f"Draft law {n}",
            opens_at=OPENS,
            closes_at=OPENS + timedelta(days=30),
            questions=questions,
        )
        for n in range(10)
    }


def _text(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def facts(scope: str, count: int, seed: int) -> Iterator[Fact]:
    """Yield `count` submissions of one scope, in arrival order (offsets 0, 1, …)."""
    rnd = random.Random(seed)
    legislation = scope.startswith("legislation:")
    ref = scope.removeprefix("legislation:") if legislation else None
    unit = "legislations_office" if legislation else "voice_of_customer"
    templates = [_text(rnd, 60) for _ in range(20)]
    founders: dict[int, tuple[str, str]] = {}
    for n in range(count):
        sid = ids.submission_id("bench", f"{scope}-{n}", "")
        at = OPENS + timedelta(minutes=rnd.randrange(30 * 24 * 60))
        template = rnd.randrange(20) if rnd.random() < 0.8 else None
        copy = template is not None and template in founders
        campaign = None
        if copy:
            assert template is not None
            campaign = ids.uuid5(b"0" * 16, f"{scope}\x1f{founders[template][0]}")
        elif template is not None:
            founders[template] = (sid, ids.reference(sid))
        answers: list[tuple[str, str]] = []
        if legislation:
            answers = [
                ("q1", rnd.choice(("agree", "partly", "disagree"))),
                ("q2", str(rnd.randint(1, 5))),
            ]
            if rnd.random() < 0.2:
                answers.append(("q3", _text(rnd, 15)))
        yield Fact(
            event_id=ids.event_id(sid, "submission.grouped"),
            submission_id=sid,
            reference=ids.reference(sid),
            scope=scope,
            partition=0,
            offset=n,
            occurred_at=at,
            submitted_at=at,
            kind="consultation_response" if legislation else "problem",
            channel=rnd.choice(CHANNELS),
            topic=None if legislation else rnd.choice(("outage", "payments", "login")),
            unit=unit,
            legislation_ref=ref,
            registered=True if legislation else None,
            late=False,
            text=templates[template] if template is not None else _text(rnd, rnd.randint(20, 80)),
            answers=tuple(answers),
            copy=copy,
            campaign_id=campaign,
        )


async def seed(store: MongoArchiveStore, scope: str, count: int, seed_: int) -> None:
    """Write the documents the archiver writes for `count` submissions of `scope`."""
    db = store.report_counters.database
    total: Counter[str] = Counter()
    entries: list[Document] = []
    items: list[Document] = []
    campaigns: dict[str, Document] = {}
    sizes: Counter[str] = Counter()
    first: dict[str, tuple[str, str]] = {}
    founders_by_text: dict[str, tuple[str, str]] = {}
    entries_name = aggregates.entries_collection(scope)
    pages_name = aggregates.pages_collection(scope)
    for fact in facts(scope, count, seed_):
        total.update(fact.contributions())
        entries.append(aggregates.entry(fact, None))
        items.append(aggregates.page_item(fact))
        if not fact.copy:
            founders_by_text.setdefault(fact.text, (fact.submission_id, fact.reference))
        elif fact.campaign_id is not None:
            sizes[fact.campaign_id] += 1
            first.setdefault(fact.campaign_id, founders_by_text[fact.text])
        if len(entries) == INSERT_CHUNK:
            await db[entries_name].insert_many(entries, ordered=False)
            entries = []
        if len(items) == PAGE:
            await db[pages_name].insert_one(aggregates.page_document(0, items))
            items = []
    if entries:
        await db[entries_name].insert_many(entries, ordered=False)
    if items:
        await db[pages_name].insert_one(aggregates.page_document(0, items))
    for cid, copies in sizes.items():
        sid, reference = first[cid]
        campaigns[cid] = {
            "_id": cid,
            "scope": scope,
            "first_submission_id": sid,
            "first_reference": reference,
            "created_at": OPENS,
            "size": copies + 1,
            "last_seen_at": OPENS + timedelta(days=30),
        }
        if scope.startswith("legislation:"):
            campaigns[cid]["legislation_ref"] = scope.removeprefix("legislation:")
    if campaigns:
        await store.campaigns.insert_many(list(campaigns.values()))
    work = ScopeWork(scope, {}, exists=False)
    await store.report_counters.insert_one(
        aggregates.scope_document(work, aggregates.nonzero(total), {"p0": count - 1})
    )


def layout(scale: float) -> list[tuple[str, int]]:
    """Return (scope, submissions): the big project, nine others, the Voice of the Customer."""
    big = [(aggregates.legislation_scope(BIG), int(100_000 * scale))]
    others = [
        (aggregates.legislation_scope(f"BENCH-DRAFT-{n:03d}"), int(30_000 * scale))
        for n in range(1, 10)
    ]
    return [*big, *others, (aggregates.unit_scope("voice_of_customer"), int(130_000 * scale))]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Seed, time, and return the figures."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(args.mongo_uri, tz_aware=True)
    store = MongoArchiveStore(client, args.database)
    started = time.perf_counter()
    scopes = layout(args.scale)
    if not args.reuse:
        await client.drop_database(args.database)
        for n, (scope, count) in enumerate(scopes):
            await seed(store, scope, count, n)
            print(f"seeded {scope}: {count:,}", flush=True)
    seeded = time.perf_counter() - started
    projects = registry()
    timings: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, int] = {}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        report = await reports.consultation_report(store, BIG, projects, now=datetime.now(UTC))
        t1 = time.perf_counter()
        assert report is not None
        text = report.model_dump_json()
        t2 = time.perf_counter()
        page = report_page.render_consultation(report)
        t3 = time.perf_counter()
        unit = await reports.unit_report(
            store,
            "voice_of_customer",
            date(2026, 11, 1),
            date(2026, 11, 30),
            names=load_units(),
            now=datetime.now(UTC),
        )
        t4 = time.perf_counter()
        timings["build"].append(t1 - t0)
        timings["json"].append(t2 - t0)
        timings["html"].append(t1 - t0 + t3 - t2)
        timings["unit"].append(t4 - t3)
        sizes = {
            "total": report.total,
            "comments": report.comments_total,
            "campaigns": len(report.campaigns),
            "json_bytes": len(text.encode()),
            "html_bytes": len(page.encode()),
            "unit_total": unit.total,
        }
    if not args.keep:
        await client.drop_database(args.database)
    await client.close()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "archive_submissions": sum(count for _, count in scopes),
        "seed_seconds": round(seeded, 1),
        "runs": args.runs,
        "median_seconds": {k: round(statistics.median(v), 3) for k, v in timings.items()},
        "all_seconds": {k: [round(x, 3) for x in v] for k, v in timings.items()},
        "sizes": sizes,
        "html_renderer": (report_page.__doc__ or "").split("\n", 1)[0],
    }


def parse() -> argparse.Namespace:
    """Return the command-line options."""
    port = os.environ.get("SADA_MONGO_PORT", "27017")
    parser = argparse.ArgumentParser(
        prog="python -m bench.consultation_report", description=__doc__
    )
    parser.add_argument(
        "--mongo-uri", default=os.environ.get("SADA_MONGO__URI", f"mongodb://127.0.0.1:{port}/")
    )
    parser.add_argument("--database", default="bench_consultation_report")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="0.01 for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    parser.add_argument("--reuse", action="store_true", help="time a database kept before")
    return parser.parse_args()


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(main(parse())), ensure_ascii=False, indent=2))
