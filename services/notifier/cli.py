"""`sada notify …`: show a unit exactly what it will receive, without sending anything.

`sada notify preview FILE` shows the e-mail of one submission; `sada notify preview --digest
FILE` the digest each mailbox would receive for the submissions in FILE (JSON lines).

Exit codes as for every `sada` command: 0 done, 1 invalid input or configuration, 2 unusable
arguments (a file that cannot be read or written).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from pydantic import ValidationError

from services.notifier.app import composer_for
from services.notifier.digest_messages import DigestComposer
from services.notifier.digests import (
    Digest,
    DigestItem,
    DigestPolicy,
    Route,
    item_from,
    policies,
    window_end,
)
from services.notifier.messages import Composer, Email, without_campaign
from services.notifier.settings import NotifierSettings
from shared import events, version
from shared.cli_io import fail, read_input
from shared.config import ConfigError
from shared.directory import Channel, load_channels
from shared.events import RoutedPayload, SubmissionGrouped, SubmissionRouted

if TYPE_CHECKING:
    from services.router.cli import Rejection
    from services.router.rules import RoutingConfig

app = typer.Typer(
    help="Notifications: preview the e-mail a unit receives.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

SHOWN_HEADERS = (
    "Message-ID",
    "Date",
    "From",
    "To",
    "Subject",
    "X-Sada-Reference",
    "X-Sada-Rule",
    "X-Sada-Unit",
    "X-Sada-Campaign",
)
DIGEST_HEADERS = (
    "Message-ID",
    "Date",
    "From",
    "To",
    "Subject",
    "X-Sada-Unit",
    "X-Sada-Digest",
    "X-Sada-Digest-Items",
)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", 2)


EVENTS: dict[str, type[SubmissionGrouped | SubmissionRouted]] = {
    "submission.grouped": SubmissionGrouped,
    "submission.routed": SubmissionRouted,
}


class InvalidInputError(Exception):
    """Input the preview cannot use: a one-line reason, and a rejection when it was validated."""

    def __init__(self, reason: str, rejection: Rejection | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejection = rejection


@dataclass
class Routing:
    """The rule file in force and the channels, read when first needed, once per command."""

    rules: Path | None
    _loaded: tuple[RoutingConfig, dict[str, Channel]] | None = None

    def load(self) -> tuple[RoutingConfig, dict[str, Channel]]:
        """Return the compiled rules and the channels; raise `ConfigError` if unreadable."""
        if self._loaded is None:
            from services.router import config as rules_config

            config = rules_config.load(self.rules or rules_config.RULES_PATH)
            self._loaded = config, load_channels()
        return self._loaded


def event_from(raw: bytes, routing: Routing) -> SubmissionGrouped:
    """Return the event the notifier would consume for `raw`, routing it first if need be.

    A grouped event is used as it is (its decision and campaign stand); a routed event as one
    that joined no campaign; anything else is read as the router reads it (a raw one is
    validated as intake does), routed with the rule file in force, and joins no campaign.
    Raise `InvalidInputError` for anything else.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    event_type = data.get("event_type") if isinstance(data, dict) else None
    if isinstance(event_type, str) and event_type in EVENTS:
        try:
            event = EVENTS[event_type].model_validate(data)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            raise InvalidInputError(f"not a valid {event_type} event: {fields}") from None
        return event if isinstance(event, SubmissionGrouped) else without_campaign(event)
    # The router owns routing; its CLI reads every other input form the same way we must.
    from services.router.cli import Rejection, submission_from
    from services.router.rules import decide

    try:
        config, channels = routing.load()
    except ConfigError as exc:
        raise InvalidInputError(f"invalid configuration: {exc}") from None
    submission = submission_from(raw, channels=channels)
    if isinstance(submission, Rejection):
        reasons = "; ".join(
            f"{r.code}" + (f" ({r.field})" if r.field else "") + f": {r.message}"
            for r in submission.reasons
        )
        raise InvalidInputError(reasons, submission)
    routed = events.build(
        SubmissionRouted,
        submission_id=submission.submission_id,
        reference=submission.reference,
        payload=RoutedPayload(submission=submission, decision=decide(submission, config)),
        discriminator="",
        producer=events.Producer(service="notifier-preview", version=version.current()),
    )
    return without_campaign(routed)


def grouped_from(raw: bytes, rules: Path | None) -> SubmissionGrouped:
    """Return `event_from(raw, …)`; exit 1 with the reasons (a rejection on stdout) if invalid."""
    try:
        return event_from(raw, Routing(rules))
    except InvalidInputError as exc:
        if exc.rejection is not None:
            typer.echo(orjson.dumps(exc.rejection.as_json(), option=orjson.OPT_INDENT_2).decode())
            raise typer.Exit(1) from None
        fail(exc.reason, 1)


def as_text(email: Email, shown: Sequence[str] = SHOWN_HEADERS) -> str:
    """Return the headers a reader cares about, then the plain-text part."""
    message = email.message  # the bytes as sent, parsed as a mail client reads them
    lines = [f"{name}: {message[name]}" for name in shown if message[name]]
    return "\n".join(lines) + "\n\n" + email.text


