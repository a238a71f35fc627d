"""`sada notify …`: show a unit exactly what it will receive, without sending anything.

Exit codes as for every `sada` command: 0 done, 1 invalid input or configuration, 2 unusable
arguments (a file that cannot be read or written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from pydantic import ValidationError

from services.notifier.app import composer_for
from services.notifier.messages import Email, without_campaign
from services.notifier.settings import NotifierSettings
from shared import events, version
from shared.cli_io import fail, read_input
from shared.config import ConfigError
from shared.events import RoutedPayload, SubmissionGrouped, SubmissionRouted

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


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", 2)


EVENTS: dict[str, type[SubmissionGrouped | SubmissionRouted]] = {
    "submission.grouped": SubmissionGrouped,
    "submission.routed": SubmissionRouted,
}


def grouped_from(raw: bytes, rules: Path | None) -> SubmissionGrouped:
    """Return the event the notifier would consume for `raw`, routing it first if need be.

    A grouped event is used as it is (its decision and campaign stand); a routed event as one
    that joined no campaign; anything else is read as the router reads it (a raw one is
    validated as intake does), routed with the rule file in force, and joins no campaign.
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
            fail(f"not a valid {event_type} event: {fields}", 1)
        return event if isinstance(event, SubmissionGrouped) else without_campaign(event)
    # The router owns routing; its CLI reads every other input form the same way we must.
    from services.router import config as rules_config
    from services.router.cli import Rejection, submission_from
    from services.router.rules import decide
    from shared.directory import load_channels

    try:
        config = rules_config.load(rules or rules_config.RULES_PATH)
        submission = submission_from(raw, channels=load_channels())
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}", 1)
    if isinstance(submission, Rejection):
        typer.echo(orjson.dumps(submission.as_json(), option=orjson.OPT_INDENT_2).decode())
        raise typer.Exit(1)
    routed = events.build(
        SubmissionRouted,
        submission_id=submission.submission_id,
        reference=submission.reference,
        payload=RoutedPayload(submission=submission, decision=decide(submission, config)),
        discriminator="",
        producer=events.Producer(service="notifier-preview", version=version.current()),
    )
    return without_campaign(routed)


def as_text(email: Email) -> str:
    """Return the headers a reader cares about, then the plain-text part."""
    message = email.message  # the bytes as sent, parsed as a mail client reads them
    lines = [f"{name}: {message[name]}" for name in SHOWN_HEADERS if message[name]]
    return "\n".join(lines) + "\n\n" + email.text


@app.command()
def preview(
    file: Annotated[
        str,
        typer.Argument(help="Grouped, routed or accepted event, or submission JSON; - for stdin."),
    ],
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
) -> None:
    """Print the e-mail a unit would receive for FILE (headers and text part); send nothing.

    Settings come from the environment as for the service (SADA_SMTP__SENDER,
    SADA_ARCHIVE_URL, SADA_UNITS_PATH, …), so the preview matches what the service sends.
    """
    try:
        settings = NotifierSettings()
        composer = composer_for(settings)
    except (ConfigError, ValidationError) as exc:
        fail(f"invalid configuration: {exc}", 1)
    email = composer.compose(grouped_from(read_input(file), rules))
    typer.echo(as_text(email), nl=False)
    if html is not None:
        _write(html, email.html.encode())
        typer.echo(f"wrote {html}", err=True)
    if eml is not None:
        # Exactly what is sent, with the LF line breaks of a file on this system.
        _write(eml, email.data.replace(b"\r\n", b"\n"))
        typer.echo(f"wrote {eml}", err=True)
