"""The summary of views as Markdown (`sada report … --format md`): plain tables, both languages.

For pasting into a memo or a ticket; the HTML page is the one made for reading.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.archive.report_model import ConsultationReport, Count, DayCount, UnitReport


def _cell(value: object) -> str:
    """Return a table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _counts(title: str, found: Iterable[Count]) -> list[str]:
    rows = [(c.key, c.count) for c in found]
    return [f"### {title}", "", *(_table(["", "#"], rows) if rows else ["—", ""])]


def _days(found: Iterable[DayCount]) -> list[str]:
    rows = [
        (d.day.isoformat(), d.count, ", ".join(f"{c.key} {c.count}" for c in d.by_channel))
        for d in found
    ]
    head = ["اليوم / Day", "#", "القنوات / Channels"]
    return ["### الحجم اليومي / Per day", "", *(_table(head, rows) if rows else ["—", ""])]


def consultation(report: ConsultationReport) -> str:
    """Return the consultation report as Markdown."""
    info = report.consultation
    lines = [f"# {info.title_ar}", "", f"**{info.title_en}** — `{info.ref}`", ""]
    if info.opens_at and info.closes_at:
        lines += [f"{info.opens_at.isoformat()} → {info.closes_at.isoformat()}", ""]
    if not info.registered:
        lines += ["غير مسجل في سجل المشروعات / Not in the registry of consultations", ""]
    lines += _table(
        ["المجموع / Total", "متأخرة / Late", "غير مسجلة / Unregistered"],
        [(report.total, report.late, report.unregistered)],
    )
    lines += _counts("حسب النوع / By kind", report.by_kind)
    lines += _counts("حسب القناة / By channel", report.by_channel)
    lines += _days(report.per_day)
    for q in report.questions:
        lines += [f"### {q.text_ar} / {q.text_en}", "", f"`{q.id}` · {q.answered}", ""]
        if q.options:
            lines += _table(["", "", "#"], [(o.label_ar, o.label_en, o.count) for o in q.options])
        for answer in q.free_text:
            lines += [f"- `{answer.reference}` {_cell(answer.text)}"]
        if q.free_text:
            lines += [""]
    lines += ["## الحملات / Campaigns", ""]
    rows = [(c.size, c.first_reference, c.representative) for c in report.campaigns]
    lines += _table(["#", "", ""], rows) if rows else ["—", ""]
    lines += [f"## التعليقات المتمايزة / Distinct comments ({report.comments_total})", ""]
    comments = [
        (c.reference, c.submitted_at.date().isoformat(), c.kind, c.channel, c.text)
        for c in report.comments
    ]
    lines += _table(["", "", "", "", ""], comments) if comments else ["—", ""]
    return "\n".join(lines)


def unit(report: UnitReport) -> str:
    """Return the unit report as Markdown."""
    lines = [
        f"# {report.name_ar} / {report.name_en}",
        "",
        f"{report.period_from.isoformat()} → {report.period_to.isoformat()} · {report.total}",
        "",
    ]
    lines += _days(report.per_day)
    lines += _counts("حسب النوع / By kind", report.by_kind)
    lines += _counts("حسب القناة / By channel", report.by_channel)
    lines += _counts("حسب الموضوع / By topic", report.by_topic)
    lines += ["## الحملات / Campaigns", ""]
    rows = [(c.size, c.first_reference, c.representative) for c in report.campaigns]
    lines += _table(["#", "", ""], rows) if rows else ["—", ""]
    return "\n".join(lines)
