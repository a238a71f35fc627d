"""Settings shared by every service (pydantic-settings, env prefix `SADA_`).

Settings objects are built in each service's `app.py`, never at import time, so tests and the
CLI can build their own. Nested groups read `SADA_KAFKA__BOOTSTRAP_SERVERS` and the like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "local-dev-token"})
INSECURE_OVERRIDE = "SADA_ALLOW_INSECURE_TRANSPORT"
"""The variable that lets production run over unencrypted or unauthenticated connections."""
# Mechanisms that authenticate without a user name in the URI (client certificate, cloud roles).
_URI_FREE_AUTH = frozenset({"MONGODB-X509", "MONGODB-AWS", "MONGODB-OIDC"})
_TLS_UNVERIFIED = ("tlsinsecure", "tlsallowinvalidcertificates", "tlsallowinvalidhostnames")


class KafkaSettings(BaseModel):
    """How to reach Kafka. Plaintext locally; SASL_SSL with SCRAM-SHA-512 in production."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port]")
    security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="PLAINTEXT locally; SASL_SSL (SCRAM-SHA-512) in production.",
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512",
        description="SASL mechanism under SASL_SSL: SCRAM-SHA-512 (MSK, Strimzi, self-managed); "
        "PLAIN for API keys (Confluent Cloud), always inside TLS.",
    )
    sasl_username: str | None = Field(default=None, description="SASL user for SASL_SSL.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle for SASL_SSL.")
    linger_ms: int = Field(default=5, ge=0, description="Producer batching delay.")
    max_batch_size: int = Field(
        default=1024 * 1024, ge=16 * 1024, description="Producer batch buffer (bytes)."
    )
    max_records: int = Field(default=500, ge=1, description="Records per consumed batch.")
    batch_timeout_ms: int = Field(default=100, ge=1, description="Wait for a batch to fill.")
    hold_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a batch retries a transient failure before it is fetched again.",
    )
    lag_interval_seconds: float = Field(
        default=15.0,
        ge=0,
        description="Consumer lag is measured from the broker (committed vs end offsets) "
        "every N seconds, so a stuck consumer's lag grows (0 = never).",
    )
    graceful_seconds: float = Field(
        default=20.0,
        gt=0,
        description="How long a stopping service waits for the batch in hand before cancelling "
        "it; the platform's grace period (terminationGracePeriodSeconds) must exceed it.",
    )

    @property
    def max_poll_interval_seconds(self) -> float:
        """The consumer's max.poll.interval: the longest one batch may take.

        Past it the group evicts the member; a held batch rewinds well before (every hold is
        shorter).
        """
        return max(300.0, self.hold_seconds * 3)


class MongoSettings(BaseModel):
    """How to reach MongoDB (FerretDB locally). Credentials and TLS go in the URI."""

    uri: SecretStr = Field(
        default=SecretStr("mongodb://127.0.0.1:27017/"),
        description="Connection URI (secret): hosts, credentials, TLS and replica set options.",
    )
    database: str = Field(default="sada", description="The service's own database.")
    timeout_ms: int = Field(default=5000, ge=100, description="Server selection/socket timeout.")

    def transport_gaps(self) -> list[str]:
        """Return what the URI lacks for production: TLS and credentials (empty when neither)."""
        return mongo_uri_gaps(self.uri.get_secret_value())


def mongo_uri_gaps(uri: str) -> list[str]:
    """Return what a MongoDB connection string lacks for production: TLS, credentials, or both.

    TLS: `tls=true` (or `ssl=true`), or a `mongodb+srv://` URI, where TLS is on unless turned
    off. Credentials: a user in the URI, or a mechanism that needs none there (X.509 client
    certificate, AWS or OIDC identity). Parsed without DNS, so an SRV URI is judged offline.
    """
    scheme, _, rest = uri.partition("://")
    authority, query = rest, ""
    for separator in "/?":
        if separator in authority:
            authority, _, tail = authority.partition(separator)
            query = tail.partition("?")[2] if separator == "/" else tail
            break
    options = {key.lower(): value.lower() for key, value in parse_qsl(query)}
    tls = options.get("tls", options.get("ssl"))
    gaps = []
    if not (tls == "true" or (scheme == "mongodb+srv" and tls != "false")):
        gaps.append("MongoDB without TLS (SADA_MONGO__URI needs tls=true)")
    elif any(options.get(key) == "true" for key in _TLS_UNVERIFIED):
        gaps.append("MongoDB TLS without certificate verification (tlsInsecure and the like)")
    user = authority.rpartition("@")[0] if "@" in authority else ""
    if not user and options.get("authmechanism", "").upper() not in _URI_FREE_AUTH:
        gaps.append("MongoDB without credentials (SADA_MONGO__URI has no user)")
    return gaps


class ServiceSettings(BaseSettings):
    """Base of every service's settings."""

    model_config = SettingsConfigDict(
        env_prefix="SADA_",
        env_nested_delimiter="__",
        env_file=None,
        extra="ignore",
        secrets_dir=None,
    )

    environment: Literal["local", "test", "production"] = Field(
        default="local",
        description="Outside `local`, start-up refuses missing or obviously default secrets.",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=8000, description="Port of /health, /metrics and any API.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool | None = Field(default=None, description="JSON logs; default: when not a TTY.")
    kafka: KafkaSettings = KafkaSettings()
    allow_insecure_transport: bool = Field(
        default=False,
        description="Production refuses Kafka without SASL_SSL and MongoDB without TLS and "
        "credentials; true lets it start anyway (a private network only), logged as a warning "
        "at every start.",
    )

    def transport_gaps(self) -> list[str]:
        """Return every connection that is not encrypted and authenticated (empty: all are)."""
        gaps = []
        if self.kafka.security_protocol != "SASL_SSL":
            gaps.append(
                f"Kafka over {self.kafka.security_protocol} "
                "(SADA_KAFKA__SECURITY_PROTOCOL needs SASL_SSL)"
            )
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, MongoSettings):
                gaps.extend(value.transport_gaps())
        return gaps

    @model_validator(mode="after")
    def _secure_transport_in_production(self) -> ServiceSettings:
        if self.environment != "production" or self.allow_insecure_transport:
            return self
        gaps = self.transport_gaps()
        if gaps:
            msg = (
                f"production refuses insecure transport: {'; '.join(gaps)}. Secure them, or set "
                f"{INSECURE_OVERRIDE}=true to accept this on a private network (logged at every "
                "start)"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _kafka_credentials_outside_local(self) -> ServiceSettings:
        kafka = self.kafka
        if kafka.security_protocol == "SASL_SSL" and not (
            kafka.sasl_username and kafka.sasl_password
        ):
            msg = (
                "SADA_KAFKA__SASL_USERNAME and SADA_KAFKA__SASL_PASSWORD are required for SASL_SSL"
            )
            raise ValueError(msg)
        return self


def refuse_default_secret(settings: ServiceSettings, name: str, value: SecretStr | None) -> None:
    """Stop start-up when a secret is missing or an obvious default outside local mode."""
    if settings.environment == "local":
        return
    if value is None or value.get_secret_value().strip().lower() in DEFAULT_SECRETS:
        msg = f"{name} is unset or an obvious default; set a real secret outside local mode"
        raise ValueError(msg)
