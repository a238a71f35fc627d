"""The router app wired with FastStream's in-memory broker: accepted in, routed out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.router.app import build
from services.router.settings import RouterSettings
from shared import events, ids, topics
from shared.config import ConfigError
from tests.router_support import EXPECTED, accepted, samples

ACCEPTED, ROUTED = "test.router.accepted", "test.router.routed"


def settings(**overrides: object) -> RouterSettings:
    return RouterSettings.model_validate(
        {"accepted_topic": ACCEPTED, "routed_topic": ROUTED, **overrides}
    )


class Wired:
    """The app's broker under test, with sinks on the routed and dead-letter topics."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self.routed: list[events.SubmissionRouted] = []
        self.deadletters: list[events.MessageDeadLettered] = []

        @broker.subscriber(ROUTED)
        async def on_routed(body: dict[str, Any]) -> None:
            self.routed.append(events.SubmissionRouted.model_validate(body))

        @broker.subscriber(topics.DEADLETTER)
        async def on_dead(body: dict[str, Any]) -> None:
            self.deadletters.append(events.MessageDeadLettered.model_validate(body))


@pytest.fixture
async def wired() -> AsyncIterator[Wired]:
    app = build(settings())
    result = Wired(app.state.broker)
    async with TestKafkaBroker(app.state.broker):
        yield result


async def test_accepted_samples_are_routed_to_their_units_with_explanation(wired: Wired) -> None:
    subs = samples()
    for sub in subs:
        await wired.broker.publish(
            accepted(sub, correlation_id=f"c-{sub.submission_id}").model_dump_json().encode(),
            ACCEPTED,
            key=sub.submission_id.encode(),
        )
    assert len(wired.routed) == len(subs)
    version = build(settings()).state.routing.version
    for line, (sub, routed) in enumerate(zip(subs, wired.routed, strict=True), start=1):
        decision = routed.payload.decision
        assert (decision.unit, decision.rule_id) == EXPECTED[line]
        assert decision.reason
        assert routed.submission_id == sub.submission_id
        assert routed.correlation_id == f"c-{sub.submission_id}"
        upstream = accepted(sub).event_id
        assert routed.event_id == ids.event_id(
            sub.submission_id, "submission.routed", f"{version}:{upstream}"
        )
        assert routed.producer.service == "router"
    assert wired.deadletters == []


async def test_a_malformed_accepted_event_is_dead_lettered_and_the_rest_routed(
    wired: Wired,
) -> None:
    await wired.broker.publish(b'{"event_type": "submission.accepted"}', ACCEPTED, key=b"k-1")
    await wired.broker.publish(accepted(samples()[0]).model_dump_json().encode(), ACCEPTED)
    assert len(wired.deadletters) == 1
    dead = wired.deadletters[0].payload
    assert (dead.service, dead.source.topic) == ("router", ACCEPTED)
    assert dead.error.startswith("ValidationError")
    assert dead.key == "k-1"  # kept, so `sada deadletter redrive` can restore it
    assert [r.payload.decision.rule_id for r in wired.routed] == ["legislation-reference"]


async def test_the_rules_endpoint_shows_the_version_in_force() -> None:
    app = build(settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        response = await client.get("/v1/rules")
    assert response.status_code == 200
    body = response.json()
    assert body["rules_version"] == app.state.routing.version
    assert [rule["id"] for rule in body["rules"]][-1] == "default"


def test_the_app_refuses_to_build_with_an_invalid_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "routing.yaml"
    rules.write_text("rules:\n  - {id: a, unit: legal_dept}\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        build(settings(rules_path=rules))
    assert str(caught.value).startswith(f"{rules}:2: rules.0.unit")


def test_main_exits_with_the_config_error_and_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.router import app as router_app

    rules = tmp_path / "routing.yaml"
    rules.write_text("rules:\n  - {id: a, when: {kind_in: [idea]}, unit: voice_of_customer}\n")
    monkeypatch.setenv("SADA_RULES_PATH", str(rules))
    with pytest.raises(SystemExit) as caught:
        router_app.main()
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"{rules}:2: the last rule must be an unconditional default" in err
    assert "Traceback" not in err
