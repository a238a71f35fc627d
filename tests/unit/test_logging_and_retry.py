import errno

import aiosmtplib
from aiokafka import errors as kafka_errors
from pymongo import errors as mongo_errors

from shared.logging import scrub_personal_data, scrub_text
from shared.retry import (
    DeadLetterUnavailableError,
    Failure,
    TransientError,
    classify,
    is_transient,
)


def test_scrubber_redacts_personal_keys_and_masks_patterns() -> None:
    scrubbed = scrub_personal_data(
        None,
        "info",
        {
            "event": "handled",
            "email": "a.harbi@example.sa",
            "name": "عبدالله الحربي",
            "note": "call +966 500 000 001 or write to x.y@example.com, id 1012345678",
            "channel": "istitlaa",
        },
    )
    assert scrubbed["email"] == "[redacted]"
    assert scrubbed["name"] == "[redacted]"
    assert "example.com" not in scrubbed["note"]
    assert "500" not in scrubbed["note"]
    assert "1012345678" not in scrubbed["note"]
    assert scrubbed["channel"] == "istitlaa"


def test_scrub_text_keeps_short_numbers_like_article_numbers() -> None:
    assert scrub_text("المادة 12 من مشروع نظام 2026") == "المادة 12 من مشروع نظام 2026"


def test_infrastructure_failures_are_transient() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert is_transient(TransientError("smtp busy"))
    assert is_transient(kafka_errors.KafkaTimeoutError())
    assert is_transient(mongo_errors.ServerSelectionTimeoutError("down"))
    assert is_transient(mongo_errors.AutoReconnect("down"))
    assert is_transient(aiosmtplib.SMTPResponseException(451, "try later"))


def test_message_faults_are_not_transient() -> None:
    assert not is_transient(ValueError("bad payload"))
    assert not is_transient(KeyError("field"))
    assert not is_transient(aiosmtplib.SMTPResponseException(550, "no such mailbox"))
    assert not is_transient(mongo_errors.DuplicateKeyError("dup"))


def test_scrubber_leaves_timestamps_and_dates_alone() -> None:
    scrubbed = scrub_personal_data(
        None, "info", {"timestamp": "2026-11-30T05:52:09.123456Z", "note": "due 2026-11-30"}
    )
    assert scrubbed["timestamp"] == "2026-11-30T05:52:09.123456Z"
    assert scrubbed["note"] == "due 2026-11-30"


def test_failures_are_classified_transient_system_wide_or_per_message() -> None:
    system_wide = [
        mongo_errors.OperationFailure("Authentication failed.", code=18),
        mongo_errors.OperationFailure("requires authentication", code=13),
        mongo_errors.OperationFailure("out of disk space", code=14031),
        kafka_errors.TopicAuthorizationFailedError(),
        kafka_errors.GroupAuthorizationFailedError(),
        kafka_errors.ClusterAuthorizationFailedError(),
        aiosmtplib.SMTPAuthenticationError(535, "bad credentials"),
        OSError(errno.ENOSPC, "No space left on device"),
        DeadLetterUnavailableError("feedback.deadletter.v1 not writable"),
    ]
    assert {classify(exc) for exc in system_wide} == {Failure.SYSTEM_WIDE}
    assert all(is_transient(exc) for exc in system_wide)  # retried, never dead-lettered
    assert classify(mongo_errors.AutoReconnect("down")) is Failure.TRANSIENT
    assert classify(mongo_errors.OperationFailure("bad $ operator", code=2)) is Failure.MESSAGE
    assert classify(ValueError("bad payload")) is Failure.MESSAGE


def test_a_command_cut_off_by_a_ferretdb_shutdown_is_transient_other_internal_errors_not() -> None:
    cut_off = mongo_errors.OperationFailure(
        "[msg_insert.go:168 handler.(*Handler).MsgInsert] [db.go:134 fsql.(*DB).InTransaction] "
        "context canceled",
        code=1,
    )
    assert classify(cut_off) is Failure.TRANSIENT
    assert not is_transient(mongo_errors.OperationFailure("document too large", code=1))
