"""The README's worked examples for channel integrators say what the contract says."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson

from deploy import contracts
from services.intake.apikeys import ApiKeysFile, hash_key
from services.intake.settings import LOCAL_API_KEYS_FILE, IntakeSettings
from services.intake.validation import Accepted, validate
from shared import config, topics
from shared.directory import load_channels
from tests import channel_examples as examples

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def accepted(raw: bytes) -> Accepted:
    result = validate(raw, channels=load_channels(), now=NOW)
    assert isinstance(result, Accepted), getattr(result, "reasons", result)
    return result


def test_the_kafka_example_sends_a_valid_submission_to_the_raw_topic_with_acks_all() -> None:
    submission = examples.kafka_submission()
    accepted(orjson.dumps(submission))
    producer = examples.call_keywords("AIOKafkaProducer")
    assert producer["acks"] == "'all'"
    assert producer["enable_idempotence"] == "True"
    topic, _value = examples.call_arguments("send_and_wait")
    assert topic == repr(topics.SUBMISSIONS)
    sent = examples.call_keywords("send_and_wait")
    assert sent["key"] == repr(f"{submission['channel']}/{submission['channel_ref']}".encode())
    assert sent["headers"] == "[('content-type', b'application/json')]"


def test_the_curl_example_posts_a_valid_submission_with_the_documented_key_header() -> None:
    request = examples.curl()
    intake = json.loads(contracts.openapi_path("intake").read_text(encoding="utf-8"))
    assert request.method == "POST"
    assert "post" in intake["paths"][request.path]
    key_headers = {
        scheme["name"]
        for scheme in intake["components"]["securitySchemes"].values()
        if scheme["type"] == "apiKey" and scheme["in"] == "header"
    }
    assert key_headers == {"X-Api-Key"}
    used = key_headers & set(request.headers)
    assert used, f"the curl example sends none of the API's key headers {sorted(key_headers)}"
    (key_header,) = used
    with contracts.local_defaults():
        assert request.port == IntakeSettings().http_port

    result = accepted(request.body)
    demo_keys = config.load(LOCAL_API_KEYS_FILE, ApiKeysFile).api_keys
    assert hash_key(request.headers[key_header]) in demo_keys[result.submission.channel]
    assert request.headers["Content-Type"] == "application/json"


def test_the_answer_shown_for_the_curl_example_is_the_one_intake_gives() -> None:
    submission = accepted(examples.curl().body).submission
    assert examples.http_answer() == {
        "submission_id": submission.submission_id,
        "reference": submission.reference,
    }
