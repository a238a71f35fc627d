"""Intake wired with FastStream's TestKafkaBroker: the Kafka door and the HTTP door."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaAckableMessage
from prometheus_client import REGISTRY

from services.intake.apikeys import hash_key
from services.intake.app import build
from services.intake.settings import IntakeSettings
from shared import topics
from shared.config import ConfigError
from shared.events import SubmissionAccepted, SubmissionRejected
from shared.models import MAX_MESSAGE_BYTES
from shared.settings import KafkaSettings

KEYS = {"istitlaa": "key-istitlaa-1", "email": "key-email-1"}
GOOD = {
    "channel": "istitlaa",
    "channel_ref": "IST-C-1",
    "kind": "opinion",
    "legislation_ref": "MOJ-DRAFT-2026-003",
    "body": "أرى أن تمديد المدة يحقق العدالة.",
    "submitter": {"name": "سارة القحطاني", "email": "sara@example.sa"},
    "submitted_at": "2026-11-25T10:00:00+03:00",
}


def submission(**changes: Any) -> bytes:
    return orjson.dumps({**GOOD, **changes})


@dataclass
class Intake:
    """The app under test and what it published."""

    broker: KafkaBroker
    http: httpx.AsyncClient
    accepted: list[SubmissionAccepted] = field(default_factory=list)
    rejected: list[SubmissionRejected] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)


def settings(**overrides: Any) -> IntakeSettings:
    return IntakeSettings(
        environment="test",
        api_keys={channel: (hash_key(key),) for channel, key in KEYS.items()},
        **overrides,
    )


@pytest.fixture
async def intake(request: pytest.FixtureRequest) -> AsyncIterator[Intake]:
    overrides = getattr(request, "param", {})
    app = build(settings(**overrides))
    broker: KafkaBroker = app.state.broker
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://intake")
    seen = Intake(broker=broker, http=client)

    @broker.subscriber(topics.ACCEPTED, group_id="test-capture")
    async def on_accepted(_body: Any, msg: KafkaMessage) -> None:
        seen.accepted.append(SubmissionAccepted.model_validate_json(msg.body))
        seen.keys.append(msg.raw_message.key)  # type: ignore[union-attr]

    @broker.subscriber(topics.REJECTED, group_id="test-capture")
    async def on_rejected(_body: Any, msg: KafkaMessage) -> None:
        seen.rejected.append(SubmissionRejected.model_validate_json(msg.body))

    async with TestKafkaBroker(broker, connect_only=False), client:
        yield seen


def auth(channel: str = "istitlaa") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[channel]}"}


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- Kafka door -----------------------------------------------------------------------------


async def test_a_raw_submission_on_kafka_becomes_an_accepted_event(intake: Intake) -> None:
    before = counter("sada_intake_accepted_total", door="kafka", channel="istitlaa", kind="opinion")
    await intake.broker.publish(submission(), topics.SUBMISSIONS)

    assert len(intake.accepted) == 1
    event = intake.accepted[0]
    assert event.payload.door == "kafka"
    assert event.payload.source is not None
    assert event.payload.source.topic == topics.SUBMISSIONS
    assert event.payload.submission.channel_ref == "IST-C-1"
    assert event.payload.submission.language == "ar"
    assert intake.keys == [event.submission_id.encode()]
    assert not intake.rejected
    after = counter("sada_intake_accepted_total", door="kafka", channel="istitlaa", kind="opinion")
    assert after == before + 1


async def test_garbage_in_a_batch_is_rejected_and_the_good_message_behind_it_flows(
    intake: Intake,
) -> None:
    garbage = b"\xff\xfe{not json"
    await intake.broker.publish_batch(garbage, b"[]", submission(), topic=topics.SUBMISSIONS)

    assert [e.payload.submission.channel_ref for e in intake.accepted] == ["IST-C-1"]
    codes = [[r.code for r in e.payload.reasons] for e in intake.rejected]
    assert codes == [["invalid_utf8"], ["not_an_object"]]
    first = intake.rejected[0].payload
    assert first.raw_size_bytes == len(garbage)
    assert first.raw == garbage.decode("utf-8", "replace")
    assert first.door == "kafka"


async def test_a_rejection_names_every_reason_and_is_filed_under_the_submission_id(
    intake: Intake,
) -> None:
    await intake.broker.publish(submission(kind="complaint", body=5), topics.SUBMISSIONS)
    await intake.broker.publish(submission(), topics.SUBMISSIONS)

    rejection = intake.rejected[0]
    assert {(r.code, r.field) for r in rejection.payload.reasons} == {
        ("invalid_value", "kind"),
        ("invalid_type", "body"),
    }
    assert rejection.payload.channel == "istitlaa"
    assert rejection.submission_id == intake.accepted[0].submission_id


async def test_a_redelivered_message_yields_the_same_event(intake: Intake) -> None:
    await intake.broker.publish(submission(), topics.SUBMISSIONS)
    await intake.broker.publish(submission(), topics.SUBMISSIONS)
    first, again = intake.accepted
    assert first.event_id == again.event_id
    assert first.payload.submission == again.payload.submission.model_copy(
        update={"received_at": first.payload.submission.received_at}
    )


@pytest.mark.parametrize("intake", [{"kafka": KafkaSettings(hold_seconds=5)}], indirect=True)
async def test_the_batch_is_committed_only_after_kafka_acknowledged_its_events(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    publish = intake.broker.publish

    async def flaky_publish(*args: Any, **kwargs: Any) -> Any:
        if steps.count("broker unavailable") < 2:
            steps.append("broker unavailable")
            raise KafkaTimeoutError
        steps.append("event acknowledged")
        return await publish(*args, **kwargs)

    async def ack(_message: KafkaAckableMessage) -> None:
        steps.append("offset committed")

    monkeypatch.setattr(KafkaAckableMessage, "ack", ack)
    monkeypatch.setattr(intake.broker, "publish", flaky_publish)
    await publish(submission(), topics.SUBMISSIONS)  # the upstream channel, unaffected

    assert steps == [
        "broker unavailable",
        "broker unavailable",
        "event acknowledged",
        "offset committed",
    ]
    assert len(intake.accepted) == 1


# --- HTTP door ------------------------------------------------------------------------------


async def test_http_202_only_carries_the_ids_and_the_event_is_on_the_accepted_topic(
    intake: Intake,
) -> None:
    response = await intake.http.post("/v1/submissions", content=submission(), headers=auth())

    assert response.status_code == 202
    body = response.json()
    assert body.keys() == {"submission_id", "reference"}
    event = intake.accepted[0]
    assert (event.submission_id, event.reference) == (body["submission_id"], body["reference"])
    assert event.payload.door == "http"
    assert event.payload.source is None


async def test_resubmission_gives_the_same_ids_over_http_and_kafka(intake: Intake) -> None:
    first = (await intake.http.post("/v1/submissions", content=submission(), headers=auth())).json()
    edited = submission(body="نص معدّل بعد الإرسال")
    again = (await intake.http.post("/v1/submissions", content=edited, headers=auth())).json()
    await intake.broker.publish(submission(), topics.SUBMISSIONS)

    assert first == again
    assert {e.submission_id for e in intake.accepted} == {first["submission_id"]}
    assert {e.reference for e in intake.accepted} == {first["reference"]}


async def test_http_422_lists_the_reasons_records_the_rejection_and_echoes_nothing(
    intake: Intake,
) -> None:
    raw = submission(submitter={"email": "sara.secret@@example", "phone": "+966-secret"})
    response = await intake.http.post("/v1/submissions", content=raw, headers=auth())

    assert response.status_code == 422
    body = response.json()
    assert body["rejected"] is True
    assert {(r["code"], r["field"]) for r in body["reasons"]} == {
        ("invalid_email", "submitter.email"),
        ("invalid_phone", "submitter.phone"),
    }
    assert "secret" not in response.text
    assert "سارة" not in response.text
    assert len(intake.rejected) == 1
    assert intake.rejected[0].payload.door == "http"
    assert intake.rejected[0].submission_id == body["submission_id"]


async def test_http_garbage_is_a_422_and_is_recorded(intake: Intake) -> None:
    response = await intake.http.post("/v1/submissions", content=b"\x00\xff", headers=auth())
    assert response.status_code == 422
    assert [r["code"] for r in response.json()["reasons"]] == ["invalid_utf8"]
    assert len(intake.rejected) == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic a2V5"}, {"X-Api-Key": ""}],
)
async def test_http_401_without_a_valid_key_and_nothing_published(
    intake: Intake, headers: dict[str, str]
) -> None:
    response = await intake.http.post("/v1/submissions", content=submission(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert not intake.accepted
    assert not intake.rejected


async def test_http_accepts_the_key_in_x_api_key(intake: Intake) -> None:
    headers = {"X-Api-Key": KEYS["istitlaa"]}
    response = await intake.http.post("/v1/submissions", content=submission(), headers=headers)
    assert response.status_code == 202


async def test_http_403_when_a_key_submits_for_another_channel(intake: Intake) -> None:
    response = await intake.http.post(
        "/v1/submissions", content=submission(), headers=auth("email")
    )
    assert response.status_code == 403
    assert not intake.accepted
    assert not intake.rejected


async def test_http_413_by_content_length_and_by_streamed_body(intake: Intake) -> None:
    big = submission(body="x" * MAX_MESSAGE_BYTES)
    response = await intake.http.post("/v1/submissions", content=big, headers=auth())
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to trust
        for _ in range(100):
            yield b" " * 10_000

    response = await intake.http.post("/v1/submissions", content=chunks(), headers=auth())
    assert response.status_code == 413
    assert not intake.accepted
    assert not intake.rejected


@pytest.mark.parametrize("intake", [{"rate_limit": "2/minute"}], indirect=True)
async def test_http_429_with_retry_after_over_the_key_rate_limit(intake: Intake) -> None:
    for _ in range(2):
        ok = await intake.http.post("/v1/submissions", content=submission(), headers=auth())
        assert ok.status_code == 202
    limited = await intake.http.post("/v1/submissions", content=submission(), headers=auth())
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    other_key = await intake.http.post(
        "/v1/submissions", content=submission(channel="email"), headers=auth("email")
    )
    assert other_key.status_code == 202


async def test_http_503_when_kafka_does_not_acknowledge(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*_args: Any, **_kwargs: Any) -> None:
        raise KafkaTimeoutError

    monkeypatch.setattr(intake.broker, "publish", unavailable)
    response = await intake.http.post("/v1/submissions", content=submission(), headers=auth())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert not intake.accepted


async def test_http_metrics_are_labelled_by_route_template_and_status(intake: Intake) -> None:
    labels = {"method": "POST", "route": "/v1/submissions", "status": "202"}
    before = counter("sada_intake_http_request_duration_seconds_count", **labels)
    await intake.http.post("/v1/submissions", content=submission(), headers=auth())
    await intake.http.get("/no/such/path/with-personal-data@example.com")
    after = counter("sada_intake_http_request_duration_seconds_count", **labels)
    assert after == before + 1

    metrics = (await intake.http.get("/metrics")).text
    assert 'route="unmatched",status="404"' in metrics
    assert "example.com" not in metrics
    assert 'sada_intake_accepted_total{channel="istitlaa",door="http",kind="opinion"}' in metrics


async def test_rejection_metrics_count_reason_codes_with_bounded_channel_labels(
    intake: Intake,
) -> None:
    labels = {"door": "kafka", "channel": "unknown", "code": "unknown_channel"}
    before = counter("sada_intake_rejection_reasons_total", **labels)
    await intake.broker.publish(submission(channel="free text channel"), topics.SUBMISSIONS)
    assert counter("sada_intake_rejection_reasons_total", **labels) == before + 1


async def test_openapi_documents_the_submission_route_and_its_body(intake: Intake) -> None:
    docs = await intake.http.get("/docs")
    assert docs.status_code == 200
    spec = (await intake.http.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/submissions"]["post"]
    assert set(operation["responses"]) >= {"202", "401", "403", "413", "422", "429", "503"}
    schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref == "#/components/schemas/RawSubmission"
    components = spec["components"]["schemas"]
    assert {"RawSubmission", "Answer", "Submitter", "Attachment"} <= set(components)


# --- consultations: both doors, same rules ---------------------------------------------------

ANSWERS = [
    {"question_id": "article_12", "answer": "support"},
    {"question_id": "clarity", "answer": "4"},
]
CLOSED = datetime(2026, 11, 30, 20, 59, 59, tzinfo=UTC)
CONSULTATION_REJECTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "consultation_not_open": (
        {"legislation_ref": "MOJ-DRAFT-2027-002"},
        "legislation_ref",
    ),
    "unknown_question": (
        {"answers": [*ANSWERS, {"question_id": "q9", "answer": "نعم"}]},
        "answers.2.question_id",
    ),
    "duplicate_answer": (
        {"answers": [*ANSWERS, {"question_id": "clarity", "answer": "5"}]},
        "answers.2.question_id",
    ),
    "missing_required_answer": ({"answers": ANSWERS[:1]}, "answers"),
    "invalid_choice": (
        {"answers": [{"question_id": "article_12", "answer": "maybe"}, ANSWERS[1]]},
        "answers.0.answer",
    ),
    "not_a_number": (
        {"answers": [ANSWERS[0], {"question_id": "clarity", "answer": "four"}]},
        "answers.1.answer",
    ),
    "answer_out_of_range": (
        {"answers": [ANSWERS[0], {"question_id": "clarity", "answer": "9"}]},
        "answers.1.answer",
    ),
}


@pytest.mark.parametrize("door", ["kafka", "http"])
@pytest.mark.parametrize("code", sorted(CONSULTATION_REJECTIONS))
async def test_each_consultation_reason_is_given_by_both_doors(
    intake: Intake, door: str, code: str
) -> None:
    changes, field_path = CONSULTATION_REJECTIONS[code]
    raw = submission(**changes)
    if door == "kafka":
        await intake.broker.publish(raw, topics.SUBMISSIONS)
        reasons = [(r.code, r.field) for r in intake.rejected[0].payload.reasons]
    else:
        response = await intake.http.post("/v1/submissions", content=raw, headers=auth())
        assert response.status_code == 422
        reasons = [(r["code"], r["field"]) for r in response.json()["reasons"]]
        assert [(r.code, r.field) for r in intake.rejected[0].payload.reasons] == reasons
    assert reasons == [(code, field_path)]
    assert not intake.accepted


@pytest.mark.parametrize("door", ["kafka", "http"])
@pytest.mark.parametrize(
    ("changes", "mark"),
    [
        ({"answers": ANSWERS}, {"registered": True, "late": False, "closes_at": None}),
        (
            {"legislation_ref": "MOJ-DRAFT-2026-007", "submitted_at": "2026-12-01T08:00:00+03:00"},
            {"registered": True, "late": True, "closes_at": CLOSED},
        ),
        (
            {"legislation_ref": "MOJ-DRAFT-2026-999"},
            {"registered": False, "late": False, "closes_at": None},
        ),
        ({"legislation_ref": None}, None),
    ],
    ids=["in-time", "late", "unregistered", "no-ref"],
)
async def test_both_doors_accept_with_the_same_consultation_mark(
    intake: Intake, door: str, changes: dict[str, Any], mark: dict[str, bool] | None
) -> None:
    raw = submission(**changes)
    if door == "kafka":
        await intake.broker.publish(raw, topics.SUBMISSIONS)
    else:
        response = await intake.http.post("/v1/submissions", content=raw, headers=auth())
        assert response.status_code == 202
    consultation = intake.accepted[0].payload.submission.consultation
    assert (consultation.model_dump() if consultation else None) == mark


async def test_an_invalid_registry_stops_intake_from_starting(tmp_path: Any) -> None:
    bad = tmp_path / "consultations.yaml"
    bad.write_text("consultations:\n  - ref: X\n    title_ar: س\n", "utf-8")
    with pytest.raises(ConfigError, match=r"consultations.yaml:2: consultations.0.title_en"):
        build(settings(consultations_path=bad))
