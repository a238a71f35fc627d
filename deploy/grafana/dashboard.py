"""Sada's Grafana dashboard, as code (Grafana Foundation SDK for Grafana 11.6).

The SDK is not a project dependency: it lives in the tools venv that deploy/check.sh creates
from deploy/tools-requirements.txt. Regenerate the committed JSON after a change:

    .cache/tools-venv/bin/python deploy/grafana/dashboard.py

`--output PATH` writes elsewhere (`-` for stdout); deploy/check.sh uses it to prove that
dashboards/sada.json is what this file generates. Grafana loads the JSON through
provisioning/dashboards/sada.yaml; the datasource comes from provisioning/datasources/.

Every query uses metrics that the services define (shared/kafka.py, services/*/metrics.py,
services/router/routing.py and services/campaigns/decisions.py); labels are the bounded sets
those define (channel, unit, rule, code, outcome, why, mode, service, topic, partition).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import (  # type: ignore[import-not-found, unused-ignore]
    common,
    piechart,
    stat,
    statetimeline,
    timeseries,
)
from grafana_foundation_sdk.builders import (  # type: ignore[import-not-found, unused-ignore]
    dashboard as dash,
)
from grafana_foundation_sdk.builders import (  # type: ignore[import-not-found, unused-ignore]
    prometheus as prom,
)
from grafana_foundation_sdk.cog.encoder import (  # type: ignore[import-not-found, unused-ignore]
    JSONEncoder,
)
from grafana_foundation_sdk.models import (  # type: ignore[import-not-found, unused-ignore]
    common as common_models,
)
from grafana_foundation_sdk.models import (  # type: ignore[import-not-found, unused-ignore]
    dashboard as dash_models,
)

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards" / "sada.json"
UID = "sada-overview"
DATASOURCE = dash_models.DataSourceRef(type_val="prometheus", uid="${datasource}")
SERVICES = "intake|router|campaigns|notifier|archive"
DIGEST_SPAN = "15m"
"""The range digest sizes are measured over: three default windows, so each digest (one per
window at most) stays in the average for a while instead of showing as a blip between gaps."""


def query(expr: str, legend: str = "", ref: str = "A") -> prom.Dataquery:
    """A range query against the dashboard's Prometheus datasource."""
    q = prom.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    return q.legend_format(legend) if legend else q


def legend_table() -> common.VizLegendOptions:
    """A legend that lists series with their mean and max, so a spike is easy to attribute."""
    return (
        common.VizLegendOptions()
        .display_mode(common_models.LegendDisplayMode.TABLE)
        .placement(common_models.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["mean", "max"])
    )


