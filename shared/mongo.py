"""MongoDB client factory (PyMongo's async API; FerretDB 1.24 locally, MongoDB 7+ in production).

Only features both servers support are used anywhere in Sada: no transactions, no change
streams, no TTL or partial indexes, no `$lookup`/`$facet`.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

from shared.settings import MongoSettings

Document = dict[str, Any]


def make_client(settings: MongoSettings, *, app_name: str) -> AsyncMongoClient[Document]:
    """Return a lazily-connecting client with bounded timeouts, so an outage fails fast."""
    return AsyncMongoClient(
        settings.uri.get_secret_value(),
        appname=f"sada-{app_name}",
        serverSelectionTimeoutMS=settings.timeout_ms,
        connectTimeoutMS=settings.timeout_ms,
        socketTimeoutMS=settings.timeout_ms * 2,
        retryWrites=True,
        tz_aware=True,
    )


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """Return True when the server answers `ping`."""
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True
