"""Sending e-mail: the `Mailer` port, its aiosmtplib adapter, and a pool of reused connections.

The mailer decides what an SMTP failure means, because only it sees where the failure happened:

- the server refused *this message* with a 5xx (unknown mailbox, message rejected) → `RefusedError`,
  which the notifier records as `notification.failed` and moves on;
- the server refused *this recipient for now* (450/451/452 to RCPT TO: mailbox full, busy,
  greylisted) → `DeferredError`, which the notifier parks and retries on a schedule, so one
  mailbox never holds the e-mails of the others;
- anything else (connection refused or lost, timeouts, any 4xx, and a server that will not let
  us in at all — EHLO, STARTTLS or AUTH refused, which is configuration, not the message) is
  transient: it propagates so the batch is retried while the partition waits.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import NoReturn, Protocol

import aiosmtplib

from services.notifier import metrics
from services.notifier.messages import Email
from services.notifier.settings import SmtpSettings
from shared.logging import get_logger
from shared.retry import TransientError, is_transient

log = get_logger(__name__)

ACCEPTED = 250


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """The server's answer to a message it accepted (the reply to DATA)."""

    code: int
    text: str


class RefusedError(Exception):
    """The server permanently refused this message (5xx); sending it again cannot help."""

    def __init__(self, code: int | None, reply: str) -> None:
        self.code, self.reply = code, reply
        super().__init__(f"{code} {reply}" if code is not None else reply)


class DeferredError(Exception):
    """The server refused this recipient for now (4xx to RCPT TO); later may work.

    The refusal says nothing about other recipients. Not transient: no batch waits for it.
    """

    def __init__(self, code: int, reply: str) -> None:
        self.code, self.reply = code, reply
        super().__init__(f"{code} {reply}")


class Mailer(Protocol):
    """Sends one composed e-mail to its recipient."""

    async def send(self, email: Email) -> SmtpReply:
        """Return the server's acceptance, raise `RefusedError` (permanent) or a transient error."""
        ...

    async def close(self) -> None:
        """Say goodbye to the server, if connected."""
        ...


# A server that will not greet, secure or authenticate us refuses every message alike: that is
# an outage of our configuration or of the server, not a property of the message.
_SESSION_ERRORS = (
    aiosmtplib.SMTPHeloError,
    aiosmtplib.SMTPAuthenticationError,
    aiosmtplib.SMTPConnectResponseError,
)
# After these the server answered and aiosmtplib sent RSET: the session is still good to use.
_ANSWERED = (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused)
# 552 to MAIL FROM answers our SIZE declaration: this message is too big, a property of it.
_MESSAGE_TOO_BIG = 552
# The composed message is 7-bit clean (RFC 2047 headers, base64 or 7bit parts) except for an
# internationalised address, which needs SMTPUTF8 (and, with it, 8BITMIME: RFC 6531). aiosmtplib
# raises SMTPNotSupported when the server lacks it: permanent, see `classify`.
_UTF8_OPTIONS = ("SMTPUTF8", "BODY=8BITMIME")
# 421 closes the session whatever the command: the server, not the recipient, is unavailable.
_SERVICE_CLOSING = 421
# RFC 3463 enhanced status X.3.Y (mail system) and X.4.Y (network) name the server's trouble,
# e.g. 452 4.3.1 "insufficient system storage": every recipient would be refused alike.
_SERVER_WIDE = re.compile(r"^\s*4\.[34]\.\d{1,3}\b")


def _permanent(code: int) -> bool:
    return 500 <= code < 600


def recipient_specific(code: int, reply: str) -> bool:
    """Return True when a 4xx to RCPT TO concerns this recipient only, not the whole server."""
    return code != _SERVICE_CLOSING and not _SERVER_WIDE.match(reply)


