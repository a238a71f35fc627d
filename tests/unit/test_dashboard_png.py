"""The README's dashboard picture runs the dashboard's own queries, as Grafana would."""

from __future__ import annotations

import json

import pytest

from deploy.local import dashboard_png


def test_every_pictured_panel_is_a_time_series_of_the_committed_dashboard() -> None:
    dashboard = json.loads(dashboard_png.DASHBOARD.read_text(encoding="utf-8"))
    chosen = dashboard_png.panels(dashboard)
    assert [p.title for p in chosen] == list(dashboard_png.PANELS)
    assert all(p.targets and all("sada_" in t.expr for t in p.targets) for p in chosen)


def test_a_panel_the_dashboard_lost_stops_the_picture_with_its_name() -> None:
    with pytest.raises(SystemExit, match="Routing split"):
        dashboard_png.panels({"panels": []}, ("Routing split",))


def test_grafana_range_variables_become_windows_of_at_least_four_scrapes() -> None:
    expr = "sum(rate(x[$__rate_interval])) + sum(increase(y[$__range]))"
    assert dashboard_png.promql(expr, 15) == "sum(rate(x[60s])) + sum(increase(y[60s]))"
    assert dashboard_png.promql(expr, 30) == "sum(rate(x[120s])) + sum(increase(y[120s]))"


def test_legends_render_like_grafana_and_never_come_out_empty() -> None:
    labels = {"unit": "voice_of_customer", "rule": "default"}
    assert dashboard_png.legend("{{unit}} / {{rule}}", labels) == "voice_of_customer / default"
    assert dashboard_png.legend("", labels) == "unit=voice_of_customer, rule=default"
    assert dashboard_png.legend("", {}) == "value"
