"""The report pages people read: a `ConsultationReport` or `UnitReport` as one HTML file.

Arabic first and right to left, with English alongside; every reference, ref and piece of
submitter text isolated (`<bdi>`, `dir="auto"`) so mixed Arabic and Latin text keeps its order.
Charts are inline SVG (`report_charts`); the page has no script and loads nothing (its
Content-Security-Policy says so), so it can be mailed, archived or saved as a PDF as it is: the
print CSS lays it out on A4 with each section on a new page and no chart cut in two.

A popular consultation has tens of thousands of distinct comments, all shown: the comment list
is written here in Python, a few short tags per comment, rather than by a template loop (which
costs several times more per row), and carries no per-comment styling.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from services.archive import report_charts as charts
from services.archive.report_model import (
    CampaignSummary,
    Comment,
    ConsultationReport,
    Count,
    DayCount,
    FreeText,
    QuestionSummary,
    UnitReport,
)
from shared.directory import load_channels
from shared.models import KIND_LABELS

TEMPLATES: Final = Path(__file__).with_name("templates")
RIYADH: Final = ZoneInfo("Asia/Riyadh")
QUESTION_TYPES: Final[Mapping[str, tuple[str, str]]] = {
    "single_choice": ("اختيار واحد", "single choice"),
    "multi_choice": ("اختيار متعدد", "multiple choice"),
    "scale": ("مقياس", "scale"),
    "text": ("نص حر", "free text"),
}
Labels = Mapping[str, tuple[str, str]]
"""A key (channel id, kind) to its (Arabic, English) names."""


def t(ar: str, en: str) -> Markup:
    """Return a label in both languages: Arabic, then English muted, each with its direction."""
    return Markup(
        '<span lang="ar">{}</span> <span class="en" lang="en" dir="ltr">{}</span>'
    ).format(ar, en)


def bdi(value: object) -> Markup:
    """Return a reference or ref isolated from the text around it (its own direction)."""
    return Markup("<bdi>{}</bdi>").format(value)


def riyadh(at: datetime) -> str:
    """Return an instant as Riyadh wall-clock time, to the minute."""
    return at.astimezone(RIYADH).strftime("%Y-%m-%d %H:%M")


@cache
def _channel_labels() -> Labels:
    return {c.id: (c.name_ar, c.name_en) for c in load_channels().values()}


def _kind_labels() -> Labels:
    return {kind.value: names for kind, names in KIND_LABELS.items()}


def _name(labels: Labels, key: str) -> tuple[str, str]:
    return labels.get(key, (key, key))


@dataclass(frozen=True, slots=True)
class Figure:
    """A titled chart with an optional HTML legend or note under it."""

    title: Markup
    svg: Markup
    note: Markup = field(default_factory=Markup)


def _count_chart(
    title_ar: str, title_en: str, counts: Sequence[Count], labels: Labels, *, half: bool = True
) -> Figure:
    """Return a bar chart of counts; `half`: drawn for half the page's width (two side by side)."""
    total = sum(c.count for c in counts)
    rows = [charts.Bar(*_name(labels, c.key), c.count) for c in counts]
    width = charts.HALF_WIDTH if half else charts.WIDTH
    return Figure(
        t(title_ar, title_en), charts.bars(rows, whole=total, title=title_en, width=width)
    )


def _timeline(days: Sequence[DayCount], channels: Labels, closes_on: date | None) -> Figure:
    series = charts.series_of(days, dict(channels))
    svg = charts.timeline(days, series, title="Submissions per day", closes_on=closes_on)
    span = Markup(" <bdi>({} → {})</bdi>").format(days[0].day, days[-1].day) if days else ""
    legend = Markup("").join(
        Markup('<li><i style="background:{}"></i>{}</li>').format(
            s.colour, t(s.label_ar, s.label_en)
        )
        for s in series
    )
    note = Markup('<ul class="legend">{}</ul>').format(legend) if series else Markup("")
    return Figure(t("المشاركات يوميًا", "Submissions per day") + span, svg, note)


@dataclass(frozen=True, slots=True)
class QuestionView:
    """One question as the page shows it."""

    q: QuestionSummary
    type_label: Markup
    chart: Markup
    mean: str | None
    free_text: Markup


def _question(q: QuestionSummary) -> QuestionView:
    type_label = t(*QUESTION_TYPES.get(q.type, (q.type, q.type)))
    chart = Markup("")
    mean = None
    if q.options:
        rows = [charts.Bar(o.label_ar, o.label_en, o.count) for o in q.options]
        chart = charts.bars(rows, whole=q.answered, title=q.text_en)
    chosen = sum(o.count for o in q.options)
    if q.type == "scale" and chosen and all(o.id.lstrip("-").isdigit() for o in q.options):
        mean = f"{sum(int(o.id) * o.count for o in q.options) / chosen:.1f}"
    return QuestionView(q, type_label, chart, mean, _free_text(q.free_text))


