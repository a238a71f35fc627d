"""Production refuses unencrypted or unauthenticated Kafka and MongoDB unless explicitly allowed."""

from __future__ import annotations

import ssl

import pytest
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from services.archive.settings import ArchiveSettings
from services.notifier.settings import NotifierSettings
from services.router.settings import RouterSettings
from shared import transport
from shared.kafka import broker_security
from shared.settings import KafkaSettings, mongo_uri_gaps

SASL = KafkaSettings(
    bootstrap_servers="kafka:9093",
    security_protocol="SASL_SSL",
    sasl_username="sada",
    sasl_password=SecretStr("scram-password"),
)
SECURE_MONGO = {"uri": "mongodb://sada:pw@db:27017/?tls=true"}


@pytest.mark.parametrize(
    ("uri", "gaps"),
    [
        ("mongodb://127.0.0.1:27017/", ["TLS", "credentials"]),
        ("mongodb://u:p@db/?replicaSet=rs0", ["TLS"]),
        ("mongodb://db/?tls=true", ["credentials"]),
        ("mongodb://db?ssl=true&authMechanism=MONGODB-X509", []),
        ("mongodb://u:p@db/sada?tls=true&replicaSet=rs0", []),
        ("mongodb+srv://u:p@cluster0.example.net/sada", []),
        ("mongodb+srv://u:p@cluster0.example.net/?tls=false", ["TLS"]),
        ("mongodb://u:p@db/?tls=true&tlsInsecure=true", ["verification"]),
        ("mongodb://db/?authMechanism=MONGODB-AWS&tls=true", []),
    ],
)
def test_mongo_uri_gaps(uri: str, gaps: list[str]) -> None:
    found = mongo_uri_gaps(uri)
    assert len(found) == len(gaps)
    for gap, word in zip(found, gaps, strict=True):
        assert word in gap


def test_production_refuses_plaintext_kafka_and_names_the_override() -> None:
    with pytest.raises(ValidationError) as refused:
        RouterSettings(environment="production")
    message = str(refused.value)
    assert "Kafka over PLAINTEXT" in message
    assert "SADA_ALLOW_INSECURE_TRANSPORT=true" in message


def test_production_refuses_a_mongo_without_tls_or_credentials_even_over_sasl() -> None:
    with pytest.raises(ValidationError, match=r"MongoDB without TLS.*MongoDB without credentials"):
        ArchiveSettings(environment="production", kafka=SASL, api_tokens=("a-real-token",))


def test_production_starts_when_every_connection_is_secure() -> None:
    settings = NotifierSettings(environment="production", kafka=SASL, mongo=SECURE_MONGO)
    assert settings.transport_gaps() == []


@pytest.mark.parametrize("environment", ["local", "test"])
def test_outside_production_plaintext_is_accepted(environment: str) -> None:
    settings = NotifierSettings(environment=environment)
    assert len(settings.transport_gaps()) == 3  # Kafka, Mongo TLS, Mongo credentials


def test_the_override_starts_and_is_announced_with_every_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SADA_ENVIRONMENT", "production")
    monkeypatch.setenv("SADA_ALLOW_INSECURE_TRANSPORT", "true")
    settings = NotifierSettings()
    gauge = transport.insecure_transport_gauge(CollectorRegistry())
    monkeypatch.setattr(transport, "INSECURE", gauge)
    with capture_logs() as logs:
        gaps = transport.announce_insecure_transport(settings, service="notifier")
    assert len(gaps) == 3
    [warning] = logs
    assert warning["log_level"] == "warning"
    assert "SADA_ALLOW_INSECURE_TRANSPORT" in warning["event"]
    assert warning["gaps"] == gaps
    assert gauge.labels("notifier")._value.get() == 1


def test_no_announcement_when_secure_or_not_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    gauge = transport.insecure_transport_gauge(CollectorRegistry())
    monkeypatch.setattr(transport, "INSECURE", gauge)
    secure = NotifierSettings(environment="production", kafka=SASL, mongo=SECURE_MONGO)
    with capture_logs() as logs:
        assert transport.announce_insecure_transport(secure, service="notifier") == []
        assert transport.announce_insecure_transport(NotifierSettings(), service="notifier") == []
    assert logs == []
    assert gauge.labels("notifier")._value.get() == 0


@pytest.mark.parametrize(
    ("mechanism", "kind"),
    [("SCRAM-SHA-512", SASLScram512), ("SCRAM-SHA-256", SASLScram256), ("PLAIN", SASLPlaintext)],
)
def test_the_broker_speaks_the_configured_sasl_mechanism_inside_verified_tls(
    mechanism: str, kind: type[BaseSecurity]
) -> None:
    settings = SASL.model_copy(update={"sasl_mechanism": mechanism})
    security = broker_security(settings)
    assert isinstance(security, kind)
    context = security.ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert broker_security(KafkaSettings()) is None
