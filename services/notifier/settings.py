"""Settings of the notifier (env prefix `SADA_`, nested groups with `__`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator

from services.notifier.retention import DAY_SECONDS, Window, limits, resolve
from shared import topic_spec, topics
from shared.config import ConfigError
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


class DeferralSettings(BaseModel):
    """When a recipient refuses for now (`SADA_DEFERRAL__PARK_AFTER_SECONDS` and friends)."""

    park_after_seconds: float = Field(
        default=180.0,
        gt=0,
        description="Retry budget: a notification its recipient keeps refusing (4xx to RCPT) "
        "this long is announced as `notification.deferred` and retried on the slow schedule.",
    )
    retry_initial_seconds: float = Field(
        default=5.0, gt=0, description="Wait before the first retry of a refused recipient."
    )
    retry_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest wait between retries (the wait doubles from the first one).",
    )
    give_up_seconds: float = Field(
        default=5 * 24 * 3600.0,
        gt=0,
        description="Still refused this long after the first refusal: `notification.failed`.",
    )
    poll_seconds: float = Field(
        default=5.0, gt=0, description="How often each notifier looks for retries that are due."
    )
    lease_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A retry taken by one notifier is not taken by another for this long; "
        "an attempt must finish in half of it (checked against the SMTP and ledger budgets).",
    )


class DigestSettings(BaseModel):
    """Inbox protection (`SADA_DIGEST__THRESHOLD` and friends; a unit may override in units.yaml).

    See docs/digests.md: one e-mail per submission while a mailbox is calm, one digest per
    window under a surge, and campaign copies past the first few counted in the next digest.
    """

    enabled: bool = Field(default=True, description="False: every submission is e-mailed alone.")
    threshold: int = Field(
        default=30,
        ge=1,
        description="More e-mails than this to one mailbox within `RATE_SECONDS`: digest mode.",
    )
    rate_seconds: float = Field(
        default=600.0, gt=0, description="The trailing window the threshold counts over."
    )
    window_seconds: float = Field(
        default=300.0,
        gt=0,
        description="In digest mode, one digest per mailbox per window (clock-aligned).",
    )
    campaign_individual: int = Field(
        default=3,
        ge=1,
        description="Members of a campaign e-mailed one by one; later copies go to the next "
        "digest, at any rate.",
    )
    list_limit: int = Field(
        default=200,
        ge=1,
        description="Past this many submissions a digest lists campaigns and counts and "
        "attaches the full list as CSV.",
    )
    max_items: int = Field(
        default=10_000,
        ge=1,
        le=20_000,
        description="Most submissions in one digest e-mail (keeps it under 10 MB); the rest "
        "go in the next one, sent right after.",
    )
    poll_seconds: float = Field(
        default=1.0, gt=0, description="How often each notifier looks for digests that are due."
    )
    settle_seconds: float = Field(
        default=2.0,
        ge=0,
        description="A window is sent this long after it ends, so writes in flight land in it.",
    )
    lease_seconds: float = Field(
        default=360.0,
        gt=0,
        description="One notifier sends a mailbox's digest at a time; another takes over a "
        "digest left unfinished this long after it was taken (a holder starts sending only "
        "in the first half, which must fit one SMTP exchange).",
    )


class RetentionSettings(BaseModel):
    """How long the notifier keeps bookkeeping and parked personal data (`SADA_RETENTION__*`).

    Derived from the topic spec by default (`services/notifier/retention.py`, docs/retention.md).
    """

    ledger_days: float | None = Field(
        default=None,
        gt=0,
        description="Ledger entries, claims and digest markers older than this are deleted; "
        "unset: derived from the topic spec (accepted + routed + grouped + dead-letter "
        "retention + margin, 52 days with the shipped spec). Shorter than the grouped topic's "
        "retention is refused.",
    )
    personal_days: float | None = Field(
        default=None,
        gt=0,
        description="A notification still undelivered (parked, or waiting for a digest) this "
        "long after its submission was received is given up (`notification.failed`) and its "
        "personal data deleted; unset: the raw topic's retention minus the margin (6 days). "
        "Longer than the raw topic's retention is refused.",
    )
    margin_days: float = Field(
        default=1.0, ge=0, description="Margin for clock skew and a late sweep, in days."
    )
    every_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="One replica prunes once per this interval (cluster-wide lease).",
    )
    poll_seconds: float = Field(
        default=600.0, gt=0, description="How often each notifier asks for the pruning lease."
    )
    topics_path: Path = Field(
        default=topic_spec.SPEC_PATH, description="The topic spec the defaults derive from."
    )

    def window(self, consumed: str) -> Window:
        """Return the resolved window for a notifier consuming `consumed` (reads the spec)."""
        try:
            spec = topic_spec.load(self.topics_path)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        found = limits(spec, consumed, self.margin_days * DAY_SECONDS)
        return resolve(
            found,
            ledger_days=self.ledger_days,
            personal_days=self.personal_days,
            margin_days=self.margin_days,
        )


class NotifierMongoSettings(MongoSettings):
    """The notifier's own database: the ledger lives apart from every other service's data."""

    # A subclass, not `MongoSettings(database=...)`: setting SADA_MONGO__URI alone must not
    # reset the database name to the base class's default.
    database: str = "sada_notifier"


class NotifierSettings(ServiceSettings):
    """Everything the notifier needs; defaults work with `make run` on one machine."""

    http_port: int = 8003
    group_id: str = Field(default="sada-notifier", description="Kafka consumer group.")
    grouped_topic: str = Field(
        default=topics.GROUPED,
        description="Consumed: routed submissions with their campaign (`submission.grouped`).",
    )
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
    ledger_write_seconds: float = Field(
        default=90.0,
        gt=0,
        description="How long the ledger write of e-mails already sent is retried while MongoDB "
        "is away; must fit, with the batch's hold, within the consumer's max.poll.interval.",
    )
    drain_seconds: float = Field(
        default=10.0,
        gt=0,
        description="At shutdown, how long ledger writes still in flight are awaited before "
        "the database connection closes.",
    )
    smtp: SmtpSettings = SmtpSettings()
    deferral: DeferralSettings = DeferralSettings()
    digest: DigestSettings = DigestSettings()
    retention: RetentionSettings = RetentionSettings()
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

    @model_validator(mode="after")
    def _retention_fits(self) -> NotifierSettings:
        self.retention.window(self.grouped_topic)  # raises ValueError naming the setting
        return self

    @model_validator(mode="after")
    def _budgets_fit(self) -> NotifierSettings:
        for problem in budget_problems(self):
            raise ValueError(problem)
        return self


SMTP_COMMANDS_PER_EMAIL = 6
"""Connect, EHLO, MAIL, RCPT, DATA and the message: each may take up to `SMTP__TIMEOUT`."""
BATCH_MARGIN_SECONDS = 60.0
"""What a batch needs besides its hold and its last ledger write: sending, producing, committing."""
SHUTDOWN_CLOSE_SECONDS = 5.0
"""Saying QUIT to the mail server and closing the Kafka and MongoDB clients at shutdown."""
RETRIER_STOP_SECONDS = 10.0
"""At shutdown, how long the retry or the digest under way (an e-mail and its ledger write) may
finish; the retrier and the digest sender stop together."""


def shutdown_seconds(settings: NotifierSettings) -> float:
    """Return the longest a notifier takes to stop once signalled.

    The platform's grace period (k8s terminationGracePeriodSeconds, compose stop_grace_period)
    must be longer.

    In order: the retrier's attempt under way, the batch in hand (the broker's graceful
    timeout), the ledger writes still in flight, closing the connections.
    """
    return (
        RETRIER_STOP_SECONDS
        + settings.kafka.graceful_seconds
        + settings.drain_seconds
        + SHUTDOWN_CLOSE_SECONDS
    )


def attempt_seconds(settings: NotifierSettings) -> float:
    """Return the longest one delivery attempt takes: its SMTP exchange and its ledger write."""
    return SMTP_COMMANDS_PER_EMAIL * settings.smtp.timeout + settings.ledger_write_seconds


def budget_problems(settings: NotifierSettings) -> list[str]:
    """Return every way the time budgets contradict each other (empty when consistent).

    - A batch (its hold, then a last attempt whose ledger write may retry) must end before the
      consumer's max.poll.interval, or the group hands the partition to another member while
      e-mails it sent are still unrecorded: that member would send them again.
    - A retry's owner must finish within half its lease, so no other notifier takes it over
      while it is still sending.
    """
    kafka, deferral = settings.kafka, settings.deferral
    problems = []
    batch = kafka.hold_seconds + settings.ledger_write_seconds + BATCH_MARGIN_SECONDS
    if batch > kafka.max_poll_interval_seconds:
        problems.append(
            f"SADA_KAFKA__HOLD_SECONDS + SADA_LEDGER_WRITE_SECONDS + {BATCH_MARGIN_SECONDS:.0f} s "
            f"= {batch:.0f} s exceeds max.poll.interval ({kafka.max_poll_interval_seconds:.0f} s)"
        )
    if attempt_seconds(settings) > deferral.lease_seconds / 2:
        problems.append(
            f"SADA_DEFERRAL__LEASE_SECONDS ({deferral.lease_seconds:.0f}) must be at least twice "
            f"one attempt ({SMTP_COMMANDS_PER_EMAIL} x SADA_SMTP__TIMEOUT + "
            f"SADA_LEDGER_WRITE_SECONDS = {attempt_seconds(settings):.0f} s)"
        )
    exchange = SMTP_COMMANDS_PER_EMAIL * settings.smtp.timeout
    if settings.digest.lease_seconds / 2 < exchange:
        problems.append(
            f"SADA_DIGEST__LEASE_SECONDS ({settings.digest.lease_seconds:.0f}) must be at least "
            f"twice one SMTP exchange ({SMTP_COMMANDS_PER_EMAIL} x SADA_SMTP__TIMEOUT = "
            f"{exchange:.0f} s), so no notifier takes a digest over while it is being sent"
        )
    if deferral.retry_max_seconds < deferral.retry_initial_seconds:
        problems.append("SADA_DEFERRAL__RETRY_MAX_SECONDS is shorter than the initial wait")
    return problems
