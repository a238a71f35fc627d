"""API keys of the HTTP door: per channel, stored only as SHA-256 digests.

A presented key is hashed and looked up; the digest names the one channel the key may submit
for. Keys come from `SADA_INTAKE_API_KEYS` and/or `SADA_INTAKE_API_KEYS_FILE`; in local mode
with neither, from `deploy/config/intake-api-keys.local.yaml` (documented demo keys). Outside
local mode start-up refuses any key that is an obvious default or one of the demo keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from services.intake.settings import LOCAL_API_KEYS_FILE, IntakeSettings
from shared import config
from shared.logging import get_logger
from shared.settings import DEFAULT_SECRETS

log = get_logger(__name__)

Sha256Hex = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[0-9a-fA-F]{64}$")
]


class ApiKeysFile(BaseModel):
    """Schema of an API keys file: `api_keys: {channel: [sha256hex, ...]}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    api_keys: dict[str, tuple[Sha256Hex, ...]]


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest under which a key is configured."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """Which channel each configured key (by digest) may submit for."""

    channel_by_digest: Mapping[str, str]

    def channel_for(self, key: str) -> str | None:
        """Return the channel of a presented key, or None when the key is not configured."""
        return self.channel_by_digest.get(hash_key(key))

    def __len__(self) -> int:
        return len(self.channel_by_digest)


def load(settings: IntakeSettings, channels: Collection[str]) -> ApiKeys:
    """Return the configured keys; raise ValueError on a bad or default key configuration."""
    configured: dict[str, tuple[str, ...]] = {}
    if settings.api_keys:
        configured = dict(ApiKeysFile(api_keys=dict(settings.api_keys)).api_keys)
    if settings.api_keys_file is not None:
        from_file = config.load(settings.api_keys_file, ApiKeysFile).api_keys
        for channel, digests in from_file.items():
            configured[channel] = (*configured.get(channel, ()), *digests)
    if not configured and settings.environment == "local":
        configured = dict(config.load(LOCAL_API_KEYS_FILE, ApiKeysFile).api_keys)
        log.warning("HTTP door uses the local demo keys `local-<channel>-key` (local mode only)")

    channel_by_digest: dict[str, str] = {}
    for channel, digests in configured.items():
        if channel not in channels:
            msg = f"API keys configured for unregistered channel {channel!r}"
            raise ValueError(msg)
        for digest in digests:
            if channel_by_digest.setdefault(digest, channel) != channel:
                msg = f"one API key is configured for two channels ({channel!r} and another)"
                raise ValueError(msg)
    if settings.environment != "local":
        _refuse_default_keys(channel_by_digest, channels)
    if not channel_by_digest:
        log.warning("no API keys configured: the HTTP door answers 401 to every submission")
    return ApiKeys(channel_by_digest)


def _refuse_default_keys(channel_by_digest: Mapping[str, str], channels: Collection[str]) -> None:
    defaults = {hash_key(secret) for secret in DEFAULT_SECRETS}
    defaults |= {hash_key(f"local-{channel}-key") for channel in channels}
    for digest, channel in channel_by_digest.items():
        if digest in defaults:
            msg = (
                f"an API key of channel {channel!r} is an obvious default or a local demo key; "
                "set real keys outside local mode"
            )
            raise ValueError(msg)
