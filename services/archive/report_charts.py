"""Inline SVG charts for the report pages: drawn here, laid out and shaped by the reader's browser.

Why SVG written in Python rather than a chart library or JavaScript: the page must be one
self-contained file (no scripts, no fonts or URLs to fetch) that also prints to a clean PDF, and
the browser's own text engine shapes the Arabic labels (letter joining, right-to-left) where a
raster library would need a shaping stack of its own. Every chart has a `viewBox` and is drawn at
the width of its container, so it never makes the page scroll sideways; it is one element that
print CSS keeps on one page (`break-inside: avoid`), so no bar is cut.

The bar charts read right to left, as the page does: the Arabic label at the right edge, the
English one at the left, the bar growing leftwards from the right. The timeline keeps time
running left to right with Latin digits, as dates are written in the ministry's own reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from markupsafe import Markup, escape

from services.archive.report_model import DayCount

WIDTH: Final = 760
"""Drawing units across a full-width chart: about its width in pixels on a screen."""
HALF_WIDTH: Final = 440
"""Drawing units across a chart shown in half the page's width (two side by side)."""
CHAR_WIDTH: Final = 6.6
"""A generous average advance of one character at the charts' 13-unit label size, for fitting
labels without measuring text (which only the browser can)."""
PALETTE: Final = ("#0b6e4f", "#2f7fc1", "#d08c1f", "#8e5bb5", "#c24b4b")
OTHER_COLOUR: Final = "#98a4ad"
BAR_COLOUR: Final = "#0b6e4f"
MUTED: Final = "#5b6770"
GRID: Final = "#e3e7ea"


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a horizontal bar chart: what was counted, in both languages, and how often."""

    label_ar: str
    label_en: str
    count: int


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked series of the timeline (a channel, or "other"): its key, colour and labels."""

    key: str
    colour: str
    label_ar: str
    label_en: str


def number(value: int) -> str:
    """Return a count with thousands separators (Latin digits, as in the rest of the page)."""
    return f"{value:,}"


def percent(part: int, whole: int) -> str:
    """Return `part` as a whole-number share of `whole` ("<1%" rather than a misleading 0%)."""
    if whole <= 0:
        return "0%"
    share = 100 * part / whole
    if 0 < share < 1:
        return "<1%"
    return f"{round(share)}%"


def fit(text: str, chars: int) -> str:
    """Return `text` on one line, cut to at most `chars` characters with an ellipsis."""
    line = " ".join(text.split())
    if len(line) <= chars:
        return line
    return line[: max(chars - 1, 1)].rstrip() + "…"


def _fit_pair(ar: str, en: str, chars: int) -> tuple[str, str]:
    """Share one line of `chars` characters between an Arabic and an English label."""
    ar, en = " ".join(ar.split()), " ".join(en.split())
    if len(ar) + len(en) <= chars:
        return ar, en
    half = chars // 2
    return fit(ar, max(half, chars - len(en))), fit(en, max(half, chars - len(ar)))


