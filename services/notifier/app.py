"""Wiring of the notifier: settings, directory, mailer, ledger, Kafka and HTTP in one app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial

from fastapi import FastAPI

from services.notifier import handlers
from services.notifier.deferred import DeferredQueue, MongoDeferredQueue
from services.notifier.delivery import Notifier, Schedule
from services.notifier.digest_messages import DigestComposer
from services.notifier.digest_sender import DigestSender, Leases, mongo_leases
from services.notifier.digests import DigestPolicy, policies
from services.notifier.ledger import Ledger, MongoLedger
from services.notifier.mailer import Mailer, SmtpMailerPool
from services.notifier.messages import Composer
from services.notifier.pending import MongoPendingStore, PendingStore
from services.notifier.pruner import Deleter, MongoDeleter, Pruner, mongo_lease
from services.notifier.pruner import Lease as PruneLease
from services.notifier.retrier import Clock, Retrier
from services.notifier.settings import RETRIER_STOP_SECONDS, NotifierSettings
from services.notifier.triage import Triage
from services.notifier.triage import now as triage_clock
from shared import events, logging, mongo, version
from shared.directory import load_channels, load_units
from shared.http import Check, Hook, create_app, serve
from shared.kafka import BatchRunner, Outgoing, make_broker, produce_all
from shared.lag import lag_monitor
from shared.lease import holder_name
from shared.transport import announce_insecure_transport

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


def digest_policy(settings: NotifierSettings) -> DigestPolicy:
    """Return the default digest policy from `settings` (units.yaml may override per unit)."""
    digest = settings.digest
    return DigestPolicy(
        enabled=digest.enabled,
        threshold=digest.threshold,
        rate_seconds=digest.rate_seconds,
        window_seconds=digest.window_seconds,
        campaign_individual=digest.campaign_individual,
        list_limit=digest.list_limit,
        max_items=digest.max_items,
    )


def build(
    settings: NotifierSettings,
    *,
    mailer: Mailer | None = None,
    ledger: Ledger | None = None,
    queue: DeferredQueue | None = None,
    pending: PendingStore | None = None,
    leases: Callable[[str], Leases] | None = None,
    pruning: tuple[Deleter, PruneLease] | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Return the notifier app; tests pass in-memory `mailer`/`ledger`/`queue`/`pending`."""
    composer = composer_for(settings)
    window = settings.retention.window(settings.grouped_topic)
    broker = make_broker(settings.kafka, service=SERVICE)
    checks: dict[str, Check] = {}
    on_shutdown: list[Hook] = []
    if ledger is None or queue is None or pending is None or leases is None:
        client = mongo.make_client(settings.mongo, app_name=SERVICE)
        ledger = ledger or MongoLedger(client, settings.mongo.database)
        queue = queue or MongoDeferredQueue(client, settings.mongo.database)
        if pending is None or leases is None:
            store = MongoPendingStore(client, settings.mongo.database)
            pending = pending or store
            leases = leases or mongo_leases(
                store.leases, ttl=settings.digest.lease_seconds, holder=holder_name()
            )
        if pruning is None:
            pruning = (
                MongoDeleter(client, settings.mongo.database),
                mongo_lease(
                    client,
                    settings.mongo.database,
                    every_seconds=settings.retention.every_seconds,
                    holder=holder_name(),
                ),
            )
        checks["mongo"] = lambda: mongo.ping(client)
        on_shutdown.append(client.close)
    if mailer is None:
        mailer = SmtpMailerPool(settings.smtp)
    release = version.current()
    deferral = settings.deferral
    default_policy = digest_policy(settings)
    triage = Triage(
        store=pending,
        default=default_policy,
        policies=policies(default_policy, composer.units),
        personal=composer.personal_data,
        clock=clock or triage_clock,
    )
    notifier = Notifier(
        composer=composer,
        mailer=mailer,
        ledger=ledger,
        queue=queue,
        producer=events.Producer(service=SERVICE, version=release),
        notifications_topic=settings.notifications_topic,
        ledger_write_seconds=settings.ledger_write_seconds,
        schedule=Schedule(
            park_after_seconds=deferral.park_after_seconds,
            retry_initial_seconds=deferral.retry_initial_seconds,
            retry_max_seconds=deferral.retry_max_seconds,
            give_up_seconds=deferral.give_up_seconds,
        ),
        ledger_flush_every=settings.ledger_flush_every,
        parallel=settings.smtp.connections,
        triage=triage,
    )

    async def publish(outgoing: Sequence[Outgoing]) -> None:
        await produce_all(broker, outgoing)

    retrier = Retrier(
        notifier=notifier,
        queue=queue,
        ledger=ledger,
        publish=publish,
        poll_seconds=deferral.poll_seconds,
        lease_seconds=deferral.lease_seconds,
        publish_seconds=settings.kafka.hold_seconds,
        personal_seconds=window.personal_seconds,
        **({"clock": clock} if clock else {}),
    )
    digests = DigestSender(
        store=pending,
        triage=triage,
        ledger=ledger,
        mailer=mailer,
        composer=DigestComposer.like(composer),
        outcomes=notifier,
        publish=publish,
        lease_for=leases,
        poll_seconds=settings.digest.poll_seconds,
        settle_seconds=settings.digest.settle_seconds,
        lease_seconds=settings.digest.lease_seconds,
        publish_seconds=settings.kafka.hold_seconds,
        personal_seconds=window.personal_seconds,
        **({"clock": clock} if clock else {}),
    )
    pruner = (
        Pruner(
            deleter=pruning[0],
            lease=pruning[1],
            window=window,
            poll_seconds=settings.retention.poll_seconds,
            **({"clock": clock} if clock else {}),
        )
        if pruning
        else None
    )
    # Shutdown order: the retrier and the digest sender end their work while Kafka can still
    # take the outcomes; the broker gives the batch in hand its graceful timeout; ledger writes
    # still in flight are awaited; only then do the mail and database connections close
    # (settings.shutdown_seconds).
    on_shutdown[:0] = [partial(notifier.drain, settings.drain_seconds), mailer.close]
    runner = BatchRunner(
        broker, service=SERVICE, version=release, hold_seconds=settings.kafka.hold_seconds
    )
    handlers.register(broker, settings, notifier, runner)
    lag = lag_monitor(
        settings.kafka,
        service=SERVICE,
        group_id=settings.group_id,
        topics=(settings.grouped_topic,),
    )
    app = create_app(
        service=SERVICE,
        version=release,
        broker=broker,
        checks=checks,
        on_startup=[lag.start],
        after_start=[retrier.start, digests.start, *([pruner.start] if pruner else [])],
        on_stop=[partial(stop_background, retrier, digests, pruner)],
        on_shutdown=[lag.stop, *on_shutdown],
        description=__doc__ or "",
    )
    app.state.broker = broker
    app.state.notifier = notifier
    app.state.retrier = retrier
    app.state.digests = digests
    app.state.pruner = pruner
    return app


async def stop_background(
    retrier: Retrier, digests: DigestSender, pruner: Pruner | None = None
) -> None:
    """Stop the background loops together, within `RETRIER_STOP_SECONDS`.

    The pruner's `delete_many` under way may be cut off: deletion is idempotent, the next
    sweep does the rest.
    """
    loops = [retrier, digests, *([pruner] if pruner else [])]
    await asyncio.gather(*(loop.stop(RETRIER_STOP_SECONDS) for loop in loops))


def main() -> None:
    """Run the notifier until stopped (`sada serve notifier`)."""
    settings = NotifierSettings()
    logging.configure(SERVICE, level=settings.log_level, json=settings.log_json)
    announce_insecure_transport(settings, service=SERVICE)
    serve(build(settings), host=settings.http_host, port=settings.http_port)
