"""Production's transport on the real broker: the SCRAM password is checked, PLAINTEXT is refused.

The local Kafka's SASL_SSL listener (deploy/local/infra.sh, SADA_KAFKA_SASL_PORT) runs TLS with
a certificate from the local CA and SCRAM-SHA-512; the four services running through it end to
end is tests/integration/test_production_configs.py (the Kubernetes overlay). Here: a service
with the wrong password is refused by the broker and does not start, the same service with the
right one does, and a production start over PLAINTEXT is refused before it connects anywhere,
with a message that names the override.
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path

import pytest

from tests import infra
from tests.integration import production_configs as configs
from tests.integration import service_processes as sada


def sasl_env(password: str, port: int) -> dict[str, str]:
    """Return a production router's environment on the local SASL_SSL listener."""
    return {
        "SADA_ENVIRONMENT": "production",
        "SADA_LOG_JSON": "true",
        "SADA_HTTP_PORT": str(port),
        "SADA_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{infra.KAFKA_SASL_PORT}",
        "SADA_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "SADA_KAFKA__SASL_USERNAME": (infra.SASL_DIR / "username").read_text().strip(),
        "SADA_KAFKA__SASL_PASSWORD": password,
        "SADA_KAFKA__SSL_CAFILE": str(infra.TLS_DIR / "ca.crt"),
    }


@pytest.fixture(scope="module", autouse=True)
def _sasl_listener_is_up() -> None:
    try:
        infra.require_listening("Kafka SASL_SSL", "127.0.0.1", infra.KAFKA_SASL_PORT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {infra.SECURE_INFRA_HINT}") from None


async def test_a_wrong_scram_password_is_refused_by_the_broker_and_the_service_does_not_start(
    tmp_path: Path,
) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    refused = sada.start("router", sasl_env(wrong, configs.free_port()), tmp_path / "wrong")
    code = refused.process.wait(timeout=60)
    log = refused.log()
    assert code != 0
    assert "SaslAuthenticationFailed" in log
    assert wrong not in log  # a secret never reaches the log

    right = (infra.SASL_DIR / "password").read_text().strip()
    accepted = sada.start("router", sasl_env(right, configs.free_port()), tmp_path / "right")
    try:
        await sada.wait_ready(accepted)
    finally:
        assert accepted.stop() in {0, -signal.SIGTERM}
    assert "SaslAuthenticationFailed" not in accepted.log()


@pytest.mark.parametrize(
    ("service", "extra", "named"),
    [
        ("router", {}, "Kafka over PLAINTEXT"),
        ("archive", {"SADA_ARCHIVE_API_TOKENS": '["a-real-token-for-this-test"]'}, "MongoDB"),
    ],
)
def test_a_production_start_over_insecure_transport_is_refused_naming_the_override(
    tmp_path: Path, service: str, extra: dict[str, str], named: str
) -> None:
    env = sasl_env((infra.SASL_DIR / "password").read_text().strip(), configs.free_port())
    if service == "router":  # PLAINTEXT Kafka
        env |= {
            "SADA_KAFKA__BOOTSTRAP_SERVERS": infra.KAFKA,
            "SADA_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
        }
    else:  # SASL_SSL Kafka, but MongoDB without TLS or credentials
        env |= {"SADA_MONGO__URI": infra.MONGO_URI} | extra
    process = sada.start(service, env, tmp_path)
    code = process.process.wait(timeout=60)
    log = process.log()
    assert code != 0
    assert "production refuses insecure transport" in log
    assert named in log
    assert "SADA_ALLOW_INSECURE_TRANSPORT=true" in log
