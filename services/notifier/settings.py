"""Settings of the notifier (env prefix `SADA_`, nested groups with `__`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator

from shared import topics
from shared.directory import CONFIG_DIR
from shared.settings import MongoSettings, ServiceSettings, refuse_default_secret


class SmtpSettings(BaseModel):
    """How to reach the ministry's mail server (`SADA_SMTP__HOST` and friends)."""

    host: str = Field(default="127.0.0.1", description="Mail server host.")
    port: int = Field(default=1025, ge=1, le=65535, description="Mail server port.")
    starttls: bool = Field(default=False, description="Upgrade with STARTTLS after connecting.")
    use_tls: bool = Field(default=False, description="Implicit TLS from the first byte (465).")
    validate_certs: bool = Field(default=True, description="Check the server's certificate.")
    cert_bundle: Path | None = Field(default=None, description="CA bundle for TLS, if private.")
    username: str | None = Field(default=None, description="AUTH user; none means no AUTH.")
    password: SecretStr | None = Field(default=None, description="AUTH password.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds per SMTP command.")
    sender: str = Field(
        default="Sada <sada-notifier@moj.gov.sa>", description="From header and envelope sender."
    )
    local_hostname: str | None = Field(
        default=None, description="Name sent in EHLO; default: this host's FQDN."
    )
    connections: int = Field(
        default=4,
        ge=1,
        le=32,
        description="SMTP sessions kept open; a batch's e-mails go out over them in parallel.",
    )
    idle_check_seconds: float = Field(
        default=30.0,
        ge=0,
        description="A connection idle this long is checked with NOOP before it is reused.",
    )

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpSettings:
        if self.starttls and self.use_tls:
            msg = "SADA_SMTP__STARTTLS and SADA_SMTP__USE_TLS are exclusive: choose one"
            raise ValueError(msg)
        if self.username and self.password is None:
            msg = "SADA_SMTP__PASSWORD is required when SADA_SMTP__USERNAME is set"
            raise ValueError(msg)
        return self


class NotifierMongoSettings(MongoSettings):
    """The notifier's own database: the ledger lives apart from every other service's data."""

    # A subclass, not `MongoSettings(database=...)`: setting SADA_MONGO__URI alone must not
    # reset the database name to the base class's default.
    database: str = "sada_notifier"


class NotifierSettings(ServiceSettings):
    """Everything the notifier needs; defaults work with `make run` on one machine."""

    http_port: int = 8003
    group_id: str = Field(default="sada-notifier", description="Kafka consumer group.")
    routed_topic: str = Field(default=topics.ROUTED, description="Where routed events come from.")
    notifications_topic: str = Field(
        default=topics.NOTIFICATIONS, description="Where notification events go."
    )
    mongo: NotifierMongoSettings = NotifierMongoSettings()
    ledger_flush_every: int = Field(
        default=50,
        ge=1,
        le=500,
        description="E-mails recorded in the ledger per bulk write: also the most a crash "
        "between sending and recording can repeat (with the same Message-ID).",
    )
    smtp: SmtpSettings = SmtpSettings()
    units_path: Path = Field(
        default=CONFIG_DIR / "units.yaml", description="Units file (names, personal_data)."
    )
    channels_path: Path = Field(
        default=CONFIG_DIR / "channels.yaml", description="Channels file (display names)."
    )
    archive_url: str = Field(
        default="http://127.0.0.1:8004/v1/submissions/",
        description="Base of the archive link a unit without personal data receives.",
    )
    message_id_domain: str = Field(
        default="sada.notifier",
        pattern=r"^[A-Za-z0-9.-]+$",
        description="Right-hand side of every Message-ID.",
    )

    @model_validator(mode="after")
    def _real_smtp_password_outside_local(self) -> NotifierSettings:
        if self.smtp.username:
            refuse_default_secret(self, "SADA_SMTP__PASSWORD", self.smtp.password)
        return self
