"""Sada starts from its production deployment files, and handles a submission end to end.

For `docker-compose.yml` and for the rendered production Kustomize overlay, each of the five
services gets the environment the file gives it (secrets generated, infrastructure mapped to
the local stand-ins: tests/integration/production_configs.py), runs as `sada serve SERVICE`,
becomes ready, and one submission sent to intake's HTTP door with the configured API key ends
`notified` in the archive, read with the configured API token.

The Kustomize run is also the proof of production's transport: Kafka over SASL_SSL with
SCRAM-SHA-512 against the broker's real SASL_SSL listener (the password checked by Kafka),
MongoDB over TLS, the mail relay with STARTTLS, all verified against the local CA. Compose runs
on its private network with the explicit override, which each service must announce.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import infra
from tests.integration import production_configs as configs
from tests.integration import service_processes as sada

OVERRIDE_WARNING = "INSECURE TRANSPORT allowed by SADA_ALLOW_INSECURE_TRANSPORT"


@pytest.fixture(scope="module", autouse=True)
def _secure_listeners_are_up() -> None:
    for name, port in (
        ("Kafka SASL_SSL", infra.KAFKA_SASL_PORT),
        ("FerretDB TLS", infra.MONGO_TLS_PORT),
        ("SMTP sink STARTTLS", infra.SMTP_STARTTLS_PORT),
    ):
        try:
            infra.require_listening(name, "127.0.0.1", port)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {infra.SECURE_INFRA_HINT}") from None


def assert_verbatim_but_for_the_infrastructure(
    given: dict[str, str], local: dict[str, str]
) -> None:
    assert local.keys() == given.keys()
    changed = {key for key in given if given[key] != local[key]}
    assert changed <= configs.REWRITTEN, changed - configs.REWRITTEN


@pytest.fixture
def stopped_at_the_end() -> Iterator[dict[str, sada.Process]]:
    processes: dict[str, sada.Process] = {}
    yield processes
    # Those still running at the end must stop cleanly; one that exited early failed the test.
    running = {name: p for name, p in processes.items() if p.process.poll() is None}
    codes = {name: p.stop() for name, p in running.items()}
    # uvicorn re-raises the SIGTERM it handled, after the graceful shutdown
    assert set(codes.values()) <= {0, -signal.SIGTERM}, f"not a clean stop: {codes}"


async def test_compose_services_start_and_handle_a_submission(
    tmp_path: Path, stopped_at_the_end: dict[str, sada.Process]
) -> None:
    values = configs.Secrets()
    secret_files = values.compose_secret_files(tmp_path / "secrets")
    environments = configs.compose_environments(values, secret_files)
    for name, env in environments.items():
        mounts = {configs.COMPOSE_SECRETS: secret_files}
        local = configs.localise(env, http_port=configs.free_port(), mounts=mounts)
        assert_verbatim_but_for_the_infrastructure(env, local)
        stopped_at_the_end[name] = sada.start(name, local, tmp_path / "logs")

    status = await sada.run_one_submission(
        stopped_at_the_end, values.intake_key, values.archive_token
    )

    assert status == "notified"
    for name, process in stopped_at_the_end.items():
        assert environments[name]["SADA_ENVIRONMENT"] == "production"
        assert OVERRIDE_WARNING in process.log(), f"{name} did not announce the override"


async def test_kubernetes_production_services_start_over_sasl_ssl_and_handle_a_submission(
    tmp_path: Path, stopped_at_the_end: dict[str, sada.Process]
) -> None:
    values = configs.Secrets()
    pods = configs.kubernetes_environments(values, tmp_path / "volumes")
    # The platform's trust store holds the CA of the mail relay (the local CA here).
    trust = {"SSL_CERT_FILE": str(infra.TLS_DIR / "ca.crt")}
    for name, pod in pods.items():
        local = configs.localise(pod.env, http_port=configs.free_port(), mounts=pod.mounts)
        assert_verbatim_but_for_the_infrastructure(pod.env, local)
        stopped_at_the_end[name] = sada.start(name, local | trust, tmp_path / "logs")

    status = await sada.run_one_submission(
        stopped_at_the_end, values.intake_key, values.archive_token
    )

    assert status == "notified"
    for name, pod in pods.items():
        assert pod.env["SADA_ENVIRONMENT"] == "production"
        assert pod.env["SADA_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
        assert "SADA_ALLOW_INSECURE_TRANSPORT" not in pod.env
        assert OVERRIDE_WARNING not in stopped_at_the_end[name].log()