def _free_text(answers: Iterable[FreeText]) -> Markup:
    return Markup("").join(
        Markup('<li><bdi class="ref">{}</bdi><p dir="auto">{}</p></li>').format(a.reference, a.text)
        for a in answers
    )


_LATE_CLASS: Final = ' class="late"'
_LATE_TAG: Final = ' · <b class="late">متأخر <span lang="en">late</span></b>'
_CAMPAIGN_TAG: Final = ' · <b class="camp">حملة ×{} <span lang="en">campaign</span></b>'


def comment_items(comments: Iterable[Comment], kinds: Labels, channels: Labels) -> Markup:
    """Return the comment list's `<li>` items: reference, time, kind, channel, marks, text.

    Kind and channel are named in Arabic only (the section's heading says it in both); each item
    is a handful of tags, so 100,000 comments stay a plain, printable list. The loop is the page's
    hot path: the standard library's `html.escape` on plain strings (markupsafe's `escape` builds
    an object per value), each kind's and channel's name escaped once, `isoformat` for the time.
    """
    kind_names = {key: html.escape(ar) for key, (ar, _) in kinds.items()}
    channel_names = {key: html.escape(ar) for key, (ar, _) in channels.items()}
    escape_text = html.escape
    out = []
    for c in comments:
        tags = _LATE_TAG if c.late else ""
        if c.campaign_size:
            tags += _CAMPAIGN_TAG.format(charts.number(c.campaign_size))
        kind = kind_names.get(c.kind) or escape_text(c.kind)
        channel = channel_names.get(c.channel) or escape_text(c.channel)
        at = c.submitted_at.astimezone(RIYADH).isoformat(" ", "minutes")[:16]
        out.append(
            f'<li{_LATE_CLASS if c.late else ""}><bdi class="ref">{escape_text(c.reference)}</bdi>'
            f" <small><bdi>{at}</bdi> · {kind} · {channel}{tags}</small>"
            f'<p dir="auto">{escape_text(c.text)}</p></li>'
        )
    return Markup("\n".join(out))  # noqa: S704 - every value in it went through html.escape


def campaign_rows(
    campaigns: Iterable[CampaignSummary], total: int
) -> list[tuple[CampaignSummary, str]]:
    """Return each campaign with its share of the project's submissions."""
    return [(c, charts.percent(c.size, total)) for c in campaigns]


@cache
def environment() -> jinja2.Environment:
    """Return the template environment: HTML autoescaped, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(t=t, bdi=bdi, riyadh=riyadh, number=charts.number, percent=charts.percent)
    return env


def render_consultation(report: ConsultationReport, *, channels: Labels | None = None) -> str:
    """Return the summary of views of one project as a self-contained HTML page.

    `channels` names the channels (id → Arabic, English); the registry's `channels.yaml` by
    default. An unknown channel or kind is shown by its id.
    """
    channels = _channel_labels() if channels is None else channels
    kinds = _kind_labels()
    info = report.consultation
    closes_on = info.closes_at.astimezone(RIYADH).date() if info.closes_at else None
    return (
        environment()
        .get_template("report_consultation.html.j2")
        .render(
            r=report,
            info=info,
            timeline=_timeline(report.per_day, channels, closes_on),
            by_kind=_count_chart("حسب النوع", "By kind", report.by_kind, kinds),
            by_channel=_count_chart("حسب القناة", "By channel", report.by_channel, channels),
            questions=[_question(q) for q in report.questions],
            campaigns=campaign_rows(report.campaigns, report.total),
            campaign_members=sum(c.size for c in report.campaigns),
            comments=comment_items(report.comments, kinds, channels),
        )
    )


def render_unit(report: UnitReport, *, channels: Labels | None = None) -> str:
    """Return a unit's report over a period (volume, kinds, channels, topics, campaigns) as HTML."""
    channels = _channel_labels() if channels is None else channels
    return (
        environment()
        .get_template("report_unit.html.j2")
        .render(
            r=report,
            timeline=_timeline(report.per_day, channels, None),
            by_kind=_count_chart("حسب النوع", "By kind", report.by_kind, _kind_labels()),
            by_channel=_count_chart("حسب القناة", "By channel", report.by_channel, channels),
            by_topic=_count_chart("حسب الموضوع", "By topic", report.by_topic, {}, half=False),
            campaigns=campaign_rows(report.campaigns, report.total),
            campaign_members=sum(c.size for c in report.campaigns),
        )
    )
