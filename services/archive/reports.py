"""Build the summary of views (`report_model`) from the report aggregates, never the archive.

From the report aggregates, the registry and the campaigns projection.

A consultation's report reads: its counter document (one), its comment pages (a few hundred
compressed documents at 100,000 submissions), the campaigns of its scope, and the registry.
A unit's report reads the counter documents (one per scope: projects and units), the unit's
campaigns and their founders' entries (one `_id` read each). Its time depends on the project
or the period, not on the archive's size (bench/README.md, "Summary of views").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from services.archive import aggregates
from services.archive.aggregates import counts, number
from services.archive.report_model import (
    CampaignSummary,
    Comment,
    ConsultationInfo,
    ConsultationReport,
    Count,
    DayCount,
    FreeText,
    OptionCount,
    QuestionSummary,
    UnitReport,
)
from services.archive.store import ArchiveStore
from shared.consultations import (
    CONSULTATIONS_PATH,
    Consultation,
    Question,
    QuestionType,
    load_consultations,
)
from shared.directory import Unit

Document = dict[str, Any]

MAX_CAMPAIGNS = 200
"""Campaigns read per report (largest first)."""
UNIT_CAMPAIGNS = 20
"""Largest campaigns shown in a unit's report (by their copies in the period)."""
UNIT_CAMPAIGN_READ = 1000
"""Campaigns of a unit's scope read to name them (first member), largest overall first."""
MAX_DAYS = 366
"""The longest period of a unit report, and of a timeline."""


def load_registry(path: Path | str = CONSULTATIONS_PATH) -> dict[str, Consultation]:
    """Return the registry of consultations; empty when the file does not exist.

    A missing file means no project is registered yet (every ref is then shown unregistered);
    an invalid one raises `ConfigError`, as at every service's start.
    """
    return load_consultations(path) if Path(path).exists() else {}


@dataclass(frozen=True, slots=True)
class ConsultationCounts:
    """One line of `GET /v1/consultations`."""

    ref: str
    title_ar: str
    title_en: str
    registered: bool
    opens_at: datetime | None
    closes_at: datetime | None
    total: int
    late: int
    unregistered: int


async def list_consultations(
    store: ArchiveStore, registry: Mapping[str, Consultation]
) -> list[ConsultationCounts]:
    """Return every registered project and every other ref seen, with their counts."""
    docs = await store.report_scopes(None, ["legislation_ref", "total", "late", "unregistered"])
    seen = {str(doc["legislation_ref"]): doc for doc in docs.values() if doc.get("legislation_ref")}
    found = []
    for ref in sorted(set(registry) | set(seen)):
        doc, project = seen.get(ref), registry.get(ref)
        found.append(
            ConsultationCounts(
                ref=ref,
                title_ar=project.title_ar if project else ref,
                title_en=project.title_en if project else ref,
                registered=project is not None,
                opens_at=project.opens_at if project else None,
                closes_at=project.closes_at if project else None,
                total=number(doc, "total"),
                late=number(doc, "late"),
                unregistered=number(doc, "unregistered"),
            )
        )
    return found


async def consultation_report(
    store: ArchiveStore,
    ref: str,
    registry: Mapping[str, Consultation],
    *,
    now: datetime,
) -> ConsultationReport | None:
    """Return the summary of views of `ref`; None when it is neither registered nor seen."""
    scope = aggregates.legislation_scope(ref)
    doc = (await store.report_scopes([scope])).get(scope)
    project = registry.get(ref)
    if doc is None and project is None:
        return None
    items = aggregates.current_items(await store.report_pages(scope)) if doc else []
    campaigns = await store.list_campaigns(scope, None, MAX_CAMPAIGNS) if doc else []
    by_id = {str(item.get("id")): item for item in items}
    sizes = {str(c.get("first_submission_id")): int(c.get("size", 0)) for c in campaigns}
    info = ConsultationInfo(
        ref=ref,
        title_ar=project.title_ar if project else ref,
        title_en=project.title_en if project else ref,
        opens_at=project.opens_at if project else None,
        closes_at=project.closes_at if project else None,
        link=str(project.link) if project and project.link else None,
        registered=project is not None,
    )
    comments = tuple(_comment(item, sizes) for item in items if item.get("t"))
    return ConsultationReport(
        consultation=info,
        generated_at=now,
        total=number(doc, "total"),
        late=number(doc, "late"),
        unregistered=number(doc, "unregistered"),
        by_kind=_ranked(counts(doc, "kind")),
        by_channel=_ranked(counts(doc, "channel")),
        per_day=_days(_per_day(doc), project),
        questions=tuple(_question(q, doc, items) for q in project.questions) if project else (),
        campaigns=tuple(_campaign(c, by_id) for c in campaigns if int(c.get("size", 0)) >= 2),
        comments=comments,
        comments_total=len(comments),
    )