@app.command()
def preview(
    file: Annotated[
        str | None,
        typer.Argument(
            help="Grouped, routed or accepted event, or submission JSON; - for stdin.",
            show_default=False,
        ),
    ] = None,
    digest: Annotated[
        str | None,
        typer.Option(
            "--digest",
            help="Preview digests instead: JSON lines, each any form FILE accepts; - for stdin.",
            show_default=False,
        ),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML part here.", dir_okay=False)
    ] = None,
    eml: Annotated[
        Path | None,
        typer.Option("--eml", help="Also write the whole message (.eml) here.", dir_okay=False),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="Rule file for input not yet routed.", dir_okay=False),
    ] = None,
    list_limit: Annotated[
        int | None,
        typer.Option(
            "--list-limit",
            min=1,
            help="With --digest: list this many submissions at most (default: the unit's).",
        ),
    ] = None,
) -> None:
    """Print the e-mail a unit would receive for FILE (headers and text part); send nothing.

    With --digest FILE: the digest each mailbox would receive for the submissions in FILE
    (one per line), as if they all waited for the window of the latest one (docs/notifier.md,
    "Digest e-mail"). With several mailboxes, --html and --eml name one file per mailbox:
    OUT with the unit's id before its suffix (out.legislations_office.html).

    Settings come from the environment as for the service (SADA_SMTP__SENDER,
    SADA_ARCHIVE_URL, SADA_UNITS_PATH, SADA_DIGEST__LIST_LIMIT, …), so the preview matches
    what the service sends.
    """
    if (file is None) == (digest is None):
        fail("give FILE, or --digest FILE (not both)", 2)
    try:
        settings = NotifierSettings()
        composer = composer_for(settings)
    except (ConfigError, ValidationError) as exc:
        fail(f"invalid configuration: {exc}", 1)
    if digest is not None:
        _preview_digests(digest, settings, composer, html, eml, rules, list_limit)
        return
    assert file is not None  # one of the two, checked above
    email = composer.compose(grouped_from(read_input(file), rules))
    typer.echo(as_text(email), nl=False)
    _write_parts(email, html, eml)


def _write_parts(email: Email, html: Path | None, eml: Path | None, note: str = "") -> None:
    if html is not None:
        _write(html, email.html.encode())
        typer.echo(f"wrote {html}{note}", err=True)
    if eml is not None:
        # Exactly what is sent, with the LF line breaks of a file on this system.
        _write(eml, email.data.replace(b"\r\n", b"\n"))
        typer.echo(f"wrote {eml}{note}", err=True)


def digests_from(
    lines: bytes,
    rules: Path | None,
    *,
    personal: Callable[[str], bool],
    policies: Mapping[str, DigestPolicy],
    default: DigestPolicy,
) -> list[Digest]:
    """Return one digest per inbox for the submissions in `lines` (JSON lines), in file order.

    Each item waits as the notifier would keep it: for a campaign copy past the policy's
    `campaign_individual` first members, else for a surge; received when it was received.
    Every digest ends with the window of the latest submission it holds. Raise
    `InvalidInputError` naming every invalid line (`line N: reasons`).
    """
    items: dict[str, list[DigestItem]] = {}
    problems: list[str] = []
    routing = Routing(rules)
    for number, line in enumerate(lines.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = event_from(line, routing)
        except InvalidInputError as exc:
            problems.append(f"line {number}: {exc.reason}")
            continue
        decision, submission = event.payload.decision, event.payload.submission
        policy = policies.get(decision.unit, default)
        campaign = event.payload.campaign
        why: Route = (
            "campaign"
            if campaign is not None and campaign.size > policy.campaign_individual
            else "surge"
        )
        item = item_from(
            event, personal=personal(decision.unit), why=why, at=submission.received_at
        )
        items.setdefault(item.inbox, []).append(item)
    if problems:
        raise InvalidInputError("\n".join(problems))
    found = []
    for inbox, waiting in items.items():
        policy = policies.get(waiting[0].unit, default)
        latest = max(item.received_at for item in waiting)
        found.append(
            Digest(
                inbox=inbox,
                unit=waiting[0].unit,
                mailbox=waiting[0].mailbox,
                window_end=window_end(latest, policy.window_seconds),
                window_seconds=policy.window_seconds,
                items=tuple(waiting),
            )
        )
    return found


def _suffixed(path: Path | None, unit: str, several: bool, seen: set[Path]) -> Path | None:
    if path is None or not several:
        return path
    named = path.with_name(f"{path.stem}.{unit}{path.suffix}")
    n = 2
    while named in seen:  # one unit with two mailboxes
        named = path.with_name(f"{path.stem}.{unit}-{n}{path.suffix}")
        n += 1
    seen.add(named)
    return named


def _preview_digests(
    file: str,
    settings: NotifierSettings,
    composer: Composer,
    html: Path | None,
    eml: Path | None,
    rules: Path | None,
    list_limit: int | None,
) -> None:
    default = DigestPolicy(
        **settings.digest.model_dump(include=set(DigestPolicy.__dataclass_fields__))
    )
    by_unit = policies(default, composer.units)
    try:
        found = digests_from(
            read_input(file),
            rules,
            personal=composer.personal_data,
            policies=by_unit,
            default=default,
        )
    except InvalidInputError as exc:
        fail(exc.reason, 1)
    if not found:
        fail(f"no submissions in {file}", 1)
    writer = DigestComposer.like(composer)
    several, seen_html, seen_eml = len(found) > 1, set[Path](), set[Path]()
    for n, digest in enumerate(found):
        limit = list_limit or by_unit.get(digest.unit, default).list_limit
        email = writer.compose(digest, list_limit=limit)
        if n:
            typer.echo("\n" + "=" * 72 + "\n")
        typer.echo(as_text(email, DIGEST_HEADERS), nl=False)
        note = f" (digest for {digest.unit} <{digest.mailbox}>)" if several else ""
        _write_parts(
            email,
            _suffixed(html, digest.unit, several, seen_html),
            _suffixed(eml, digest.unit, several, seen_eml),
            note,
        )
