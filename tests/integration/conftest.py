"""Integration tests run against the real Kafka, FerretDB and SMTP sink started by make."""

from __future__ import annotations

import pytest

from tests import infra


@pytest.fixture(scope="session", autouse=True)
def _infrastructure_is_up() -> None:
    host, port = infra.KAFKA.split(",")[0].rsplit(":", 1)
    infra.require_listening("Kafka", host, int(port))
    infra.require_listening("FerretDB", "127.0.0.1", infra.MONGO_PORT)
    infra.require_listening("SMTP sink", infra.SMTP_HOST, infra.SMTP_PORT)
