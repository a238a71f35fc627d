"""The campaigns service's settings (env prefix `SADA_`, e.g. `SADA_CAMPAIGN_WINDOW_DAYS`)."""

from __future__ import annotations

from pydantic import Field

from shared import topics
from shared.settings import MongoSettings, ServiceSettings


class CampaignsMongoSettings(MongoSettings):
    """The service's own database: each scope's signatures, sizes and decisions."""

    # A subclass, not `MongoSettings(database=...)`: setting SADA_MONGO__URI alone must not
    # reset the database name to the base class's default.
    database: str = "sada_campaigns"


class CampaignsSettings(ServiceSettings):
    """Where the campaigns service reads and writes; defaults suit `make run` on one machine."""

    http_port: int = 8005
    group_id: str = Field(default="sada-campaigns", description="Kafka consumer group.")
    routed_topic: str = Field(
        default=topics.ROUTED, description="Consumed: routed events, keyed by campaign scope."
    )
    grouped_topic: str = Field(
        default=topics.GROUPED, description="Produced: each routed submission and its campaign."
    )
    mongo: CampaignsMongoSettings = CampaignsMongoSettings()
    campaign_window_days: float = Field(
        default=7.0,
        gt=0,
        description="How long a unit scope (a submission without `legislation_ref`) remembers "
        "a text, in days of `submitted_at`.",
    )
    campaign_scopes_held: int = Field(
        default=16,
        ge=1,
        description="Scopes held in memory at once, the least recently used reloaded from "
        "MongoDB when next needed. A scope at its caps takes ~360 MB, most far less "
        "(docs/campaigns.md, 'Bounded memory').",
    )