def series(title: str, description: str, *, unit: str, stacked: bool = False) -> timeseries.Panel:
    """A time-series panel with the house defaults."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .height(8)
        .span(12)
        .fill_opacity(15 if stacked else 5)
        .line_width(1)
        .legend(legend_table())
    )
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
    return panel


def digest_row(board: dash.Dashboard) -> dash.Dashboard:
    """Inbox protection: each mailbox's mode, its digests and how long submissions wait for one.

    Every notifier replica exports the gauges (mode, oldest pending, window) for every unit
    from the shared store, so they are read with `max by (unit)`; the mode-switch counter is
    taken per replica too (max), so a switch that every replica sees counts once.
    """
    individual = dash_models.ValueMappingResult(text="individual", color="green")
    digest = dash_models.ValueMappingResult(text="digest", color="orange")
    dashed = dash_models.DynamicConfigValue(
        id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
    )
    return (
        board.with_row(dash.Row("Inbox protection (digests)"))
        .with_panel(
            statetimeline.Panel()
            .title("Mailbox mode by unit")
            .description(
                "Individual: one e-mail per submission. Digest: the unit's mailbox passed its"
                " threshold (SADA_DIGEST__THRESHOLD e-mails in SADA_DIGEST__RATE_SECONDS, or"
                " the unit's own in units.yaml) and gets one digest per window. Campaign"
                " copies past the first few wait for a digest in either mode."
            )
            .datasource(DATASOURCE)
            .height(6)
            .span(16)
            .show_value(common_models.VisibilityMode.NEVER)
            .mappings([dash_models.ValueMap({"0": individual, "1": digest})])
            .with_target(query("max by (unit) (sada_notifier_digest_mode)", "{{unit}}"))
        )
        .with_panel(
            stat.Panel()
            .title("Mode switches (time range)")
            .description(
                "Switches between individual and digest mode per unit in the selected range."
                " Many switches: the unit's traffic hovers at its threshold, and its staff get"
                " single e-mails and digests in turn (SadaDigestModeFlapping)."
            )
            .datasource(DATASOURCE)
            .height(6)
            .span(8)
            .unit("short")
            .no_value("0")
            .with_target(
                query(
                    "sum by (unit) (max by (unit, mode) "
                    "(increase(sada_notifier_digest_mode_changes_total[$__range])))",
                    "{{unit}}",
                ).instant()
            )
        )
        .with_panel(
            series(
                "Digests per minute by outcome",
                "Digest e-mails by unit and outcome: sent, failed (the mail server refused it"
                " permanently) or retry (a transient failure: the same digest, same Message-ID,"
                " goes again).",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (unit, outcome) (rate(sada_notifier_digests_total[$__rate_interval]))"
                    " * 60",
                    "{{unit}} {{outcome}}",
                )
            )
        )
        .with_panel(
            series(
                "Submissions set aside per minute by why",
                "Submissions kept for the next digest instead of an e-mail of their own: surge"
                " (the mailbox is in digest mode) or campaign (a copy past the campaign's first"
                " members, at any rate).",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (unit, why) "
                    "(rate(sada_notifier_digest_pending_total[$__rate_interval])) * 60",
                    "{{unit}} {{why}}",
                )
            )
        )
        .with_panel(
            series(
                "Digest size",
                f"Submissions per digest e-mail over the last {DIGEST_SPAN}, per unit: the mean"
                " and the 99th percentile (from the histogram's buckets). Past the list limit"
                " (200) a digest lists campaigns and counts and attaches the full list.",
                unit="short",
            )
            .with_target(
                query(
                    f"sum by (unit) (increase(sada_notifier_digest_items_sum[{DIGEST_SPAN}]))"
                    f" / sum by (unit) (increase(sada_notifier_digest_items_count[{DIGEST_SPAN}]))",
                    "{{unit}} mean",
                    "A",
                )
            )
            .with_target(
                query(
                    "histogram_quantile(0.99, sum by (unit, le) "
                    f"(increase(sada_notifier_digest_items_bucket[{DIGEST_SPAN}])))",
                    "{{unit}} p99",
                    "B",
                )
            )
        )
        .with_panel(
            series(
                "Oldest submission waiting for a digest",
                "Age of the oldest submission set aside for each unit's next digest (0: none"
                " waits), against two of the unit's windows (dashed): a digest normally leaves"
                " within one window and a few seconds; past two, SadaDigestOverdue fires.",
                unit="s",
            )
            .with_target(
                query(
                    "max by (unit) (sada_notifier_digest_oldest_pending_seconds)",
                    "{{unit}} oldest",
                    "A",
                )
            )
            .with_target(
                query(
                    "2 * max by (unit) (sada_notifier_digest_window_seconds)",
                    "{{unit}} 2 × window",
                    "B",
                )
            )
            .override_by_query(
                "B",
                [dashed, dash_models.DynamicConfigValue(id_val="custom.fillOpacity", value=0)],
            )
        )
    )


def build() -> dash.Dashboard:
    """The whole dashboard: flow, campaigns, notifications, digests, Kafka and services."""
    datasource = dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    board = (
        dash.Dashboard("Sada")
        .uid(UID)
        .description(
            "Sada: submissions in, routing, campaigns, e-mails to the units, Kafka health."
        )
        .tags(["sada"])
        .editable()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(datasource)
        # ---- the flow -------------------------------------------------------------------
        .with_row(dash.Row("Flow"))
        .with_panel(
            series(
                "Submissions per minute by channel",
                "Accepted and rejected submissions per channel (Kafka and HTTP doors together).",
                unit="short",
                stacked=True,
            )
            .with_target(
                query(
                    "sum by (channel) (rate(sada_intake_accepted_total[$__rate_interval])) * 60",
                    "{{channel}} accepted",
                    "A",
                )
            )
            .with_target(
                query(
                    "sum by (channel) (rate(sada_intake_rejected_total[$__rate_interval])) * 60",
                    "{{channel}} rejected",
                    "B",
                )
            )
        )
        .with_panel(
            series(
                "Rejections per minute by reason",
                "Reason codes found in rejected submissions (each code once per submission).",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (code) (rate(sada_intake_rejection_reasons_total[$__rate_interval]))"
                    " * 60",
                    "{{code}}",
                )
            )
        )
        .with_panel(
            series(
                "Routing per minute by unit and rule",
                "Routing decisions: which unit received the submission and the rule that decided.",
                unit="short",
                stacked=True,
            )
            .span(16)
            .with_target(
                query(
                    "sum by (unit, rule) (rate(sada_routing_decisions_total[$__rate_interval]))"
                    " * 60",
                    "{{unit}} / {{rule}}",
                )
            )
        )
        .with_panel(
            piechart.Panel()
            .title("Routing split (time range)")
            .description("Share of the routing decisions in the selected time range.")
            .datasource(DATASOURCE)
            .height(8)
            .span(8)
            .unit("short")
            .with_target(
                query(
                    "sum by (unit, rule) (increase(sada_routing_decisions_total[$__range]))",
                    "{{unit}} / {{rule}}",
                ).instant()
            )
        )
        # ---- campaigns ------------------------------------------------------------------
        .with_row(dash.Row("Campaigns"))
        .with_panel(
            series(
                "Campaign decisions per minute by outcome",
                "Each routed submission joins a campaign as an identical copy, as a"
                " near-identical one, or none (the first of its text in its scope).",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (outcome) (rate(sada_campaign_decisions_total[$__rate_interval])) * 60",
                    "{{outcome}}",
                )
            )
        )
        .with_panel(
            series(
                "Campaigns lag by partition",
                "Routed events campaigns has not grouped yet; every e-mail waits for it"
                " (SadaCampaignsBehind). Routed events are keyed by campaign scope: one"
                " partition far behind the others is a hot scope, which more replicas do not"
                " speed up.",
                unit="short",
            ).with_target(
                query(
                    'max by (topic, partition) (sada_consumer_lag{service="campaigns"})',
                    "{{topic}} / {{partition}}",
                )
            )
        )
        .with_panel(
            series(
                "Scopes held in memory",
                "Scopes (a draft law, or a unit's rolling window) each replica holds in memory;"
                " at most SADA_CAMPAIGN_SCOPES_HELD, the least recently used forgotten first.",
                unit="short",
            ).with_target(query("sum by (instance) (sada_campaign_scopes_held)", "{{instance}}"))
        )
        .with_panel(
            series(
                "Scope loads per minute",
                "Scopes rebuilt from MongoDB: a start, a rebalance, or a scope forgotten to make"
                " room. Loads that never settle mean too few scopes held for the traffic.",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (instance) "
                    "(rate(sada_campaign_scope_loads_total[$__rate_interval])) * 60",
                    "{{instance}}",
                )
            )
        )
        # ---- notifications --------------------------------------------------------------
        .with_row(dash.Row("Notifications"))
        .with_panel(
            series(
                "Accepted → e-mailed latency",
                "Time from intake's acceptance to the unit's mail server taking the e-mail.",
                unit="s",
            )
            .with_target(
                query(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(sada_notifier_accepted_to_emailed_seconds_bucket[$__rate_interval])))",
                    "p50",
                    "A",
                )
            )
            .with_target(
                query(
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(sada_notifier_accepted_to_emailed_seconds_bucket[$__rate_interval])))",
                    "p99",
                    "B",
                )
            )
        )
        .with_panel(
            series(
                "Notification outcomes per minute",
                "E-mails by unit and outcome: sent, failed (permanent refusal, notification.failed)"
                " or repeat (already sent: the ledger suppressed a duplicate).",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (unit, outcome) (rate(sada_notifier_emails_total[$__rate_interval]))"
                    " * 60",
                    "{{unit}} {{outcome}}",
                )
            )
        )
        .with_panel(
            series(
                "SMTP retries per minute by kind",
                "Transient mail-server failures the notifier retried (connect, timeout,"
                " disconnected, 4xx).",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (kind) (rate(sada_notifier_smtp_retries_total[$__rate_interval])) * 60",
                    "{{kind}}",
                )
            )
        )
        .with_panel(
            series(
                "SMTP send time",
                "How long the mail server takes to accept one e-mail.",
                unit="s",
            )
            .with_target(
                query(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(sada_notifier_smtp_seconds_bucket[$__rate_interval])))",
                    "p50",
                    "A",
                )
            )
            .with_target(
                query(
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(sada_notifier_smtp_seconds_bucket[$__rate_interval])))",
                    "p99",
                    "B",
                )
            )
        )
    )
    return (
        digest_row(board)
        # ---- Kafka ----------------------------------------------------------------------
        .with_row(dash.Row("Kafka"))
        .with_panel(
            series(
                "Consumer lag per service",
                "Records each consumer group is behind, measured from the broker (end minus"
                " committed offset), summed over partitions, per topic. Every replica measures"
                " the whole group, so each partition counts once (max).",
                unit="short",
            ).with_target(
                query(
                    "sum by (service, topic) "
                    "(max by (service, topic, partition) (sada_consumer_lag))",
                    "{{service}} ← {{topic}}",
                )
            )
        )
        .with_panel(
            series(
                "Dead letters",
                "Records sent to feedback.deadletter.v1, by the service and source topic."
                " Every one is archived and alerts (SadaDeadLetters).",
                unit="short",
                stacked=True,
            )
            .draw_style(common_models.GraphDrawStyle.BARS)
            .with_target(
                query(
                    "sum by (service, topic) (increase(sada_deadletters_total[$__rate_interval]))",
                    "{{service}} ← {{topic}}",
                )
            )
        )
        .with_panel(
            series(
                "Transient retries",
                "Batches that hit a transient failure (broker, database or mail server) and wait.",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (service, topic) "
                    "(increase(sada_transient_retries_total[$__rate_interval]))",
                    "{{service}} ← {{topic}}",
                )
            )
        )
        .with_panel(
            series(
                "Offset commit failures",
                "Commits that failed; the batch is redelivered and its effects are idempotent.",
                unit="short",
                stacked=True,
            ).with_target(
                query(
                    "sum by (service, topic) "
                    "(increase(sada_commit_failures_total[$__rate_interval]))",
                    "{{service}} ← {{topic}}",
                )
            )
        )
        # ---- services -------------------------------------------------------------------
        .with_row(dash.Row("Services"))
        .with_panel(
            stat.Panel()
            .title("Up")
            .description("1 when Prometheus scrapes the service's /metrics.")
            .datasource(DATASOURCE)
            .height(4)
            .span(18)
            .with_target(query(f'up{{job=~"{SERVICES}"}}', "{{job}} {{instance}}").instant())
        )
        .with_panel(
            stat.Panel()
            .title("Privacy requests past due")
            .description(
                "Data subjects' access or erasure requests still open past their due date "
                "(PDPL: 30 days, extendable once by 30): `sada privacy requests` lists them."
            )
            .datasource(DATASOURCE)
            .height(4)
            .span(6)
            .with_target(query("max(sada_privacy_requests_past_due)", "past due").instant())
        )
    )


def render() -> str:
    """The dashboard as stable JSON text (sorted keys), ending with a newline."""
    model = build().build()
    # Unique ids in layout order: Grafana's panel links and "view panel" URLs rely on them.
    for number, panel in enumerate(model.panels or (), start=1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard JSON to dashboards/sada.json, or to --output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", default=str(OUTPUT), help="file to write, or - for stdout")
    args = parser.parse_args(argv)
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