async def unit_report(
    store: ArchiveStore,
    unit: str,
    start: date,
    end: date,
    *,
    names: Mapping[str, Unit],
    now: datetime,
) -> UnitReport:
    """Return `unit`'s volume per day by channel, kind and topic over [start, end].

    And its largest campaigns of the period (submissions without a draft law: `unit:<unit>`).
    """
    if end < start or (end - start).days >= MAX_DAYS:
        raise ValueError(f"the period must be 1 to {MAX_DAYS} days, from before to")
    docs = await store.report_scopes(None, [f"units.{aggregates.key(unit)}"])
    per_day: dict[date, Counter[str]] = {}
    kinds: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    topics: Counter[str] = Counter()
    copies: Counter[str] = Counter()
    for doc in docs.values():
        days = (doc.get("units") or {}).get(aggregates.key(unit)) or {}
        for day_text, node in days.items():
            day = _date(day_text)
            if day is None or not start <= day <= end or not isinstance(node, Mapping):
                continue
            by_channel = per_day.setdefault(day, Counter())
            by_channel.update(counts(node, "channel"))
            kinds.update(counts(node, "kind"))
            channels.update(counts(node, "channel"))
            topics.update(counts(node, "topic"))
            copies.update(counts(node, "campaign"))
    timeline = tuple(
        DayCount(day=day, count=sum(c.values()), by_channel=_ranked(c))
        for day, c in ((d, per_day.get(d, Counter())) for d in _span(start, end))
    )
    scope = aggregates.unit_scope(unit)
    largest = sorted(copies.items(), key=lambda kv: (-kv[1], kv[0]))[:UNIT_CAMPAIGNS]
    known = {}
    if largest:
        known = {
            str(c["_id"]): c for c in await store.list_campaigns(scope, None, UNIT_CAMPAIGN_READ)
        }
    found = [
        {**known[cid], "size": n + 1}  # the period's copies and their founder
        for cid, n in largest
        if cid in known
    ]
    founders = await store.report_entries(scope, [str(c.get("first_submission_id")) for c in found])
    named = names.get(unit)
    return UnitReport(
        unit=unit,
        name_ar=named.name_ar if named else unit,
        name_en=named.name_en if named else unit,
        period_from=start,
        period_to=end,
        generated_at=now,
        total=sum(day.count for day in timeline),
        per_day=timeline,
        by_kind=_ranked(kinds),
        by_channel=_ranked(channels),
        by_topic=_ranked(topics),
        campaigns=tuple(
            _campaign(c, {k: {"t": v.get("text", "")} for k, v in founders.items()}) for c in found
        ),
    )


def _ranked(found: Mapping[str, int]) -> tuple[Count, ...]:
    """Return counts largest first (then by key), zeros left out."""
    return tuple(
        Count(key=k, count=n) for k, n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])) if n
    )


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _span(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _per_day(doc: Mapping[str, Any] | None) -> dict[date, dict[str, int]]:
    days = (doc or {}).get("day") or {}
    found = {}
    for text, node in days.items() if isinstance(days, Mapping) else ():
        day = _date(str(text))
        if day is not None and isinstance(node, Mapping):
            found[day] = counts(node, "")
    return found


def _days(
    found: Mapping[date, Mapping[str, int]], project: Consultation | None
) -> tuple[DayCount, ...]:
    """Return every day of the window (zeros included) and any day with submissions outside it."""
    days = set(found)
    if project is not None:
        start, end = aggregates.day_of(project.opens_at), aggregates.day_of(project.closes_at)
        if (end - start).days < MAX_DAYS:
            days |= set(_span(start, end))
    elif days:
        start, end = min(days), max(days)
        if (end - start).days < MAX_DAYS:
            days |= set(_span(start, end))
    return tuple(
        DayCount(
            day=day,
            count=sum((found.get(day) or {}).values()),
            by_channel=_ranked(found.get(day) or {}),
        )
        for day in sorted(days)
    )


def _question(
    question: Question, doc: Mapping[str, Any] | None, items: list[Document]
) -> QuestionSummary:
    answered = counts(doc, "answered").get(question.id, 0)
    given = counts(doc, f"answers.{question.id}")
    base = {
        "id": question.id,
        "text_ar": question.text_ar,
        "text_en": question.text_en,
        "type": question.type.value,
        "answered": answered,
    }
    if question.type is QuestionType.TEXT:
        texts = tuple(
            FreeText(reference=str(item.get("r", "")), text=str(answer.get("a", "")))
            for item in items
            for answer in item.get("a") or ()
            if isinstance(answer, Mapping) and answer.get("q") == question.id and answer.get("a")
        )
        return QuestionSummary(**base, free_text=texts, free_text_total=answered)
    if question.type is QuestionType.SCALE:
        assert question.min is not None
        assert question.max is not None
        options = tuple(
            OptionCount(
                id=str(n),
                label_ar=str(n),
                label_en=str(n),
                count=given.get(aggregates.scale_key(n), 0),
            )
            for n in range(question.min, question.max + 1)
        )
        return QuestionSummary(**base, options=options)
    options = tuple(
        OptionCount(id=o.id, label_ar=o.label_ar, label_en=o.label_en, count=given.get(o.id, 0))
        for o in question.options
    )
    return QuestionSummary(**base, options=options)


def _campaign(doc: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]]) -> CampaignSummary:
    first = str(doc.get("first_submission_id"))
    text = (by_id.get(first) or {}).get("t") or ""
    return CampaignSummary(
        campaign_id=str(doc.get("_id")),
        size=max(int(doc.get("size", 2)), 2),
        first_reference=str(doc.get("first_reference", "")),
        representative=str(text),
    )


def _comment(item: Mapping[str, Any], sizes: Mapping[str, int]) -> Comment:
    size = sizes.get(str(item.get("id")))
    return Comment(
        reference=str(item.get("r", "")),
        submitted_at=datetime.fromisoformat(str(item.get("s"))),
        kind=str(item.get("k", "")),
        channel=str(item.get("c", "")),
        text=str(item.get("t", "")),
        late=bool(item.get("l")),
        campaign_size=size if size and size >= 2 else None,
    )
