"""Intake's settings: topics, consumer group, channels, consultations and the HTTP door's keys.

Environment (prefix `SADA_`): `SADA_GROUP_ID`, `SADA_SUBMISSIONS_TOPIC`, `SADA_ACCEPTED_TOPIC`,
`SADA_REJECTED_TOPIC`, `SADA_CHANNELS_FILE`, `SADA_CONSULTATIONS_PATH`, `SADA_HTTP_PORT`; the
HTTP door's own settings are named for the service: `SADA_INTAKE_API_KEYS` (JSON: channel ->
list of SHA-256 hex digests of its keys), `SADA_INTAKE_API_KEYS_FILE` (the same as YAML:
`api_keys: {channel: [sha256hex]}`), `SADA_INTAKE_RATE_LIMIT` (per key, default `3000/minute`,
shared out among `SADA_INTAKE_REPLICAS`) and `SADA_INTAKE_PUBLISH_TIMEOUT`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared import topics
from shared.consultations import CONSULTATIONS_PATH
from shared.directory import CONFIG_DIR
from shared.settings import ServiceSettings

LOCAL_API_KEYS_FILE = CONFIG_DIR / "intake-api-keys.local.yaml"
"""Hashes of the documented demo keys `local-<channel>-key`; used only in local mode."""


class IntakeSettings(ServiceSettings):
    """Settings of the intake service; defaults suit a local run."""

    model_config = SettingsConfigDict(populate_by_name=True)

    http_port: int = 8001
    group_id: str = Field(default="sada-intake", description="Kafka consumer group.")
    submissions_topic: str = Field(default=topics.SUBMISSIONS, description="Raw input topic.")
    accepted_topic: str = Field(default=topics.ACCEPTED, description="submission.accepted.")
    rejected_topic: str = Field(default=topics.REJECTED, description="submission.rejected.")
    channels_file: Path = Field(
        default=CONFIG_DIR / "channels.yaml", description="The registered channels."
    )
    consultations_path: Path = Field(
        default=CONSULTATIONS_PATH,
        description="The registry of consultations: projects, windows and questionnaires "
        "(docs/consultations.md). Invalid: intake refuses to start.",
    )
    api_keys: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        validation_alias="SADA_INTAKE_API_KEYS",
        description="Channel -> SHA-256 hex digests of the API keys allowed to submit for it.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        validation_alias="SADA_INTAKE_API_KEYS_FILE",
        description="YAML file `api_keys: {channel: [sha256hex, ...]}`, merged with api_keys.",
    )
    rate_limit: str = Field(
        default="3000/minute",
        validation_alias="SADA_INTAKE_RATE_LIMIT",
        description="Per-key request limit (moving window), in `limits` notation, for all "
        "replicas together: each admits its share (see SADA_INTAKE_REPLICAS).",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        validation_alias="SADA_INTAKE_REPLICAS",
        description="How many intake replicas run: each admits SADA_INTAKE_RATE_LIMIT ÷ this "
        "per key (rounded down), so together they never exceed the limit.",
    )
    publish_timeout: float = Field(
        default=10.0,
        gt=0,
        validation_alias="SADA_INTAKE_PUBLISH_TIMEOUT",
        description="Seconds the HTTP door waits for Kafka's ack before answering 503.",
    )
