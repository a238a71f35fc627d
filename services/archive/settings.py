"""Settings of the archive service (env prefix `SADA_`, nested groups with `__`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.archive.clients import ApiClientConfig
from services.archive.store import QueryIndexes
from shared import topics
from shared.consultations import CONSULTATIONS_PATH
from shared.settings import MongoSettings, ServiceSettings, refuse_default_secret


class ArchiveTopics(BaseModel):
    """The topics the archive reads; overridable so tests use their own."""

    submissions: str = Field(default=topics.SUBMISSIONS, description="Raw receipts (strings).")
    accepted: str = Field(default=topics.ACCEPTED, description="submission.accepted events.")
    rejected: str = Field(default=topics.REJECTED, description="submission.rejected events.")
    routed: str = Field(default=topics.ROUTED, description="submission.routed events.")
    grouped: str = Field(
        default=topics.GROUPED,
        description="submission.grouped events (campaign membership; the `campaigns` projection).",
    )
    notifications: str = Field(
        default=topics.NOTIFICATIONS, description="notification.sent / .failed events."
    )
    deadletter: str = Field(default=topics.DEADLETTER, description="message.deadlettered events.")

    def all(self) -> tuple[str, ...]:
        """Return every topic, raw receipts first."""
        return (
            self.submissions,
            self.accepted,
            self.rejected,
            self.routed,
            self.grouped,
            self.notifications,
            self.deadletter,
        )


class ArchiveMongoSettings(MongoSettings):
    """MongoDB settings whose database defaults to the archive's own, whichever env is set.

    (A nested group built from `SADA_MONGO__URI` alone would otherwise take `MongoSettings`'
    default database, not this service's.)
    """

    database: str = "sada_archive"


class AuditLogSettings(BaseModel):
    """The partition logs' signed checkpoints (docs/audit.md, "Log-wide tamper evidence")."""

    checkpoints: bool = Field(
        default=True,
        description="Sign checkpoints of the partition logs; `false` disables them (start-up "
        "then warns loudly: deletions and truncation go undetected).",
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM, `sada audit keygen`) that signs checkpoints; "
        "keep it out of the database's reach (a Secret). Required outside local mode while "
        "checkpoints are on.",
    )
    verify_key_file: Path | None = Field(
        default=None,
        description="Ed25519 public key (PEM) `sada audit verify --checkpoints` checks with by "
        "default (else `<checkpoint dir>/verify.pem`).",
    )
    checkpoint_dir: Path | None = Field(
        default=None,
        description="The witness directory: checkpoints go to `<dir>/<UTC date>/<writer>.jsonl`; "
        "required with a signing key.",
    )
    checkpoint_seconds: float = Field(
        default=60.0, gt=0, description="Seconds between checkpoints (and one at shutdown)."
    )

    def refusal(self, environment: str) -> str | None:
        """Return why the archive service must not start with these settings, if it must not.

        Checked when the service is built, not when settings load: `sada audit` commands read
        the same settings and an auditor holds no signing key.
        """
        if not self.checkpoints:
            return None
        if self.signing_key_file is not None and self.checkpoint_dir is None:
            return "SADA_AUDIT_LOG__CHECKPOINT_DIR is unset: signed checkpoints need a witness"
        if self.signing_key_file is None and environment != "local":
            return (
                "SADA_AUDIT_LOG__SIGNING_KEY_FILE is unset: set a signing key (sada audit "
                "keygen) or disable checkpoints with SADA_AUDIT_LOG__CHECKPOINTS=false"
            )
        return None


DEV_MASTER_KEY = "c2FkYS1sb2NhbC1kZXYtbWFzdGVyLWtleS0wMDAwMDA="
"""The local-mode master key (base64 of 32 known bytes): refused outside local mode."""


class PrivacySettings(BaseModel):
    """Encryption of personal data and its destruction (docs/privacy.md)."""

    master_key: SecretStr | None = Field(
        default=None,
        description="Base64 of the 32-byte master secret that wraps the data keys and keys the "
        "blind indexes; local mode falls back to a development key, refused elsewhere.",
    )
    master_key_file: Path | None = Field(
        default=None,
        description="A file holding the base64 master secret (a mounted Secret); wins over "
        "SADA_PRIVACY__MASTER_KEY.",
    )
    retention_days: int = Field(
        # A year: a consultation's window, the ministry's answer and the year's report all fall
        # within it; the PII-free aggregates and the audit record outlive it. The legal basis
        # (PDPL Art. 18: destroy once the purpose ends) and so the number is the operator's.
        default=365,
        ge=1,
        description="Days after the UTC day of archiving when a submitter's data keys are "
        "destroyed (their personal data then reads `[erased]`); the legal basis is the "
        "operator's to set.",
    )
    interval_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How often the past-due gauge is refreshed and (one replica at a time, a "
        "lease) keys past retention are destroyed; 0 = never.",
    )
    key_cache_size: int = Field(
        default=10_000, ge=0, description="Data-key slots (person and day) cached per process."
    )

    def master_key_text(self) -> str | None:
        """Return the configured master key text (from the file if one is given)."""
        if self.master_key_file is not None:
            return self.master_key_file.read_text(encoding="utf-8").strip()
        return self.master_key.get_secret_value() if self.master_key is not None else None


