"""Wiring of the archive: broker, subscriber, MongoDB store, audit API and background sweep."""

from __future__ import annotations

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from services.archive import api, handlers
from services.archive.archiver import Archiver
from services.archive.audit import Sweeper
from services.archive.settings import ArchiveSettings
from services.archive.store import ArchiveStore, MongoArchiveStore
from shared import logging, version
from shared.http import create_app, serve
from shared.kafka import make_broker
from shared.lag import lag_monitor
from shared.mongo import make_client
from shared.transport import announce_insecure_transport

SERVICE = handlers.SERVICE
log = logging.get_logger(__name__)

DESCRIPTION = """Read-only audit API over every archived Sada event.

Authenticate with `Authorization: Bearer <token>` (tokens: `SADA_ARCHIVE_API_TOKENS`; local default
`local-dev-token`). Each submission's events form a SHA-256 hash chain; `/verify` recomputes it.
"""


def build(
    settings: ArchiveSettings,
    *,
    store: ArchiveStore | None = None,
    broker: KafkaBroker | None = None,
) -> FastAPI:
    """Return the archive app; `store` and `broker` default to the real ones from settings."""
    broker = broker or make_broker(settings.kafka, service=SERVICE)
    closers = []
    if store is None:
        client = make_client(settings.mongo, app_name=SERVICE)
        store = MongoArchiveStore(
            client, settings.mongo.database, query_indexes=settings.query_indexes
        )
        closers.append(client.close)
    archiver = Archiver(store, settings.topics, cache_size=settings.head_cache_size)
    handlers.register(broker, settings, archiver)
    sweeper = Sweeper(store, settings.verify_interval_seconds)
    lag = lag_monitor(
        settings.kafka, service=SERVICE, group_id=settings.group_id, topics=settings.topics.all()
    )
    ready = store

    async def prepare() -> None:
        # Indexes exist before the API answers; if the database is down, the first batch
        # creates them (and waits for the database like any other write).
        try:
            await ready.ensure_indexes()
        except Exception as exc:
            log.warning("indexes not ensured at start-up", error=type(exc).__name__)

    async def close() -> None:
        for closer in closers:
            await closer()

    app = create_app(
        service=SERVICE,
        version=version.current(),
        broker=broker,
        checks={"mongo": store.ping},
        on_startup=[prepare, sweeper.start, lag.start],
        on_shutdown=[lag.stop, sweeper.stop, close],
        description=DESCRIPTION,
    )
    api.install(app, store, settings)
    return app


def main() -> None:
    """Run the archive service (`sada serve archive`)."""
    settings = ArchiveSettings()
    logging.configure(SERVICE, level=settings.log_level, json=settings.log_json)
    announce_insecure_transport(settings, service=SERVICE)
    serve(build(settings), host=settings.http_host, port=settings.http_port)
