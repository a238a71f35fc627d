"""Intake's API keys, its rate limit shared among replicas, and its Kafka header parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka.message import KafkaAckableMessage
from faststream.kafka.parser import AioKafkaBatchParser

from services.intake import apikeys
from services.intake.apikeys import hash_key
from services.intake.handlers import tolerant_batch_parser
from services.intake.ratelimit import replica_budget
from services.intake.settings import LOCAL_API_KEYS_FILE, IntakeSettings
from shared.config import ConfigError
from shared.directory import load_channels

CHANNELS = frozenset(load_channels())


def test_local_mode_without_keys_uses_the_documented_demo_keys() -> None:
    keys = apikeys.load(IntakeSettings(environment="local"), CHANNELS)
    assert keys.channel_for("local-istitlaa-key") == "istitlaa"
    assert keys.channel_for("local-email-key") == "email"
    assert keys.channel_for("local-nothing-key") is None
    assert len(keys) == len(CHANNELS)


def test_configured_keys_replace_the_demo_keys_and_are_looked_up_by_hash() -> None:
    settings = IntakeSettings(environment="local", api_keys={"survey": [hash_key("s3cr3t")]})
    keys = apikeys.load(settings, CHANNELS)
    assert keys.channel_for("s3cr3t") == "survey"
    assert keys.channel_for("local-survey-key") is None


def test_keys_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = hash_key("from-env")
    monkeypatch.setenv("SADA_INTAKE_API_KEYS", f'{{"istitlaa": ["{digest.upper()}"]}}')
    keys = apikeys.load(
        IntakeSettings(environment="production", allow_insecure_transport=True), CHANNELS
    )
    assert keys.channel_for("from-env") == "istitlaa"


def test_keys_file_is_merged_and_its_errors_name_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "keys.yaml"
    good.write_text(f"api_keys:\n  email: [{hash_key('file-key')}]\n")
    settings = IntakeSettings(
        environment="production",
        allow_insecure_transport=True,
        api_keys={"survey": [hash_key("env-key")]},
        api_keys_file=good,
    )
    keys = apikeys.load(settings, CHANNELS)
    assert (keys.channel_for("file-key"), keys.channel_for("env-key")) == ("email", "survey")

    bad = tmp_path / "bad.yaml"
    bad.write_text("api_keys:\n  email:\n    - not-a-hash\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3: api_keys\.email\.0"):
        apikeys.load(
            IntakeSettings(
                environment="production", allow_insecure_transport=True, api_keys_file=bad
            ),
            CHANNELS,
        )


@pytest.mark.parametrize("key", ["local-istitlaa-key", "changeme", "secret"])
def test_default_or_demo_keys_are_refused_outside_local_mode(key: str) -> None:
    settings = IntakeSettings(
        environment="production",
        allow_insecure_transport=True,
        api_keys={"istitlaa": [hash_key(key)]},
    )
    with pytest.raises(ValueError, match="obvious default or a local demo key"):
        apikeys.load(settings, CHANNELS)


def test_the_demo_keys_file_is_refused_outside_local_mode() -> None:
    settings = IntakeSettings(environment="test", api_keys_file=LOCAL_API_KEYS_FILE)
    with pytest.raises(ValueError, match="local demo key"):
        apikeys.load(settings, CHANNELS)


def test_outside_local_mode_no_keys_means_no_demo_keys() -> None:
    keys = apikeys.load(
        IntakeSettings(environment="production", allow_insecure_transport=True), CHANNELS
    )
    assert keys.channel_for("local-istitlaa-key") is None
    assert len(keys) == 0


def test_keys_for_an_unregistered_channel_or_shared_by_two_channels_are_refused() -> None:
    with pytest.raises(ValueError, match="unregistered channel 'telegram'"):
        apikeys.load(IntakeSettings(api_keys={"telegram": [hash_key("k")]}), CHANNELS)
    shared = hash_key("shared")
    with pytest.raises(ValueError, match="two channels"):
        apikeys.load(IntakeSettings(api_keys={"email": [shared], "survey": [shared]}), CHANNELS)


def _record(offset: int, headers: list[tuple[str, bytes | None]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=headers,
    )


async def test_the_tolerant_parser_survives_binary_and_null_header_values() -> None:
    records = (
        _record(0, [("content-type", b"application/json")]),
        _record(1, [("trace", b"\xff\xfe\x00binary"), ("empty", None)]),
    )
    default = AioKafkaBatchParser(msg_class=KafkaAckableMessage, regex=None)
    with pytest.raises((UnicodeDecodeError, AttributeError)):
        await default.parse_batch(records)  # what FastStream alone would do to the batch

    message = await tolerant_batch_parser(records, default.parse_batch)
    assert message.body == [b"{}", b"{}"]
    assert [r.offset for r in message.raw_message] == [0, 1]
    assert message.batch_headers[1] == {"trace": "\ufffd\ufffd\x00binary", "empty": ""}
    assert message.raw_message[0] is records[0]  # clean records are passed through untouched


@pytest.mark.parametrize(
    ("limit", "replicas", "share"),
    [
        ("3000/minute", 3, "1000 per 1 minute"),
        ("10/second", 3, "3 per 1 second"),
        ("100/2 minutes", 2, "50 per 2 minute"),
        ("7/hour", 1, "7 per 1 hour"),
    ],
)
def test_each_replica_gets_its_share_of_the_rate_limit_rounded_down(
    limit: str, replicas: int, share: str
) -> None:
    assert str(replica_budget(limit, replicas)) == share


def test_a_rate_limit_too_small_to_share_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="SADA_INTAKE_REPLICAS"):
        replica_budget("2/minute", 3)
