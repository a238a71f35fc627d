"""Wiring of the notifier: settings, directory, mailer, ledger, Kafka and HTTP in one app."""

from __future__ import annotations

from fastapi import FastAPI

from services.notifier import handlers
from services.notifier.delivery import Notifier
from services.notifier.ledger import Ledger, MongoLedger
from services.notifier.mailer import Mailer, SmtpMailerPool
from services.notifier.messages import Composer
from services.notifier.settings import NotifierSettings
from shared import events, logging, mongo, version
from shared.directory import load_channels, load_units
from shared.http import Check, create_app, serve
from shared.kafka import BatchRunner, make_broker
from shared.lag import lag_monitor

SERVICE = "notifier"


def composer_for(settings: NotifierSettings) -> Composer:
    """Return the e-mail composer for `settings` (reads units and channels; fails on bad YAML)."""
    return Composer(
        units=load_units(settings.units_path),
        channels=load_channels(settings.channels_path),
        sender=settings.smtp.sender,
        archive_url=settings.archive_url,
        message_id_domain=settings.message_id_domain,
    )


def build(
    settings: NotifierSettings, *, mailer: Mailer | None = None, ledger: Ledger | None = None
) -> FastAPI:
    """Return the notifier app; tests pass in-memory `mailer`/`ledger` instead of the real ones."""
    composer = composer_for(settings)
    broker = make_broker(settings.kafka, service=SERVICE)
    checks: dict[str, Check] = {}
    on_shutdown = []
    if ledger is None:
        client = mongo.make_client(settings.mongo, app_name=SERVICE)
        ledger = MongoLedger(client, settings.mongo.database)
        checks["mongo"] = lambda: mongo.ping(client)
        on_shutdown.append(client.close)
    if mailer is None:
        mailer = SmtpMailerPool(settings.smtp)
    on_shutdown.insert(0, mailer.close)
    release = version.current()
    notifier = Notifier(
        composer=composer,
        mailer=mailer,
        ledger=ledger,
        producer=events.Producer(service=SERVICE, version=release),
        notifications_topic=settings.notifications_topic,
        hold_seconds=settings.kafka.hold_seconds,
        ledger_flush_every=settings.ledger_flush_every,
        parallel=settings.smtp.connections,
    )
    runner = BatchRunner(
        broker, service=SERVICE, version=release, hold_seconds=settings.kafka.hold_seconds
    )
    handlers.register(broker, settings, notifier, runner)
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
    app.state.notifier = notifier
    return app


def main() -> None:
    """Run the notifier until stopped (`sada serve notifier`)."""
    settings = NotifierSettings()
    logging.configure(SERVICE, level=settings.log_level, json=settings.log_json)
    serve(build(settings), host=settings.http_host, port=settings.http_port)
