"""The ministry's directory: which units receive feedback and which channels may send it.

Both are configuration (`deploy/config/units.yaml`, `deploy/config/channels.yaml`): a ministry
adds a unit or a channel by editing YAML. The router's rules, the notifier's mailboxes and
intake's channel check all read them from here, so they can never disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from shared import config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "deploy" / "config"
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class DigestOverrides(BaseModel):
    """A unit's own digest policy (docs/digests.md); unset values keep the notifier's settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool | None = Field(default=None, description="False: always one e-mail each.")
    threshold: int | None = Field(
        default=None, ge=1, description="E-mails within `rate_seconds` before digest mode."
    )
    rate_seconds: float | None = Field(
        default=None, gt=0, description="The trailing window the threshold counts over."
    )
    window_seconds: float | None = Field(
        default=None, gt=0, description="One digest per this many seconds in digest mode."
    )
    campaign_individual: int | None = Field(
        default=None, ge=1, description="Members of a campaign e-mailed one by one."
    )
    list_limit: int | None = Field(
        default=None, ge=1, description="Past this many items a digest attaches the full list."
    )


class Unit(BaseModel):
    """A ministry unit that owns a share of the feedback."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Identifier = Field(description="Stable unit id, e.g. `voice_of_customer`.")
    name_ar: str = Field(min_length=1, description="Arabic name.")
    name_en: str = Field(min_length=1, description="English name.")
    mailbox: EmailStr = Field(description="Where its notifications go.")
    personal_data: bool = Field(
        default=True,
        description="False: e-mails carry the reference and an archive link, no submitter data.",
    )
    digest: DigestOverrides | None = Field(
        default=None, description="When its mailbox switches to digests; default: the notifier's."
    )


class Channel(BaseModel):
    """An e-participation channel allowed to submit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Identifier = Field(description="Channel id used in submissions, e.g. `istitlaa`.")
    name_ar: str = Field(min_length=1)
    name_en: str = Field(min_length=1)


class UnitsFile(BaseModel):
    """Schema of `units.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    units: tuple[Unit, ...] = Field(min_length=1)

    @field_validator("units")
    @classmethod
    def _unique_ids(cls, units: tuple[Unit, ...]) -> tuple[Unit, ...]:
        _require_unique([u.id for u in units], "unit")
        return units


class ChannelsFile(BaseModel):
    """Schema of `channels.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    channels: tuple[Channel, ...] = Field(min_length=1)

    @field_validator("channels")
    @classmethod
    def _unique_ids(cls, channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
        _require_unique([c.id for c in channels], "channel")
        return channels


def _require_unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            msg = f"duplicate {what} id {item!r}"
            raise ValueError(msg)
        seen.add(item)


def load_units(path: Path | str = CONFIG_DIR / "units.yaml") -> dict[str, Unit]:
    """Return the units by id, or raise `ConfigError` naming the file and line."""
    return {unit.id: unit for unit in config.load(path, UnitsFile).units}


def load_channels(path: Path | str = CONFIG_DIR / "channels.yaml") -> dict[str, Channel]:
    """Return the registered channels by id, or raise `ConfigError` naming the file and line."""
    return {channel.id: channel for channel in config.load(path, ChannelsFile).channels}
