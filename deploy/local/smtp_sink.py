"""Local SMTP sink for Sada: accepts every email and stores it in a Maildir.

Started by ``deploy/local/infra.sh`` (``$ROOT/.venv/bin/python deploy/local/smtp_sink.py``); it
listens on 127.0.0.1:1025 by default (``SADA_SMTP_PORT``) and writes each message to the Maildir
``$SADA_RUN_DIR/mail`` (default ``$ROOT/.run/mail``), adding the headers

* ``X-Sada-Sink-Envelope-To`` -- the RCPT TO addresses, comma-joined;
* ``X-Sada-Sink-Mail-From`` -- the MAIL FROM address;
* ``X-Sada-Sink-Received-At`` -- when the sink accepted the message (RFC 3339, UTC).

EHLO, 8BITMIME and SMTPUTF8 are supported (Arabic subjects, bodies and addresses); AUTH is not.
STARTTLS is offered only on a second port, ``--starttls-port`` with ``--tls-cert``/``--tls-key``
(as a production relay offers it on 587; infra.sh starts it when ``SADA_SMTP_STARTTLS_PORT`` is
set), so clients that upgrade whenever they can keep a plain conversation on the first.

Fault injection for reliability tests: before every MAIL FROM and RCPT TO the sink looks at the
JSON control file ``$SADA_RUN_DIR/smtp-control.json`` (re-parsed only when its inode, mtime or
size changes, so write it atomically -- temp file + rename; a missing file means no faults)::

    {"tempfail": true}                      -> 451 4.3.0 to MAIL FROM and RCPT TO
    {"reject_rcpt": ["bad@example.org"]}    -> 550 5.1.1 to those recipients (case-insensitive)
    {"full_rcpt": ["voc@moj.gov.sa"]}       -> 452 4.2.2 (mailbox full) to those recipients only

A control file that cannot be parsed is reported in the log and the previous settings stay in
force, so a test that rewrites the file non-atomically never sees a half-read state.

The log carries counts and Maildir keys only, never addresses or content.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import mailbox
import os
import signal
import ssl
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

LOG = logging.getLogger("sada.smtp_sink")

REPO_ROOT = Path(__file__).resolve().parents[2]

TEMPFAIL_REPLY = "451 4.3.0 Temporary failure (sink tempfail mode)"
REJECT_RCPT_REPLY = "550 5.1.1 Mailbox unavailable"
FULL_RCPT_REPLY = "452 4.2.2 Mailbox full, try again later"
OK_REPLY = "250 OK"
DATA_OK_REPLY = "250 2.0.0 Message accepted for delivery"


@dataclass(frozen=True)
class Faults:
    """Fault-injection settings read from the control file."""

    tempfail: bool = False
    reject_rcpt: frozenset[str] = frozenset()
    full_rcpt: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, raw: bytes) -> Faults:
        """Parse the control file; raises ``ValueError`` on anything unexpected."""
        data: object = json.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("control file must hold a JSON object")
        tempfail = data.get("tempfail", False)
        if not isinstance(tempfail, bool):
            raise ValueError('"tempfail" must be true or false')
        lists: dict[str, frozenset[str]] = {}
        for name in ("reject_rcpt", "full_rcpt"):
            addresses: object = data.get(name, [])
            if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
                raise ValueError(f'"{name}" must be a list of strings')
            lists[name] = frozenset(a.casefold() for a in addresses)
        return cls(tempfail=tempfail, **lists)


class ControlFile:
    """The JSON control file, re-read only when its inode, mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._bad_stamp: tuple[int, int, int] | None = None  # unparsable version, logged once
        self._faults = Faults()

    def current(self) -> Faults:
        """Return the settings in force now (no faults when the file does not exist)."""
        try:
            st = self._path.stat()
        except FileNotFoundError:
            if self._stamp is not None:
                LOG.info("control file removed: fault injection off")
            self._stamp = None
            self._faults = Faults()
            return self._faults
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp not in (self._stamp, self._bad_stamp):
            try:
                faults = Faults.from_json(self._path.read_bytes())
            except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
                self._bad_stamp = stamp
                LOG.warning(
                    "control file %s ignored (keeping previous settings): %s", self._path, exc
                )
                return self._faults
            self._stamp = stamp
            self._faults = faults
            LOG.info(
                "fault injection: tempfail=%s reject_rcpt=%d full_rcpt=%d address(es)",
                faults.tempfail,
                len(faults.reject_rcpt),
                len(faults.full_rcpt),
            )
        return self._faults


