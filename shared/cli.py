"""The `sada` command: runs services and holds each service's operator commands.

Each service contributes a Typer app in its own `cli.py` (e.g. `sada intake check`); this
module only mounts them, so the command list is the service list.

A command group's module is imported only when that group runs: `sada route explain` loads the
rules and the validation, not FastStream, PyMongo or FastAPI, so an operator's check answers at
once. `sada --help` lists every group from the one-line help kept here, which a unit test holds
equal to the help each group's own app declares.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, NamedTuple

import typer
from typer.core import TyperGroup
from typer.main import get_group_from_info
from typer.models import TyperInfo

SERVICES = ("intake", "router", "campaigns", "notifier", "archive")


class CommandGroup(NamedTuple):
    """Where a command group's `app: typer.Typer` lives, and its help line for `sada --help`."""

    module: str
    help: str


COMMAND_GROUPS: dict[str, CommandGroup] = {
    "intake": CommandGroup("services.intake.cli", "Intake: validate and normalise submissions."),
    "route": CommandGroup(
        "services.router.cli",
        "Routing: explain a decision, check a rule file, dry-run a rule change.",
    ),
    "notify": CommandGroup(
        "services.notifier.cli", "Notifications: preview the e-mail a unit receives."
    ),
    "audit": CommandGroup("services.archive.cli", "Audit the archive."),
    "report": CommandGroup("services.archive.report_cli", "The summary of views."),
    "deadletter": CommandGroup(
        "shared.deadletter_cli",
        "Dead letters: list them, show one whole, redrive them to their source topic.",
    ),
    "campaigns": CommandGroup(
        "services.campaigns.cli",
        "Campaigns: group near-identical submissions per consultation.",
    ),
    "consultations": CommandGroup(
        "shared.consultations_cli",
        "Consultations: the registry of legislative projects and their questionnaires.",
    ),
    "privacy": CommandGroup(
        "services.archive.privacy_cli", "Data subjects' requests: erase, export, register."
    ),
}


class _Unloaded(TyperGroup):
    """Stands for a command group whose module is not imported yet: a name and a help line."""


class LazyGroups(TyperGroup):
    """The `sada` group: mounts each of `COMMAND_GROUPS` when it is first resolved.

    Until then a group is an `_Unloaded` stand-in, so listings (help, typo suggestions,
    completion) keep their order and text without importing anything.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._listing = False
        for name, group in COMMAND_GROUPS.items():
            self.commands.setdefault(name, _Unloaded(name=name, help=group.help))

    # Typer types these with its vendored click (a private module): hence `Any`.
    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """Return the command, importing its group's module unless only its help line is read."""
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, _Unloaded) and not self._listing:
            command = self.commands[cmd_name] = _mount(cmd_name)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Render the help from the help lines, without importing the groups."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def shell_complete(self, ctx: Any, incomplete: str) -> Any:
        """Complete group names from the help lines, without importing the groups."""
        self._listing = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            self._listing = False


def _mount(name: str) -> TyperGroup:
    """Build the click group of `name` exactly as `app.add_typer(module.app, name=name)` would."""
    sub_app: typer.Typer = importlib.import_module(COMMAND_GROUPS[name].module).app
    return get_group_from_info(
        TyperInfo(sub_app, name=name),
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
        suggest_commands=app.suggest_commands,
    )


app = typer.Typer(
    name="sada",
    help="Sada (صدى): routes e-participation feedback to the ministry unit that owns it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=LazyGroups,
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
    from shared import version  # importlib.metadata: ~30 ms no other command needs

    typer.echo(version.current())


def main() -> None:
    """Entry point of the `sada` console script."""
    app()
