"""The registry of consultations' operator commands (`sada consultations ...`).

The Legislations Office edits `consultations.yaml` by hand; `check-config` tells them, before
intake refuses to start on it, whether the file is valid and where it is not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from shared.cli_io import fail
from shared.config import ConfigError
from shared.consultations import CONSULTATIONS_PATH, Consultation, load_consultations

app = typer.Typer(
    name="consultations",
    help="Consultations: the registry of legislative projects and their questionnaires.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("check-config")
def check_config(
    file: Annotated[
        Path, typer.Argument(help="The registry to check (consultations.yaml).", dir_okay=False)
    ] = CONSULTATIONS_PATH,
) -> None:
    """Validate a registry; print `ok: N consultations` and each project's window, or exit 1.

    A problem is printed on stderr as `file:line: problem`, the form intake refuses to start with.
    """
    try:
        registry = load_consultations(file)
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}", 1)
    now = datetime.now(UTC)
    typer.echo(f"ok: {len(registry)} consultations in {file}")
    for consultation in registry.values():
        typer.echo(
            f"  {consultation.ref}: {window_state(consultation, now)}, "
            f"{consultation.opens_at.isoformat()} to {consultation.closes_at.isoformat()}, "
            f"{len(consultation.questions)} questions"
        )


def window_state(consultation: Consultation, at: datetime) -> str:
    """Return `not yet open`, `open` or `closed` for the consultation at `at`."""
    if at < consultation.opens_at:
        return "not yet open"
    return "open" if at <= consultation.closes_at else "closed"
