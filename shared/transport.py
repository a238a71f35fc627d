"""The production transport policy, made visible when an operator overrides it.

`ServiceSettings` refuses to start in production over Kafka without SASL_SSL or MongoDB without
TLS and credentials. `SADA_ALLOW_INSECURE_TRANSPORT=true` lets a service on a private network
start anyway; then every start says so in the log (a warning naming each gap) and in the gauge
`sada_insecure_transport`, so the exception stays visible to whoever runs the service.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from shared.logging import get_logger
from shared.settings import INSECURE_OVERRIDE, ServiceSettings

log = get_logger(__name__)


def insecure_transport_gauge(registry: CollectorRegistry = REGISTRY) -> Gauge:
    """Return the gauge that is 1 while a service runs on an insecure connection it was allowed."""
    return Gauge(
        "sada_insecure_transport",
        f"1 when the service runs over an unencrypted or unauthenticated connection that "
        f"{INSECURE_OVERRIDE} allowed.",
        ["service"],
        registry=registry,
    )


INSECURE = insecure_transport_gauge()


def announce_insecure_transport(settings: ServiceSettings, *, service: str) -> list[str]:
    """Log a warning and set the gauge when the override lets insecure connections through.

    Returns the gaps announced (empty when everything is secure or the override is not used).
    """
    gaps = settings.transport_gaps() if settings.allow_insecure_transport else []
    INSECURE.labels(service).set(1 if gaps else 0)
    if gaps:
        log.warning(
            f"INSECURE TRANSPORT allowed by {INSECURE_OVERRIDE}=true: traffic and credentials "
            "can be read or altered on the network; use only on a private network",
            gaps=gaps,
            environment=settings.environment,
        )
    return gaps
