"""The router's settings (env prefix `SADA_`, e.g. `SADA_RULES_PATH`, `SADA_ROUTED_TOPIC`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.router.config import CHANNELS_PATH, RULES_PATH, UNITS_PATH
from shared import topics
from shared.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    """Where the router reads, writes and finds its rules; defaults suit local runs."""

    http_port: int = 8002
    group_id: str = Field(default="sada-router", description="Kafka consumer group.")
    accepted_topic: str = Field(default=topics.ACCEPTED, description="Consumed: accepted events.")
    routed_topic: str = Field(default=topics.ROUTED, description="Produced: routing decisions.")
    rules_path: Path = Field(default=RULES_PATH, description="The routing rules (routing.yaml).")
    units_path: Path = Field(default=UNITS_PATH, description="Units and mailboxes (units.yaml).")
    channels_path: Path = Field(default=CHANNELS_PATH, description="Channels (channels.yaml).")
