"""Clients of the archive's read API: each bearer token names a client and grants it scopes.

A client is `{name, token_sha256 | token, scopes}`. Tokens are kept only as SHA-256 digests
once loaded (configure the digest itself, `token_sha256`, so the plain token is never in the
deployment). A presented token is hashed and compared with every configured digest in
constant time, so neither the answer nor its timing says which client nearly matched.

Scopes: `read` (every endpoint, personal data redacted) and `personal_data` (the submitter, the
free text and the raw bytes as archived). Sources, merged: `SADA_API_CLIENTS` (JSON list),
`SADA_API_CLIENTS_FILE` (YAML `api_clients: [...]`), and the older plain token lists
`SADA_API_TOKENS` / `SADA_ARCHIVE_API_TOKEN`, which become clients `api-token-N` /
`archive-api-token` with the `read` scope only. With none of them in local mode, the documented
token `local-dev-token` is the client `local` (`read`); outside local mode start-up refuses.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

from shared import config
from shared.logging import get_logger
from shared.settings import DEFAULT_SECRETS

if TYPE_CHECKING:
    from services.archive.settings import ArchiveSettings

log = get_logger(__name__)

Scope = Literal["read", "personal_data"]
READ: Scope = "read"
PERSONAL_DATA: Scope = "personal_data"

LOCAL_TOKEN = "local-dev-token"  # noqa: S105 - the documented local default, refused elsewhere
"""The token of the client `local`, used only in local mode when no client is configured."""

ClientName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Sha256Hex = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[0-9a-fA-F]{64}$")
]


class ApiClientConfig(BaseModel):
    """One configured client: its name, its token (preferably as a digest) and its scopes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClientName = Field(description="Who reads: appears on every access event.")
    token_sha256: Sha256Hex | None = Field(
        default=None, description="SHA-256 hex digest of the bearer token (preferred)."
    )
    token: SecretStr | None = Field(default=None, description="The bearer token itself.")
    scopes: tuple[Scope, ...] = Field(
        default=(READ,), description="`read`; add `personal_data` to see personal data."
    )

    @model_validator(mode="after")
    def _one_token(self) -> ApiClientConfig:
        if (self.token is None) == (self.token_sha256 is None):
            msg = f"API client {self.name!r}: give exactly one of token_sha256 and token"
            raise ValueError(msg)
        return self

    def digest(self) -> str:
        """Return the SHA-256 hex digest of the client's token."""
        if self.token_sha256 is not None:
            return self.token_sha256
        assert self.token is not None  # the validator guarantees one of the two
        return hash_token(self.token.get_secret_value())


class ApiClientsFile(BaseModel):
    """Schema of `SADA_API_CLIENTS_FILE`: `api_clients: [{name, token_sha256, scopes}, ...]`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    api_clients: tuple[ApiClientConfig, ...]


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is configured."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiClient:
    """An authenticated caller of the read API."""

    name: str
    scopes: frozenset[str]

    @property
    def personal_data(self) -> bool:
        """True when this client may see personal data."""
        return PERSONAL_DATA in self.scopes


class ApiClients:
    """The configured clients, by token digest."""

    def __init__(self, clients: Iterable[ApiClientConfig]) -> None:
        self._by_digest: list[tuple[bytes, ApiClient]] = [
            (client.digest().encode(), ApiClient(client.name, frozenset(client.scopes)))
            for client in clients
        ]

    def identify(self, token: str) -> ApiClient | None:
        """Return the client holding `token`, or None; compares with every digest in turn."""
        given = hash_token(token).encode()
        found = None
        for digest, client in self._by_digest:
            if hmac.compare_digest(given, digest):  # no early exit: time says nothing
                found = client
        return found

    @property
    def names(self) -> list[str]:
        """The configured clients' names."""
        return [client.name for _, client in self._by_digest]


def load(settings: ArchiveSettings) -> ApiClients:
    """Return the configured clients; raise ValueError on a missing, default or clashing one."""
    configured = list(settings.api_clients)
    if settings.api_clients_file is not None:
        configured += config.load(settings.api_clients_file, ApiClientsFile).api_clients
    legacy = [
        ApiClientConfig(name=f"api-token-{i}", token=token)
        for i, token in enumerate(settings.api_tokens, start=1)
    ]
    if settings.archive_api_token is not None:
        legacy.append(ApiClientConfig(name="archive-api-token", token=settings.archive_api_token))
    if legacy:
        log.warning(
            "plain API tokens configured: each is a client with the read scope only; "
            "name them with scopes in SADA_API_CLIENTS",
            clients=[client.name for client in legacy],
        )
    clients = configured + legacy
    if not clients and settings.environment == "local":
        log.warning("archive API uses the local token `local-dev-token` (local mode only)")
        clients = [ApiClientConfig(name="local", token=SecretStr(LOCAL_TOKEN))]
    if not clients:
        msg = "no archive API client configured: set SADA_API_CLIENTS or SADA_API_CLIENTS_FILE"
        raise ValueError(msg)
    _check(clients, local=settings.environment == "local")
    return ApiClients(clients)


def _check(clients: Sequence[ApiClientConfig], *, local: bool) -> None:
    names, digests = set(), set()
    defaults = {hash_token(secret) for secret in DEFAULT_SECRETS}
    for client in clients:
        digest = client.digest()
        if client.name in names:
            msg = f"API client {client.name!r} is configured twice"
            raise ValueError(msg)
        if digest in digests:
            msg = f"API client {client.name!r} shares its token with another client"
            raise ValueError(msg)
        if not local and digest in defaults:
            msg = (
                f"the token of API client {client.name!r} is an obvious default; "
                "set a real secret outside local mode"
            )
            raise ValueError(msg)
        names.add(client.name)
        digests.add(digest)
