"""Plot the Grafana dashboard's key queries from a running Prometheus into one PNG.

Grafana cannot be installed on the development machine, but Prometheus can, and `make run`
starts it scraping every service. This reads the committed dashboard JSON
(`deploy/grafana/dashboards/sada.json`, generated from `deploy/grafana/dashboard.py`), runs the
same PromQL of its time-series panels through Prometheus' HTTP API (`/api/v1/query_range`) over
the last minutes, and draws each panel, so the README's picture shows the very queries an
operator's Grafana runs, over real traffic:

    make run                       # in one terminal
    for i in 1 2 3 4 5 6 7 8; do make demo; sleep 25; done
    make dashboard-png             # = python -m deploy.local.dashboard_png --minutes 6
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import matplotlib as mpl

mpl.use("Agg")  # no display on a server; must precede pyplot's import
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "sada.json"
OUTPUT = ROOT / "docs" / "dashboard.png"
PANELS = (
    "Submissions per minute by channel",
    "Rejections per minute by reason",
    "Routing per minute by unit and rule",
    "Accepted → e-mailed latency",
    "Notification outcomes per minute",
    "SMTP send time",
    "Consumer lag per service",
    "Dead letters",
    "Submissions set aside per minute by why",
    "Digests per minute by outcome",
    "Digest size",
    "Oldest submission waiting for a digest",
)
"""The panels an operations team watches first, in the dashboard's own order."""


@dataclass(frozen=True, slots=True)
class Target:
    """One PromQL query of a panel and how Grafana names its series."""

    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class Panel:
    """A time-series panel of the dashboard."""

    title: str
    unit: str
    targets: tuple[Target, ...]


def panels(dashboard: dict[str, Any], titles: tuple[str, ...] = PANELS) -> list[Panel]:
    """Return the dashboard's time-series panels named in `titles`, in that order."""
    found = {
        p["title"]: Panel(
            title=p["title"],
            unit=p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"),
            targets=tuple(Target(t["expr"], t.get("legendFormat", "")) for t in p["targets"]),
        )
        for p in dashboard["panels"]
        if p.get("type") == "timeseries"
    }
    missing = [t for t in titles if t not in found]
    if missing:
        raise SystemExit(f"dashboard_png: panels not in {DASHBOARD.name}: {missing}")
    return [found[t] for t in titles]


def promql(expr: str, step: int) -> str:
    """Fill in Grafana's range variables as Grafana would for this step."""
    window = f"{max(4 * step, 60)}s"  # Grafana's $__rate_interval: at least 4 scrapes
    return expr.replace("$__rate_interval", window).replace("$__range", window)


def legend(template: str, labels: dict[str, str]) -> str:
    """Render a Grafana legend template (`{{unit}} / {{rule}}`) for one series."""
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text or ", ".join(f"{k}={v}" for k, v in labels.items()) or "value"


def query_range(
    client: httpx.Client, expr: str, start: float, end: float, step: int
) -> list[dict[str, Any]]:
    """Return the matrix Prometheus answers for `expr`, or fail with its own error."""
    response = client.get(
        "/api/v1/query_range", params={"query": expr, "start": start, "end": end, "step": step}
    )
    body = response.json()
    if body.get("status") != "success":
        raise SystemExit(f"dashboard_png: Prometheus refused {expr!r}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def series_of(
    client: httpx.Client, panel: Panel, start: float, end: float, step: int
) -> list[tuple[str, list[float], list[float]]]:
    """Return every series of a panel's queries: its legend, minutes before `end`, values."""
    lines = []
    for target in panel.targets:
        for item in query_range(client, promql(target.expr, step), start, end, step):
            points = [(float(t), float(v)) for t, v in item["values"]]
            points = [(t, v) for t, v in points if math.isfinite(v)]  # NaN: no rate yet
            if points:
                xs = [(t - end) / 60 for t, _ in points]
                lines.append((legend(target.legend, item["metric"]), xs, [v for _, v in points]))
    return lines


def draw(
    ax: Axes, panel: Panel, series: list[tuple[str, list[float], list[float]]], minutes: float
) -> None:
    """Draw one panel: a line per series, minutes before the snapshot on the x axis."""
    ax.set_title(panel.title, fontsize=10, loc="left")
    ax.grid(alpha=0.3)
    ax.set_xlim(-minutes, 0)
    ax.set_xlabel("minutes before the snapshot", fontsize=7)
    ax.set_ylabel({"s": "seconds", "short": ""}.get(panel.unit, panel.unit), fontsize=8)
    ax.tick_params(labelsize=7)
    if not series:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    for name, xs, ys in series:
        ax.plot(xs, ys, linewidth=1.2, label=name)
    ax.set_ylim(bottom=0)  # after plotting, so the top still follows the data
    ax.legend(fontsize=6, loc="upper left", ncol=2, frameon=False)


def main(argv: list[str] | None = None) -> int:
    """Query, plot, write the PNG; print where it went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=6.0, help="how far back to plot")
    parser.add_argument("--step", type=int, default=15, help="seconds between points")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    chosen = panels(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    end = time.time()
    start = end - args.minutes * 60
    cols = 2
    fig, axes = plt.subplots(
        math.ceil(len(chosen) / cols), cols, figsize=(12, 2.6 * len(chosen) / cols + 0.6)
    )
    with httpx.Client(base_url=args.prometheus, timeout=30) as client:
        for ax, panel in zip(axes.flat, chosen, strict=False):
            lines = series_of(client, panel, start, end, args.step)
            draw(ax, panel, lines, args.minutes)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    fig.suptitle(f"Sada dashboard queries from Prometheus, last {args.minutes:g} min ({stamp})")
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
