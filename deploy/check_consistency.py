"""Cross-file checks of the deployment artifacts, run by deploy/check.sh.

Each artifact is valid on its own (compose, kustomize, promtool and the schemas see to that);
this catches what no single tool sees: the files disagreeing with each other or with the code.

    python deploy/check_consistency.py COMPOSE_JSON BASE_YAML PRODUCTION_YAML

COMPOSE_JSON is `docker compose config --format json`; the YAML files are `kustomize build`
output. Prints one line per finding and exits 1 if there is any. Needs only PyYAML.
"""

from __future__ import annotations

import ast
import json
import re
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"intake": 8001, "router": 8002, "campaigns": 8005, "notifier": 8003, "archive": 8004}

# Metrics the artifacts use before the code defines them (the lead adds them). Remove a name
# once it exists: the check then holds it to the same rule as every other.
PENDING_METRICS: set[str] = set()

METRIC_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_info", "_created")


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a multi-document YAML file."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def topic_partitions() -> dict[str, int]:
    """Partitions of each topic in deploy/config/topics.yaml (an entry's own, or the default)."""
    spec = yaml.safe_load((ROOT / "deploy" / "config" / "topics.yaml").read_text("utf-8"))
    default = spec["defaults"]["partitions"]
    return {t["name"]: int(t.get("partitions", default)) for t in spec["topics"]}


def check_topic_spec(partitions: dict[str, int]) -> Iterator[str]:
    """The spec lists exactly the topics of shared/topics.py."""
    topics: tuple[str, ...] = runpy.run_path(str(ROOT / "shared" / "topics.py"))["ALL"]
    if set(partitions) != set(topics):
        yield (
            f"deploy/config/topics.yaml lists {sorted(partitions)},"
            f" shared/topics.py has {sorted(topics)}"
        )


def served_services() -> tuple[str, ...]:
    """The services `sada serve` runs: the `SERVICES` tuple of shared/cli.py, read as text.

    Read with `ast` rather than imported: the CLI imports typer and every service, and this
    script runs in the tools venv with PyYAML only.
    """
    tree = ast.parse((ROOT / "shared" / "cli.py").read_text("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "SERVICES" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise SystemExit("shared/cli.py: no SERVICES tuple")


def check_services() -> Iterator[str]:
    """Every service `sada serve` runs is deployed, alerted on and shown (and nothing else)."""
    served = set(served_services())
    if served != set(SERVICES):
        yield f"shared/cli.py serves {sorted(served)}; this script checks {sorted(SERVICES)}"
    alerts = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text("utf-8")
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "sada.json").read_text())
    exprs = "\n".join(
        target.get("expr", "")
        for panel in dashboard.get("panels", [])
        for target in panel.get("targets", [])
    )
    for where, text in (("alerts.yml SadaServiceDown", alerts), ("the dashboard's Up", exprs)):
        found = re.search(r'\bup\{job=~"([a-z|]+)"\}', text)
        jobs = set(found[1].split("|")) if found else set()
        if jobs != served:
            yield f"{where} watches {sorted(jobs)}, not every service {sorted(served)}"