class ArchiveSettings(ServiceSettings):
    """Archive settings: Kafka group and topics, MongoDB, API clients, access log, sweeps."""

    model_config = SettingsConfigDict(populate_by_name=True)

    http_port: int = 8004
    group_id: str = Field(default="sada-archive", description="Kafka consumer group.")
    topics: ArchiveTopics = ArchiveTopics()
    mongo: ArchiveMongoSettings = ArchiveMongoSettings()
    privacy: PrivacySettings = PrivacySettings()
    api_clients: tuple[ApiClientConfig, ...] = Field(
        default=(),
        description='Clients of the read API, JSON list: SADA_API_CLIENTS=\'[{"name": '
        '"auditor-1", "token_sha256": "<hex>", "scopes": ["read", '
        '"personal_data"]}]\' (`token` instead of `token_sha256` is accepted).',
    )
    api_clients_file: Path | None = Field(
        default=None,
        description="YAML file `api_clients: [{name, token_sha256, scopes}]`, merged with "
        "SADA_API_CLIENTS.",
    )
    api_tokens: tuple[SecretStr, ...] = Field(
        default=(),
        validation_alias=AliasChoices("SADA_ARCHIVE_API_TOKENS", "SADA_API_TOKENS", "api_tokens"),
        description="Plain bearer tokens, a JSON list: SADA_ARCHIVE_API_TOKENS='[\"t1\"]' (the "
        "older SADA_API_TOKENS is read too), each a client `api-token-N` with the `read` scope "
        "only (no personal data); SADA_API_CLIENTS names clients and grants scopes.",
    )
    archive_api_token: SecretStr | None = Field(
        default=None,
        description="Older form, kept working: one plain bearer token, the client "
        "`archive-api-token` with the `read` scope only.",
    )
    access_queue_size: int = Field(
        default=10_000,
        ge=1,
        description="API reads waiting for their access event to be stored; beyond, a read is "
        "refused with 503 rather than served unrecorded.",
    )
    access_batch_size: int = Field(
        default=500, ge=1, description="Access events stored per database write, at most."
    )
    access_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a read waits for its access event to be stored before 503.",
    )
    head_cache_size: int = Field(
        # ~0.75 KB a chain (head, facts as a tuple, timestamps): 100,000 is ~75 MB. It must cover
        # the chains between a submission's first event and its last one as this process reads
        # them: a digest's `notification.sent` comes a window (5 min) plus the settle time
        # later, and a backlog spreads one submission's events apart. A miss costs a re-read
        # of the head: an indexed read on MongoDB, three scans of the events and submissions
        # on FerretDB 1.24, which at 20,000 made the soak's archive fall from ~600 to ~17
        # records/s (bench/README.md, the soak).
        default=100_000,
        ge=0,
        description="Chain heads kept in memory (~0.75 KB each), so appending needs no database "
        "read; a chain pushed out is re-read when its next event comes. Size it to the chains "
        "one archive process sees over the digest window plus its worst lag.",
    )
    query_indexes: QueryIndexes = Field(
        default="auto",
        description="Create the API's query indexes: `auto` = on MongoDB, not on FerretDB 1.x "
        "(which never uses them and pays for them on every insert); `always`; `never`.",
    )
    consultations_path: Path = Field(
        default=CONSULTATIONS_PATH,
        description="The registry of consultations (titles, windows, questionnaires) the "
        "summary of views is labelled with; a missing file is an empty registry.",
    )
    export_page_size: int = Field(default=1000, ge=1, le=10_000, description="Export read size.")
    verify_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Full chain verification every N seconds (0 = never), run by one replica "
        "of the cluster at a time (a lease in the `leases` collection).",
    )
    audit_log: AuditLogSettings = AuditLogSettings()
    verify_timeout_seconds: float = Field(
        # FerretDB 1.24 sorts a whole collection before it answers the sweep's first read (about
        # 3 minutes at 50,000 submissions here), far beyond the socket timeout of other reads.
        default=3600.0,
        gt=0,
        description="The longest a full verification (sweep or `sada audit verify`) may take; "
        "its reads wait this long for the database.",
    )

    @field_validator("mongo", mode="before")
    @classmethod
    def _plain_mongo_settings(cls, value: object) -> object:
        # Accept a shared `MongoSettings`; what it leaves unset takes the archive's defaults.
        if isinstance(value, MongoSettings) and not isinstance(value, ArchiveMongoSettings):
            return value.model_dump(exclude_unset=True)
        return value

    @model_validator(mode="after")
    def _real_tokens_outside_local(self) -> ArchiveSettings:
        for token in self.api_tokens:
            refuse_default_secret(self, "SADA_ARCHIVE_API_TOKENS", token)
        if self.archive_api_token is not None:
            refuse_default_secret(self, "SADA_ARCHIVE_API_TOKEN", self.archive_api_token)
        for client in self.api_clients:
            if client.token is not None:
                refuse_default_secret(self, f"SADA_API_CLIENTS ({client.name})", client.token)
        return self

    def master_key(self) -> str:
        """Return the privacy master key (base64): the configured one, else the local one.

        Asked when the service (or a `sada privacy` command) is built, so settings without a
        store still load; outside local mode a missing or development key raises ValueError.
        """
        key = self.privacy.master_key_text()
        given = None if key in (None, DEV_MASTER_KEY) else key
        refuse_default_secret(
            self, "SADA_PRIVACY__MASTER_KEY(_FILE)", SecretStr(given) if given else None
        )
        return key or DEV_MASTER_KEY
