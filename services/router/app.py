"""The router process: Kafka consumer and producer, `/health`, `/metrics` and `/v1/rules`."""

from __future__ import annotations

import sys

from fastapi import FastAPI
from prometheus_client import Info

from services.router import config as rules_config
from services.router import handlers
from services.router.routing import SERVICE
from services.router.rules import RoutingConfig
from services.router.settings import RouterSettings
from shared import events, logging, version
from shared.config import ConfigError
from shared.http import create_app, serve
from shared.kafka import BatchRunner, make_broker
from shared.lag import lag_monitor
from shared.transport import announce_insecure_transport

RULES_INFO = Info("sada_routing_rules", "The rule file in force: its path, version and size.")
log = logging.get_logger(__name__)


def build(settings: RouterSettings, *, config: RoutingConfig | None = None) -> FastAPI:
    """Return the router app; loads the rules from settings unless `config` is given.

    Raises `ConfigError` (file, line, problem) on an invalid rule, unit or channel file, so
    the service never starts with rules its operator did not mean.
    """
    routing = config or rules_config.load(
        settings.rules_path, units_path=settings.units_path, channels_path=settings.channels_path
    )
    release = version.current()
    broker = make_broker(settings.kafka, service=SERVICE)
    runner = BatchRunner(
        broker, service=SERVICE, version=release, hold_seconds=settings.kafka.hold_seconds
    )
    producer = events.Producer(service=SERVICE, version=release)
    handlers.register(broker, settings=settings, config=routing, runner=runner, producer=producer)
    RULES_INFO.info(
        {"path": str(routing.path), "version": routing.version, "rules": str(len(routing.rules))}
    )
    lag = lag_monitor(
        settings.kafka,
        service=SERVICE,
        group_id=settings.group_id,
        topics=(settings.accepted_topic,),
    )
    app = create_app(
        service=SERVICE,
        version=release,
        broker=broker,
        on_startup=[lag.start],
        on_shutdown=[lag.stop],
        description=__doc__ or "",
    )
    app.state.broker = broker
    app.state.routing = routing

    @app.get("/v1/rules", tags=["routing"], summary="The rules in force and their version")
    async def rules_in_force() -> dict[str, object]:
        return {
            "rules_version": routing.version,
            "path": str(routing.path),
            "rules": [{"id": rule.id, "unit": rule.unit.id} for rule in routing.rules],
        }

    return app


def main() -> None:
    """Run the router until stopped; exit 2 with `file:line: problem` on invalid config."""
    settings = RouterSettings()
    logging.configure(SERVICE, level=settings.log_level, json=settings.log_json)
    announce_insecure_transport(settings, service=SERVICE)
    try:
        app = build(settings)
    except ConfigError as exc:
        log.error("invalid configuration; not starting", file=exc.path, line=exc.line)
        sys.stderr.write(f"sada router: invalid configuration: {exc}\n")
        raise SystemExit(2) from None
    routing: RoutingConfig = app.state.routing
    log.info("rules loaded", rules_version=routing.version, rules=len(routing.rules))
    serve(app, host=settings.http_host, port=settings.http_port)
