"""Wiring of the archive: broker, subscriber, MongoDB store, audit API and background sweep."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from services.archive import api, checkpoints, clients, handlers, privacy
from services.archive.access import AccessLog, writer_id
from services.archive.archiver import Archiver
from services.archive.audit import Sweeper
from services.archive.partition_log import Checkpointer, MongoLogStore, PartitionLog
from services.archive.privacy import KeyVault, PrivacyTasks
from services.archive.settings import ArchiveSettings
from services.archive.store import ArchiveStore, MongoArchiveStore
from shared import logging, version
from shared.events import Producer
from shared.http import create_app, serve
from shared.kafka import make_broker
from shared.lag import lag_monitor
from shared.lease import LEASES, SWEEP_LEASE, Lease, MongoLease, holder_name
from shared.mongo import make_client
from shared.transport import announce_insecure_transport

SERVICE = handlers.SERVICE
log = logging.get_logger(__name__)

DESCRIPTION = """Read-only audit API over every archived Sada event.

Authenticate with `Authorization: Bearer <token>`: each token is a named client with scopes
(`SADA_API_CLIENTS`; plain `SADA_ARCHIVE_API_TOKENS` are read-only clients; local default
`local-dev-token`, read only). Personal data is served only
to clients with the `personal_data` scope; every read is archived as an `archive.accessed`
event. Each submission's events form a SHA-256 hash chain; `/verify` recomputes it.
"""


def build(
    settings: ArchiveSettings,
    *,
    store: ArchiveStore | None = None,
    broker: KafkaBroker | None = None,
) -> FastAPI:
    """Return the archive app; `store` and `broker` default to the real ones from settings.

    Raises ValueError when no API client is configured outside local mode, or one is a default,
    or when checkpoints are on without a signing key outside local mode, or the privacy master
    key is missing or the development one there.
    """
    api_clients = clients.load(settings)
    if (refusal := settings.audit_log.refusal(settings.environment)) is not None:
        raise ValueError(refusal)
    broker = broker or make_broker(settings.kafka, service=SERVICE)
    closers = []
    lease: Lease | None = None  # an injected store (tests) sweeps on its own
    partition_log: PartitionLog | None = None  # ...and keeps no partition log
    keys: KeyVault | None = None  # ...and keeps events as received
    tasks: list[PrivacyTasks] = []
    if store is None:
        client = make_client(settings.mongo, app_name=SERVICE)
        keys = privacy.vault(
            client,
            settings.mongo.database,
            privacy.keyring_from(settings.master_key()),
            settings.privacy.key_cache_size,
        )
        retention_lease = MongoLease(
            client[settings.mongo.database][LEASES],
            privacy.RETENTION_LEASE,
            ttl=max(settings.privacy.interval_seconds, 60.0),
            holder=holder_name(),
        )
        tasks.append(
            PrivacyTasks(
                keys,
                retention_days=settings.privacy.retention_days,
                interval=settings.privacy.interval_seconds,
                lease=retention_lease,
                producer=Producer(service=SERVICE, version=version.current()),
            )
        )
        store = MongoArchiveStore(
            client, settings.mongo.database, query_indexes=settings.query_indexes
        )
        lease = MongoLease(
            client[settings.mongo.database][LEASES],
            SWEEP_LEASE,
            ttl=settings.verify_interval_seconds,
            holder=holder_name(),
        )
        partition_log = PartitionLog(MongoLogStore(client, settings.mongo.database))
        closers.append(client.close)
    archiver = Archiver(
        store,
        settings.topics,
        cache_size=settings.head_cache_size,
        partition_log=partition_log,
        keys=keys,
    )
    checkpointer = _checkpointer(settings, partition_log)
    handlers.register(broker, settings, archiver)
    # One replica per interval sweeps the whole archive: the others ask the lease and stand down.
    sweeper = Sweeper(
        store,
        settings.verify_interval_seconds,
        lease=lease,
        timeout=settings.verify_timeout_seconds,
    )
    lag = lag_monitor(
        settings.kafka, service=SERVICE, group_id=settings.group_id, topics=settings.topics.all()
    )
    accesses = AccessLog(
        store,
        producer=Producer(service=SERVICE, version=version.current()),
        queue_size=settings.access_queue_size,
        batch_size=settings.access_batch_size,
        timeout=settings.access_timeout_seconds,
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
        on_startup=[
            prepare,
            accesses.start,
            sweeper.start,
            lag.start,
            *checkpointer[:1],
            *(t.start for t in tasks),
        ],
        on_shutdown=[
            accesses.stop,
            lag.stop,
            sweeper.stop,
            *checkpointer[1:],
            *(t.stop for t in tasks),
            close,
        ],
        description=DESCRIPTION,
    )
    api.install(app, store, settings, clients=api_clients, accesses=accesses, keys=keys)
    return app


def _checkpointer(settings: ArchiveSettings, partition_log: PartitionLog | None) -> list[Any]:
    """Return [start, stop] of the checkpointer, or [] when checkpoints are off.

    Settings validation has already refused a missing key outside local mode.
    """
    audit_log = settings.audit_log
    if partition_log is None:
        return []
    if not audit_log.checkpoints:
        log.warning(
            "LOG CHECKPOINTS DISABLED: deleting or truncating archived events goes undetected",
            setting="SADA_AUDIT_LOG__CHECKPOINTS",
        )
        return []
    if audit_log.signing_key_file is None or audit_log.checkpoint_dir is None:
        log.warning("no checkpoint signing key (local mode): partition logs are not checkpointed")
        return []
    checkpointer = Checkpointer(
        partition_log,
        checkpoints.load_signing_key(audit_log.signing_key_file),
        checkpoints.Witness(audit_log.checkpoint_dir, writer_id()),
        audit_log.checkpoint_seconds,
    )
    return [checkpointer.start, checkpointer.stop]


def main() -> None:
    """Run the archive service (`sada serve archive`)."""
    settings = ArchiveSettings()
    logging.configure(SERVICE, level=settings.log_level, json=settings.log_json)
    announce_insecure_transport(settings, service=SERVICE)
    serve(build(settings), host=settings.http_host, port=settings.http_port)
