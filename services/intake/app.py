"""Wires intake: the Kafka door, the HTTP door, `/health`, `/metrics` and `/docs` in one app."""

from __future__ import annotations

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from services.intake import api, apikeys, handlers, ratelimit
from services.intake.metrics import HttpMetrics
from services.intake.outcomes import Destinations
from services.intake.settings import IntakeSettings
from shared import logging, version
from shared.consultations import load_consultations
from shared.directory import load_channels
from shared.events import Producer
from shared.http import create_app, serve
from shared.kafka import BatchRunner, make_broker
from shared.lag import lag_monitor
from shared.transport import announce_insecure_transport

SERVICE = "intake"


def build(settings: IntakeSettings, *, broker: KafkaBroker | None = None) -> FastAPI:
    """Return intake's app; raise on invalid configuration (channels, consultations, keys, rate)."""
    channels = frozenset(load_channels(settings.channels_file))
    consultations = load_consultations(settings.consultations_path)
    keys = apikeys.load(settings, channels)
    rate = ratelimit.replica_budget(settings.rate_limit, settings.replicas)
    broker = broker or make_broker(settings.kafka, service=SERVICE)
    release = version.current()
    producer = Producer(service=SERVICE, version=release)
    runner = BatchRunner(
        broker, service=SERVICE, version=release, hold_seconds=settings.kafka.hold_seconds
    )
    handlers.register(
        broker,
        settings=settings,
        runner=runner,
        channels=channels,
        consultations=consultations,
        producer=producer,
    )

    lag = lag_monitor(
        settings.kafka,
        service=SERVICE,
        group_id=settings.group_id,
        topics=(settings.submissions_topic,),
    )
    app = create_app(
        service=SERVICE,
        version=release,
        broker=broker,
        on_startup=[lag.start],
        on_shutdown=[lag.stop],
        description=(__doc__ or "") + "\n\nSee `POST /v1/submissions`.",
    )
    app.include_router(
        api.router(
            broker=broker,
            keys=keys,
            limiter=MovingWindowRateLimiter(MemoryStorage()),
            rate=rate,
            channels=channels,
            consultations=consultations,
            producer=producer,
            to=Destinations(accepted=settings.accepted_topic, rejected=settings.rejected_topic),
            publish_timeout=settings.publish_timeout,
        )
    )
    api.document_request_body(app)
    app.add_middleware(HttpMetrics)
    app.state.broker = broker
    return app


def main() -> None:
    """Run intake until stopped (`sada serve intake`)."""
    settings = IntakeSettings()
    logging.configure(SERVICE, level=settings.log_level, json=settings.log_json)
    announce_insecure_transport(settings, service=SERVICE)
    serve(build(settings), host=settings.http_host, port=settings.http_port)
