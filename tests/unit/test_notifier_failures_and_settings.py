"""What an SMTP failure means, the ledger's documents, and the notifier's settings checks."""

from __future__ import annotations

from datetime import UTC, datetime

import aiosmtplib
import pytest
from pydantic import SecretStr, ValidationError

from services.notifier.delivery import retry_kind
from services.notifier.ledger import LedgerEntry, from_document, to_document
from services.notifier.mailer import DeferredError, RefusedError, SmtpMailer, classify
from services.notifier.settings import NotifierSettings, SmtpSettings
from shared.retry import TransientError, is_transient


def _refused(*codes: int) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [
            aiosmtplib.SMTPRecipientRefused(code, "reply", f"r{i}@x.org")
            for i, code in enumerate(codes)
        ]
    )


def test_an_unknown_mailbox_is_a_permanent_refusal_with_the_reply() -> None:
    meaning = classify(_refused(550))
    assert isinstance(meaning, RefusedError)
    assert (meaning.code, meaning.reply) == (550, "reply")


def _refused_with(code: int, reply: str) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(code, reply, "voc@moj.gov.sa")]
    )


@pytest.mark.parametrize(
    ("code", "reply"),
    [
        (452, "4.2.2 Mailbox full"),
        (450, "4.2.1 Mailbox busy"),
        (451, "4.7.1 Greylisted, try again later"),
        (451, "reply"),  # no enhanced status: a refusal at RCPT concerns the recipient
    ],
)
def test_a_recipient_refused_for_now_is_deferred_not_transient(code: int, reply: str) -> None:
    # aiosmtplib raises SMTPRecipientsRefused (not an SMTPResponseException) when the only
    # recipient is refused, so the 4xx must be recognised inside it; the batch must not wait.
    meaning = classify(_refused_with(code, reply))
    assert isinstance(meaning, DeferredError)
    assert (meaning.code, meaning.reply) == (code, reply)
    assert not is_transient(meaning)


@pytest.mark.parametrize(
    ("code", "reply"),
    [
        (421, "4.3.2 Service shutting down"),  # the session, whatever the recipient
        (452, "4.3.1 Insufficient system storage"),  # the server's disk, not the mailbox
        (451, "4.4.1 No answer from host"),  # the network
    ],
)
def test_a_server_wide_4xx_at_rcpt_stays_transient(code: int, reply: str) -> None:
    meaning = classify(_refused_with(code, reply))
    assert not isinstance(meaning, DeferredError | RefusedError)
    assert is_transient(meaning)


def test_one_temporary_refusal_among_permanent_ones_means_try_later() -> None:
    assert isinstance(classify(_refused(550, 452)), DeferredError)


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPSenderRefused(552, "5.3.4 message too big", "s@x.org"),
        aiosmtplib.SMTPDataError(554, "message rejected"),
        aiosmtplib.SMTPResponseException(552, "too big"),
    ],
)
def test_5xx_to_the_message_is_permanent(exc: aiosmtplib.SMTPException) -> None:
    meaning = classify(exc)
    assert isinstance(meaning, RefusedError)
    assert not is_transient(meaning)


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPSenderRefused(451, "try later", "s@x.org"),
        aiosmtplib.SMTPDataError(421, "closing"),
        aiosmtplib.SMTPServerDisconnected("gone"),
        aiosmtplib.SMTPConnectError("refused"),
        aiosmtplib.SMTPReadTimeoutError("slow"),
        # The server will not let us in: configuration or outage, not the message.
        aiosmtplib.SMTPAuthenticationError(535, "bad credentials"),
        aiosmtplib.SMTPHeloError(554, "go away"),
        aiosmtplib.SMTPConnectResponseError(554, "no service"),
        # Our sender refused: every message would be, so it is configuration, not the message.
        aiosmtplib.SMTPSenderRefused(530, "5.7.0 authentication required", "s@x.org"),
        aiosmtplib.SMTPSenderRefused(553, "5.7.1 sender not owned by user", "s@x.org"),
    ],
)
def test_connection_level_failures_and_4xx_are_transient(exc: aiosmtplib.SMTPException) -> None:
    meaning = classify(exc)
    assert not isinstance(meaning, RefusedError)
    assert is_transient(meaning)


def test_retry_kinds_are_a_bounded_set() -> None:
    assert retry_kind(aiosmtplib.SMTPSenderRefused(451, "x", "s")) == "4xx"
    assert retry_kind(aiosmtplib.SMTPServerDisconnected("x")) == "disconnected"
    assert retry_kind(aiosmtplib.SMTPReadTimeoutError("x")) == "timeout"
    assert retry_kind(ConnectionRefusedError()) == "connect"
    assert retry_kind(TransientError("sender refused")) == "session"
    assert retry_kind(ValueError()) == "other"


def test_a_ledger_entry_round_trips_through_its_document() -> None:
    entry = LedgerEntry(
        key="sid:voice_of_customer",
        submission_id="sid",
        reference="SADA-0000-0000",
        unit="voice_of_customer",
        mailbox="voc@moj.gov.sa",
        status="sent",
        message_id="<x@sada.notifier>",
        smtp_code=250,
        smtp_reply="OK",
        attempts=2,
        recorded_at=datetime(2026, 11, 25, tzinfo=UTC),
    )
    document = to_document(entry)
    assert document["_id"] == "sid:voice_of_customer"
    assert "key" not in document
    assert from_document(document) == entry


def test_starttls_and_implicit_tls_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="exclusive"):
        SmtpSettings(starttls=True, use_tls=True)


def test_a_username_needs_a_password() -> None:
    with pytest.raises(ValidationError, match="PASSWORD"):
        SmtpSettings(username="sada")


def test_an_obvious_default_smtp_password_is_refused_outside_local_mode() -> None:
    smtp = SmtpSettings(username="sada", password=SecretStr("changeme"))
    with pytest.raises(ValidationError, match="obvious default"):
        NotifierSettings(environment="production", allow_insecure_transport=True, smtp=smtp)
    assert NotifierSettings(environment="local", smtp=smtp).smtp.username == "sada"


def test_defaults_fit_the_local_set_up() -> None:
    settings = NotifierSettings()
    assert settings.http_port == 8003
    assert settings.group_id == "sada-notifier"
    assert settings.mongo.database == "sada_notifier"
    assert settings.grouped_topic == "feedback.grouped.v1"
    assert settings.notifications_topic == "feedback.notifications.v1"
    assert (settings.smtp.host, settings.smtp.port) == ("127.0.0.1", 1025)


@pytest.mark.parametrize(("starttls", "use_tls"), [(False, False), (True, False), (False, True)])
def test_the_smtp_client_is_built_with_the_configured_tls_mode(
    starttls: bool, use_tls: bool
) -> None:
    settings = SmtpSettings(
        host="mail.example.org",
        port=587,
        starttls=starttls,
        use_tls=use_tls,
        username="sada",
        password=SecretStr("s3cret-value"),
        timeout=7.5,
    )
    client = SmtpMailer(settings)._new_client()
    assert (client.hostname, client.port, client.timeout) == ("mail.example.org", 587, 7.5)
    assert client.use_tls is use_tls
    assert client._start_tls_on_connect is starttls
    assert client._login_username == "sada"
    assert client._login_password == "s3cret-value"


def test_mongo_uri_from_the_environment_keeps_the_notifier_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SADA_MONGO__URI", "mongodb://db.example.org:27017/")
    assert NotifierSettings().mongo.database == "sada_notifier"