class MaildirHandler:
    """aiosmtpd handler: applies the faults, then stores accepted messages in a Maildir."""

    def __init__(self, maildir: Path, control: ControlFile) -> None:
        # mailbox.Maildir(create=True) makes cur/new/tmp only when the folder itself is missing.
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self._maildir = mailbox.Maildir(maildir, create=False)
        self._control = control

    async def handle_MAIL(  # noqa: N802 -- aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Answer MAIL FROM: 451 in tempfail mode, else accept."""
        if self._control.current().tempfail:
            return TEMPFAIL_REPLY
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return OK_REPLY

    async def handle_RCPT(  # noqa: N802 -- aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Answer RCPT TO: 451 in tempfail mode, 550 for a rejected recipient, 452 for a full
        mailbox, else accept.
        """
        faults = self._control.current()
        if faults.tempfail:
            return TEMPFAIL_REPLY
        if address.casefold() in faults.reject_rcpt:
            return REJECT_RCPT_REPLY
        if address.casefold() in faults.full_rcpt:
            return FULL_RCPT_REPLY
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK_REPLY

    async def handle_DATA(  # noqa: N802 -- aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Store the message (DATA), with the sink's headers, in the Maildir."""
        content = envelope.original_content or b""
        received_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        headers = (
            f"X-Sada-Sink-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
            f"X-Sada-Sink-Mail-From: {envelope.mail_from or ''}\r\n"
            f"X-Sada-Sink-Received-At: {received_at}\r\n"
        ).encode()
        # Maildir files conventionally use the local line ending (LF).
        message = (headers + content).replace(b"\r\n", b"\n")
        try:
            key = await asyncio.to_thread(self._maildir.add, message)
        except OSError:
            LOG.exception("could not store message")
            return "451 4.3.0 Could not store message"
        LOG.info("stored %s (%d bytes, %d recipient(s))", key, len(message), len(envelope.rcpt_tos))
        return DATA_OK_REPLY


def _env_port() -> int:
    return int(os.environ.get("SADA_SMTP_PORT", "1025"))


def _env_run_dir() -> Path:
    return Path(os.environ.get("SADA_RUN_DIR", str(REPO_ROOT / ".run")))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; defaults come from the SADA_* environment variables."""
    run_dir = _env_run_dir()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=_env_port(), help="listen port")
    parser.add_argument("--maildir", type=Path, default=run_dir / "mail", help="Maildir path")
    parser.add_argument(
        "--control-file",
        type=Path,
        default=run_dir / "smtp-control.json",
        help="JSON fault-injection control file",
    )
    parser.add_argument("--starttls-port", type=int, help="a second port that offers STARTTLS")
    parser.add_argument("--tls-cert", type=Path, help="certificate (PEM) of the STARTTLS port")
    parser.add_argument("--tls-key", type=Path, help="private key (PEM) of --tls-cert")
    return parser.parse_args(argv)


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """Return the STARTTLS port's server context, or None when there is no such port."""
    if args.starttls_port is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    handler = MaildirHandler(args.maildir, ControlFile(args.control_file))
    context = tls_context(args)

    def factory(tls: ssl.SSLContext | None = None) -> SMTP:
        return SMTP(
            handler,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="sada-smtp-sink.localhost",
            ident="Sada SMTP sink",
            loop=loop,
            tls_context=tls,
        )

    server = await loop.create_server(factory, host=args.host, port=args.port)
    if context is not None:
        secure = await loop.create_server(
            lambda: factory(context), host=args.host, port=args.starttls_port
        )
        LOG.info("STARTTLS on %s:%d", args.host, args.starttls_port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    LOG.info("listening on %s:%d, Maildir %s", args.host, args.port, args.maildir)
    async with server:
        await stop.wait()
    if context is not None:
        secure.close()
    LOG.info("stopped")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    # aiosmtpd logs every sender and recipient address at INFO: keep personal data out of logs.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
