"""The `sada` command: runs services and holds each service's operator commands.

Each service contributes a Typer app in its own `cli.py` (e.g. `sada intake check`); this
module only mounts them, so the command list is the service list.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from shared import version

SERVICES = ("intake", "router", "campaigns", "notifier", "archive")
# command group name -> module holding its `app: typer.Typer`
COMMAND_GROUPS: dict[str, str] = {
    "intake": "services.intake.cli",
    "route": "services.router.cli",
    "notify": "services.notifier.cli",
    "audit": "services.archive.cli",
    "report": "services.archive.report_cli",
    "deadletter": "shared.deadletter_cli",
    "campaigns": "services.campaigns.cli",
    "consultations": "shared.consultations_cli",
    "privacy": "services.archive.privacy_cli",
}

app = typer.Typer(
    name="sada",
    help="Sada (صدى): routes e-participation feedback to the ministry unit that owns it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}.")],
) -> None:
    """Run one service (its Kafka consumers and HTTP endpoints) until stopped."""
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {SERVICES}")
    module = importlib.import_module(f"services.{service}.app")
    module.main()


@app.command("version")
def show_version() -> None:
    """Print the installed version."""
    typer.echo(version.current())


for _name, _module in COMMAND_GROUPS.items():
    app.add_typer(importlib.import_module(_module).app, name=_name)


def main() -> None:
    """Entry point of the `sada` console script."""
    app()