def classify(exc: aiosmtplib.SMTPException) -> BaseException:
    """Return what a send failure means: `RefusedError`, `DeferredError`, or a transient error.

    - 5xx to RCPT (unknown mailbox) or to DATA (message rejected), or 552 to MAIL (too big):
      permanent, for this message only;
    - 4xx to RCPT (450/451/452: mailbox full or busy, greylisting): this recipient, for now,
      unless it is 421 or its enhanced status names the mail system or network (4.3.x, 4.4.x);
    - any other refusal of MAIL FROM (530 authentication required, 550/553 sender not allowed)
      refuses our sender, hence every message: configuration, held and retried like an outage;
    - 4xx anywhere, lost connections, timeouts and refused sessions: transient.
    """
    if isinstance(exc, _SESSION_ERRORS):
        return TransientError(f"SMTP session refused: {exc}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # Every recipient was refused (we send to one); a temporary refusal means "later".
        temporary = [r for r in exc.recipients if not _permanent(r.code)]
        if temporary:
            first = temporary[0]
            if recipient_specific(first.code, first.message):
                return DeferredError(first.code, first.message)
            return first  # an SMTPResponseException with a 4xx code: transient
        if not exc.recipients:
            return TransientError(str(exc))
        return RefusedError(exc.recipients[0].code, exc.recipients[0].message)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused) and exc.code != _MESSAGE_TOO_BIG:
        return exc if not _permanent(exc.code) else TransientError(f"sender refused: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and _permanent(exc.code):
        return RefusedError(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return RefusedError(None, str(exc))  # e.g. a non-ASCII address and no SMTPUTF8: never works
    return exc


def _reraise(exc: aiosmtplib.SMTPException) -> NoReturn:
    meaning = classify(exc)
    if meaning is exc:
        raise exc
    raise meaning from exc


class SmtpMailer:
    """aiosmtplib adapter: one connection, opened on first use and reopened after a loss."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0
        self._lock = asyncio.Lock()

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.use_tls,
            start_tls=s.starttls,
            validate_certs=s.validate_certs,
            cert_bundle=str(s.cert_bundle) if s.cert_bundle else None,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            timeout=s.timeout,
            local_hostname=s.local_hostname,
        )

    async def _connected(self) -> aiosmtplib.SMTP:
        client = self._client
        if client is not None and client.is_connected:
            idle = time.monotonic() - self._last_used
            if idle < self._settings.idle_check_seconds:
                return client
            try:  # servers drop idle sessions; find out now rather than mid-message
                await client.noop()
                return client
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        client = self._new_client()
        try:
            await client.connect()
        except aiosmtplib.SMTPException as exc:
            client.close()
            if is_transient(exc):
                raise
            # Whatever stops us connecting (no STARTTLS, AUTH refused…) is no message's fault.
            raise TransientError(f"cannot open an SMTP session: {exc}") from exc
        metrics.SMTP_CONNECTIONS.inc()
        self._client = client
        return client

    async def send(self, email: Email) -> SmtpReply:
        """Send `email` to its recipient over the shared connection."""
        async with self._lock:
            client = await self._connected()
            started = time.perf_counter()
            try:
                # The message is already bytes (composed once); only the envelope is added here.
                _errors, reply = await client.sendmail(
                    email.sender,
                    [email.recipient],
                    email.data,
                    mail_options=_UTF8_OPTIONS if email.smtputf8 else (),
                )
            except aiosmtplib.SMTPException as exc:
                if not isinstance(exc, _ANSWERED):
                    client.close()  # lost, timed out or confused: start clean next time
                _reraise(exc)
            except OSError:
                client.close()
                raise
            finally:
                self._last_used = time.monotonic()
                metrics.SMTP_SECONDS.observe(time.perf_counter() - started)
            return SmtpReply(ACCEPTED, reply)

    async def close(self) -> None:
        """Send QUIT if connected; a server already gone is not an error at shutdown."""
        async with self._lock:
            client, self._client = self._client, None
            if client is None or not client.is_connected:
                return
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


class SmtpMailerPool:
    """Up to `SmtpSettings.connections` reused connections, so e-mails go out side by side.

    One SMTP session carries one message at a time, and every message waits a round trip or
    more for the server's reply; a relay across the network takes tens of milliseconds each.
    A few sessions in parallel multiply the rate without a connection per message. Sessions
    open only when that many sends overlap: the most recently used one is taken first.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self._idle: asyncio.LifoQueue[SmtpMailer] = asyncio.LifoQueue()
        self._mailers = [SmtpMailer(settings) for _ in range(settings.connections)]
        for mailer in reversed(self._mailers):
            self._idle.put_nowait(mailer)

    async def send(self, email: Email) -> SmtpReply:
        """Send `email` over the first idle connection (waiting for one if all are busy)."""
        mailer = await self._idle.get()
        try:
            return await mailer.send(email)
        finally:
            self._idle.put_nowait(mailer)

    async def close(self) -> None:
        """Say goodbye on every open connection."""
        await asyncio.gather(*(mailer.close() for mailer in self._mailers))
