"""Each Kubernetes probe points at the endpoint with the meaning it needs; the app serves it."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi.routing import APIRoute
from faststream.kafka import KafkaBroker

from shared.http import create_app
from shared.settings import KafkaSettings
from tests.infra import ROOT


def _container() -> dict[str, Any]:
    path = ROOT / "deploy" / "k8s" / "base" / "pod-defaults.yaml"
    pod = yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]["template"]["spec"]
    container: dict[str, Any] = pod["containers"][0]
    return container


def _served_paths() -> set[str]:
    app = create_app(service="probe", version="0", broker=KafkaBroker())
    return {route.path for route in app.routes if isinstance(route, APIRoute)}


def test_each_probe_has_its_own_endpoint_and_the_app_serves_it() -> None:
    container = _container()
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths == {
        "startupProbe": "/health/startup",
        "readinessProbe": "/health/ready",
        "livenessProbe": "/health/live",
    }
    assert set(paths.values()) <= _served_paths()


def test_a_held_batch_rewinds_long_before_liveness_would_fail() -> None:
    # During an outage a batch is retried for hold_seconds, then rewound and polled again; the
    # liveness limit is the consumer's max.poll.interval, well beyond.
    kafka = KafkaSettings()
    assert kafka.hold_seconds * 3 <= kafka.max_poll_interval_seconds