def check_compose(compose: dict[str, Any]) -> Iterator[str]:
    """kafka-init applies the topic spec; what every Sada service in compose must have."""
    services = compose["services"]
    init = services["kafka-init"]
    if init.get("entrypoint") != ["python", "-m", "shared.topic_admin"] or init.get("command"):
        yield f"compose kafka-init: entrypoint {init.get('entrypoint')} does not apply the spec"
    if not any(v.get("target") == "/app/deploy/config" for v in init.get("volumes", [])):
        yield "compose kafka-init: deploy/config (topics.yaml) is not mounted"
    for name, port in SERVICES.items():
        service = services.get(name)
        if service is None:
            yield f"compose: service {name} is missing"
            continue
        env = service.get("environment", {})
        if service.get("command") != ["serve", name]:
            yield f"compose {name}: command is {service.get('command')}, want ['serve', '{name}']"
        if env.get("SADA_ENVIRONMENT") != "production":
            yield f"compose {name}: SADA_ENVIRONMENT is not production"
        if str(env.get("SADA_HTTP_PORT")) != str(port):
            yield f"compose {name}: SADA_HTTP_PORT {env.get('SADA_HTTP_PORT')} != {port}"
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        if f"127.0.0.1:{port}/health" not in test:
            yield f"compose {name}: healthcheck does not probe 127.0.0.1:{port}/health"
        depends = service.get("depends_on", {})
        if depends.get("kafka", {}).get("condition") != "service_healthy":
            yield f"compose {name}: does not wait for a healthy kafka"
        if depends.get("kafka-init", {}).get("condition") != "service_completed_successfully":
            yield f"compose {name}: does not wait for kafka-init to complete"
        mounts = [v for v in service.get("volumes", []) if v.get("target") == "/app/deploy/config"]
        if not mounts or not all(v.get("read_only") for v in mounts):
            yield f"compose {name}: deploy/config is not mounted read-only at /app/deploy/config"


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Deployments of a kustomize build, by name."""
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}


def check_k8s(
    base: list[dict[str, Any]], production: list[dict[str, Any]], partitions: int
) -> Iterator[str]:
    """Each service deployed once with consistent ports; production replicas = partitions."""
    for label, docs in (("base", base), ("production", production)):
        yield from check_topics_job(label, docs)
    for label, docs in (("base", base), ("production", production)):
        found = deployments(docs)
        for name, port in SERVICES.items():
            deployment = found.get(f"sada-{name}")
            if deployment is None:
                yield f"k8s {label}: Deployment sada-{name} is missing"
                continue
            pod = deployment["spec"]["template"]
            container = pod["spec"]["containers"][0]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            ports = [p["containerPort"] for p in container.get("ports", [])]
            annotations = pod["metadata"].get("annotations", {})
            if container.get("args") != ["serve", name]:
                yield f"k8s {label} sada-{name}: args {container.get('args')}"
            if env.get("SADA_HTTP_PORT") != str(port) or ports != [port]:
                yield f"k8s {label} sada-{name}: SADA_HTTP_PORT/containerPort are not {port}"
            if annotations.get("prometheus.io/port") != str(port):
                yield f"k8s {label} sada-{name}: prometheus.io/port is not {port}"
            if label == "production" and deployment["spec"].get("replicas") != partitions:
                yield (
                    f"k8s production sada-{name}: replicas {deployment['spec'].get('replicas')}"
                    f" != {partitions} partitions per topic (deploy/config/topics.yaml)"
                )


def check_topics_job(label: str, docs: list[dict[str, Any]]) -> Iterator[str]:
    """The Job sada-topics applies the spec as written, connected like the services."""
    jobs = [d for d in docs if d.get("kind") == "Job" and d["metadata"]["name"] == "sada-topics"]
    if not jobs:
        yield f"k8s {label}: Job sada-topics (deploy/k8s/base/topics-job.yaml) is missing"
        return
    pod = jobs[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    command = [*container.get("command", []), *container.get("args", [])]
    if command != ["python", "-m", "shared.topic_admin"]:
        yield f"k8s {label} sada-topics: runs {command}, want the spec as written"
    env = {e["name"] for e in container.get("env", [])}
    if "SADA_TOPICS_SINGLE_NODE" in env:
        yield f"k8s {label} sada-topics: the single-node override has no place in Kubernetes"
    refs = [str(e.get("configMapRef", {}).get("name", "")) for e in container.get("envFrom", [])]
    if not any(ref.startswith("sada-env") for ref in refs):
        yield f"k8s {label} sada-topics: does not read the ConfigMap sada-env"
    if label == "production" and "SADA_KAFKA__SASL_PASSWORD" not in env:
        yield "k8s production sada-topics: no SASL credentials (overlays/production)"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if not str(volumes.get("config", {}).get("configMap", {}).get("name", "")).startswith(
        "sada-config"
    ):
        yield f"k8s {label} sada-topics: does not mount the ConfigMap sada-config"


def check_intake_replicas(production: list[dict[str, Any]]) -> Iterator[str]:
    """Intake shares its rate limit out by SADA_INTAKE_REPLICAS: it must be its replica count."""
    intake = deployments(production).get("sada-intake")
    if intake is None:
        return
    replicas = intake["spec"].get("replicas", 1)
    env: dict[str, str] = {}
    for doc in production:
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].startswith("sada-env"):
            env.update(doc.get("data", {}))
    told = env.get("SADA_INTAKE_REPLICAS", "1")
    if told != str(replicas):
        yield (
            f"k8s production: SADA_INTAKE_REPLICAS={told} but sada-intake runs {replicas} "
            "replicas (each admits the rate limit ÷ SADA_INTAKE_REPLICAS)"
        )


def check_prometheus() -> Iterator[str]:
    """Both scrape configs name every service on its port."""
    for file, host in (("prometheus.yml", None), ("prometheus.local.yml", "127.0.0.1")):
        config = yaml.safe_load((ROOT / "deploy" / "prometheus" / file).read_text("utf-8"))
        jobs = {
            job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
            for job in config["scrape_configs"]
        }
        for name, port in SERVICES.items():
            want = f"{host or name}:{port}"
            if jobs.get(name) != [want]:
                yield f"deploy/prometheus/{file}: job {name} scrapes {jobs.get(name)}, want {want}"


def defined_metrics() -> set[str]:
    """Every `sada_*` string literal in the code: the metric names it can expose."""
    names: set[str] = set()
    for folder in ("shared", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(re.findall(r"[\"'](sada_[a-z0-9_]+)[\"']", path.read_text("utf-8")))
    return names


def used_metrics() -> set[str]:
    """Every `sada_*` metric name in the alert rules and the dashboard."""
    text = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text("utf-8")
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "sada.json").read_text())
    exprs = [
        target.get("expr", "")
        for panel in dashboard.get("panels", [])
        for target in panel.get("targets", [])
    ]
    return set(re.findall(r"\b(sada_[a-z0-9_]+)", text + "\n".join(exprs)))


def check_metrics() -> Iterator[str]:
    """The alerts and the dashboard only use metrics the code defines (or pending ones)."""
    defined = defined_metrics()
    for used in sorted(used_metrics()):
        bases = {used} | {used.removesuffix(s) for s in METRIC_SUFFIXES if used.endswith(s)}
        candidates = bases | {b + "_total" for b in bases}
        if candidates & defined:
            continue
        if bases & PENDING_METRICS:
            print(f"note: {used} is not defined yet (PENDING_METRICS in {Path(__file__).name})")
            continue
        yield f"metric {used} is used by the alerts or the dashboard but defined nowhere"
    for pending in sorted(PENDING_METRICS & defined):
        print(f"note: {pending} now exists: remove it from PENDING_METRICS")


def check_config_map() -> Iterator[str]:
    """Every config file the services read reaches Kubernetes (local-only files excepted)."""
    folder = ROOT / "deploy" / "config"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text("utf-8"))
    listed = {f for g in kustomization["configMapGenerator"] for f in g.get("files", [])}
    present = {
        p.name
        for p in folder.glob("*.yaml")
        if p.name != "kustomization.yaml" and not p.name.endswith(".local.yaml")
    }
    for name in sorted(present - listed):
        yield f"deploy/config/{name} is not in the ConfigMap (deploy/config/kustomization.yaml)"


def check_production_transport(production: list[dict[str, Any]]) -> Iterator[str]:
    """The production overlay runs Kafka over SASL_SSL and never uses the insecure override."""
    env: dict[str, Any] = {}
    for doc in production:
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].startswith("sada-env"):
            env |= doc.get("data", {})
    for deployment in deployments(production).values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            env |= {e["name"]: e.get("value") for e in container.get("env", [])}
    if env.get("SADA_KAFKA__SECURITY_PROTOCOL") != "SASL_SSL":
        yield "k8s production: SADA_KAFKA__SECURITY_PROTOCOL is not SASL_SSL"
    if "SADA_ALLOW_INSECURE_TRANSPORT" in env:
        yield "k8s production: sets SADA_ALLOW_INSECURE_TRANSPORT (only for a private network)"


def check_grafana(compose: dict[str, Any]) -> Iterator[str]:
    """The dashboards provider reads the folder compose mounts the JSON into."""
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/sada.yaml").read_text("utf-8")
    )["providers"][0]
    mounts = {v.get("target") for v in compose["services"]["grafana"].get("volumes", [])}
    if provider["options"]["path"] not in mounts:
        yield f"grafana provider path {provider['options']['path']} is not mounted in compose"


def main(argv: list[str]) -> int:
    """Run every check; print the findings; 1 if there are any."""
    compose_json, base_yaml, production_yaml = (Path(a) for a in argv[1:4])
    compose = json.loads(compose_json.read_text("utf-8"))
    per_topic = topic_partitions()
    counts = set(per_topic.values())
    partitions = max(counts)
    production = load_yaml_docs(production_yaml)
    findings = [
        *check_topic_spec(per_topic),
        *check_services(),
        *(
            [f"deploy/config/topics.yaml: partition counts differ {sorted(counts)}; one per group"]
            if len(counts) > 1
            else []
        ),
        *check_compose(compose),
        *check_k8s(load_yaml_docs(base_yaml), production, partitions),
        *check_intake_replicas(production),
        *check_production_transport(production),
        *check_prometheus(),
        *check_metrics(),
        *check_config_map(),
        *check_grafana(compose),
    ]
    for finding in findings:
        print(f"FAIL: {finding}")
    if not findings:
        print(
            "consistent: topics.yaml = shared/topics.py, production replicas ="
            f" {partitions} partitions,"
            " ports, scrape targets, metric names, production over SASL_SSL"
        )
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