def bars(rows: Sequence[Bar], *, whole: int, title: str, width: int = WIDTH) -> Markup:
    """Return a horizontal bar chart of `rows`, each bar's share given of `whole`.

    Each row is a label line (Arabic at the right, English at the left, both cut to fit the
    line; the full texts are in the row's `<title>`) above its bar, so a long option label
    never overlaps the bars. `width` is the drawing's width in units: about the width it is
    shown at in pixels, so its text has the page's size. An empty chart says so instead of
    drawing nothing.
    """
    if not rows:
        return Markup('<p class="empty">لا بيانات · <span lang="en">no data</span></p>')
    row_height, label_gap, bar_height, value_room = 44, 17, 14, 118
    height = row_height * len(rows) + 4
    most = max(max(row.count for row in rows), 1)
    chars = int((width - 24) / CHAR_WIDTH)
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for i, row in enumerate(rows):
        top = i * row_height
        same = row.label_en == row.label_ar  # an id without names (a topic): shown once
        ar, en = _fit_pair(row.label_ar, "" if same else row.label_en, chars)
        length = (width - value_room) * row.count / most
        length = max(length, 2.0) if row.count else 0.0
        bar_y = top + label_gap + 5
        value = f"{number(row.count)} · {percent(row.count, whole)}"
        parts.append(
            f'<g class="bar"><title>{escape(row.label_ar)} — {escape(row.label_en)}: {value}'
            f"</title>"
            f'<text x="{width}" y="{top + label_gap - 2}" direction="rtl" text-anchor="start" '
            f'class="ar">{escape(ar)}</text>'
            f'<text x="0" y="{top + label_gap - 2}" direction="ltr" text-anchor="start" '
            f'class="en">{escape(en)}</text>'
            f'<rect x="0" y="{bar_y}" width="{width}" height="{bar_height}" fill="{GRID}" '
            f'opacity="0.45"/>'
            f'<rect x="{width - length:.1f}" y="{bar_y}" width="{length:.1f}" '
            f'height="{bar_height}" fill="{BAR_COLOUR}"/>'
            f'<text x="{width - length - 6:.1f}" y="{bar_y + bar_height - 2}" direction="ltr" '
            f'text-anchor="end" class="value">{value}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _nice_step(most: int, ticks: int = 4) -> int:
    """Return a round gridline step (1, 2 or 5 times a power of ten) giving about `ticks` lines."""
    raw = max(most / ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def series_of(days: Sequence[DayCount], labels: dict[str, tuple[str, str]]) -> tuple[Series, ...]:
    """Return the timeline's series: the five busiest channels, then "other" if any remain."""
    totals: dict[str, int] = {}
    for day in days:
        for c in day.by_channel:
            totals[c.key] = totals.get(c.key, 0) + c.count
    top = sorted(totals, key=lambda k: (-totals[k], k))[: len(PALETTE)]
    out = [
        Series(key, colour, *labels.get(key, (key, key)))
        for key, colour in zip(top, PALETTE, strict=False)
    ]
    shown = sum(totals[k] for k in top)
    if sum(day.count for day in days) > shown:
        out.append(Series("", OTHER_COLOUR, "أخرى", "Other"))
    return tuple(out)


def timeline(
    days: Sequence[DayCount], series: Sequence[Series], *, title: str, closes_on: date | None = None
) -> Markup:
    """Return a column chart of submissions per day, stacked by `series` (keys of `by_channel`).

    A day's count beyond its listed channels goes to the "other" series (key ""). Day labels
    are thinned to about a dozen; `closes_on`, when inside the range, is marked with a dashed
    line, so late submissions stand out.
    """
    if not days:
        return Markup('<p class="empty">لا بيانات · <span lang="en">no data</span></p>')
    left, right, top, bottom, height = 46, 8, 10, 26, 230
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    most = max(max(day.count for day in days), 1)
    step = _nice_step(most)
    ceiling = step * math.ceil(most / step)
    slot = plot_w / len(days)
    bar_w = max(slot * 0.78, 1.0)
    label_every = max(math.ceil(len(days) / 12), 1)
    keys = {s.key for s in series}
    colour = {s.key: s.colour for s in series}
    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" direction="ltr">'
        f"<title>{escape(title)}</title>"
    ]
    for tick in range(0, ceiling + 1, step):
        y = top + plot_h - plot_h * tick / ceiling
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{number(tick)}</text>"
        )
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        base = float(top + plot_h)
        segments = [(c.key if c.key in keys else "", c.count) for c in day.by_channel]
        rest = day.count - sum(count for _, count in segments)
        if rest > 0:
            segments.append(("", rest))
        parts.append(f"<g><title>{day.day.isoformat()}: {number(day.count)}</title>")
        for key, count in segments:
            h = plot_h * count / ceiling
            if h <= 0:
                continue
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour.get(key, OTHER_COLOUR)}"/>'
            )
        parts.append("</g>")
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle" '
                f'class="axis">{day.day.strftime("%m-%d")}</text>'
            )
    if closes_on is not None and days[0].day <= closes_on < days[-1].day:
        index = next(i for i, day in enumerate(days) if day.day > closes_on)
        x = left + index * slot
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#c24b4b" '
            f'stroke-dasharray="4 3"/>'
            f'<text x="{x - 4:.1f}" y="{top + 12}" text-anchor="end" class="close" '
            f'direction="ltr">closes · يُغلق</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()
