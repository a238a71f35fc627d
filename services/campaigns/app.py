"""The campaigns process: groups routed submissions into campaigns; `/health` and `/metrics`."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.campaigns import handlers
from services.campaigns.decisions import SERVICE, Campaigns
from services.campaigns.settings import CampaignsSettings
from services.campaigns.store import CampaignState, MongoCampaignState
from shared import events, logging, mongo, version
from shared.http import Check, Hook, create_app, serve
from shared.kafka import BatchRunner, make_broker
from shared.lag import lag_monitor
from shared.transport import announce_insecure_transport


def build(settings: CampaignsSettings, *, state: CampaignState | None = None) -> FastAPI:
    """Return the campaigns app; component tests pass an in-memory `state`."""
    release = version.current()
    broker = make_broker(settings.kafka, service=SERVICE)
    checks: dict[str, Check] = {}
    on_shutdown: list[Hook] = []
    if state is None:
        client = mongo.make_client(settings.mongo, app_name=SERVICE)
        state = MongoCampaignState(client, settings.mongo.database)
        checks["mongo"] = lambda: mongo.ping(client)
        on_shutdown.append(client.close)
    campaigns = Campaigns(
        state,
        producer=events.Producer(service=SERVICE, version=release),
        topic=settings.grouped_topic,
        window=timedelta(days=settings.campaign_window_days),
        max_scopes=settings.campaign_scopes_held,
    )
    runner = BatchRunner(
        broker, service=SERVICE, version=release, hold_seconds=settings.kafka.hold_seconds
    )
    handlers.register(broker, settings, campaigns, runner)
    lag = lag_monitor(
        settings.kafka, service=SERVICE, group_id=settings.group_id, topics=(settings.routed_topic,)
    )
    app = create_app(
        service=SERVICE,
        version=release,
        broker=broker,
        checks=checks,
        on_startup=[lag.start],
        on_shutdown=[lag.stop, *on_shutdown],
        description=__doc__ or "",
    )
    app.state.broker = broker
    app.state.campaigns = campaigns
    return app


def main() -> None:
    """Run the campaigns service until stopped (`sada serve campaigns`)."""
    settings = CampaignsSettings()
    logging.configure(SERVICE, level=settings.log_level, json=settings.log_json)
    announce_insecure_transport(settings, service=SERVICE)
    serve(build(settings), host=settings.http_host, port=settings.http_port)
