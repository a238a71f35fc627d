"""Settings of the archive service (env prefix `SADA_`, nested groups with `__`)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.archive.store import QueryIndexes
from shared import topics
from shared.settings import MongoSettings, ServiceSettings, refuse_default_secret

LOCAL_API_TOKEN = "local-dev-token"  # noqa: S105 - the documented local default, refused elsewhere
"""The API token used when none is configured; start-up refuses it outside local mode."""


class ArchiveTopics(BaseModel):
    """The topics the archive reads; overridable so tests use their own."""

    submissions: str = Field(default=topics.SUBMISSIONS, description="Raw receipts (strings).")
    accepted: str = Field(default=topics.ACCEPTED, description="submission.accepted events.")
    rejected: str = Field(default=topics.REJECTED, description="submission.rejected events.")
    routed: str = Field(default=topics.ROUTED, description="submission.routed events.")
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
            self.notifications,
            self.deadletter,
        )


class ArchiveMongoSettings(MongoSettings):
    """MongoDB settings whose database defaults to the archive's own, whichever env is set.

    (A nested group built from `SADA_MONGO__URI` alone would otherwise take `MongoSettings`'
    default database, not this service's.)
    """

    database: str = "sada_archive"


class ArchiveSettings(ServiceSettings):
    """Archive settings: Kafka group and topics, MongoDB, API tokens, cache and sweeps."""

    model_config = SettingsConfigDict(populate_by_name=True)

    http_port: int = 8004
    group_id: str = Field(default="sada-archive", description="Kafka consumer group.")
    topics: ArchiveTopics = ArchiveTopics()
    mongo: ArchiveMongoSettings = ArchiveMongoSettings()
    api_tokens: tuple[SecretStr, ...] = Field(
        default=(SecretStr(LOCAL_API_TOKEN),),
        validation_alias="SADA_ARCHIVE_API_TOKENS",
        description="Bearer tokens of the read API, a JSON list: "
        'SADA_ARCHIVE_API_TOKENS=\'["t1","t2"]\'.',
    )
    head_cache_size: int = Field(
        # ~1 KB a chain (head, facts, timestamps): 20,000 is ~20 MB, about 100 s of traffic at
        # 100 submissions/s, far more than the seconds between one submission's events, and
        # keeps the service under its 150 MB budget. A miss costs one re-read of the head.
        default=20_000,
        ge=0,
        description="Chain heads kept in memory (~1 KB each), so appending needs no database "
        "read; a chain pushed out is re-read when its next event comes.",
    )
    query_indexes: QueryIndexes = Field(
        default="auto",
        description="Create the API's query indexes: `auto` = on MongoDB, not on FerretDB 1.x "
        "(which never uses them and pays for them on every insert); `always`; `never`.",
    )
    export_page_size: int = Field(default=1000, ge=1, le=10_000, description="Export read size.")
    verify_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Full chain verification in the background every N seconds (0 = never).",
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
        if not self.api_tokens:
            msg = "SADA_ARCHIVE_API_TOKENS must hold at least one token"
            raise ValueError(msg)
        for token in self.api_tokens:
            refuse_default_secret(self, "SADA_ARCHIVE_API_TOKENS", token)
        return self
