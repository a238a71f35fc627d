"""`sada report …`: the summary of views of a project or a unit, from the archive's database.

Reads the report aggregates the archive keeps (settings as `sada audit`: `SADA_MONGO__URI`,
the archive's database), never its events. Prints to stdout, or writes `--out FILE`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from services.archive import report_markdown, report_page, reports
from services.archive.report_model import ConsultationReport, UnitReport
from services.archive.settings import ArchiveSettings
from services.archive.store import MongoArchiveStore
from shared.directory import load_units
from shared.mongo import make_client

app = typer.Typer(help="The summary of views.", no_args_is_help=True)


class Format(StrEnum):
    """Output formats."""

    HTML = "html"
    JSON = "json"
    MD = "md"


FormatOption = Annotated[Format, typer.Option("--format", help="html, json or md.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
]


@app.callback()
def report_group() -> None:
    """Print the summary of views of a legislative project, or a unit's volume."""


@app.command()
def consultation(
    ref: Annotated[str, typer.Argument(help="The project's legislation_ref.")],
    output: FormatOption = Format.HTML,
    out: OutOption = None,
) -> None:
    """Print a project's summary of views: counts, answers, campaigns, distinct comments."""
    settings = ArchiveSettings()
    found = asyncio.run(_consultation(settings, ref))
    if found is None:
        typer.echo(f"no such consultation: {ref}", err=True)
        raise typer.Exit(2)
    _emit(_render(found, output), out)


@app.command()
def unit(
    unit_id: Annotated[str, typer.Argument(metavar="UNIT", help="e.g. voice_of_customer.")],
    since: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day.")],
    until: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day.")],
    output: FormatOption = Format.HTML,
    out: OutOption = None,
) -> None:
    """Print a unit's volume per day by channel, kind and topic, and its largest campaigns."""
    start, end = since.date(), until.date()
    if end < start or (end - start).days >= reports.MAX_DAYS:
        typer.echo(f"--from must not be after --to, at most {reports.MAX_DAYS} days", err=True)
        raise typer.Exit(2)
    _emit(_render(asyncio.run(_unit(ArchiveSettings(), unit_id, start, end)), output), out)


async def _consultation(settings: ArchiveSettings, ref: str) -> ConsultationReport | None:
    client = make_client(settings.mongo, app_name="report-cli")
    try:
        store = MongoArchiveStore(client, settings.mongo.database)
        registry = reports.load_registry(settings.consultations_path)
        return await reports.consultation_report(store, ref, registry, now=datetime.now(UTC))
    finally:
        await client.close()


async def _unit(settings: ArchiveSettings, unit_id: str, start: date, end: date) -> UnitReport:
    client = make_client(settings.mongo, app_name="report-cli")
    try:
        store = MongoArchiveStore(client, settings.mongo.database)
        return await reports.unit_report(
            store, unit_id, start, end, names=load_units(), now=datetime.now(UTC)
        )
    finally:
        await client.close()


def _render(report: ConsultationReport | UnitReport, output: Format) -> str:
    if output is Format.JSON:
        return report.model_dump_json(indent=2)
    if isinstance(report, ConsultationReport):
        if output is Format.MD:
            return report_markdown.consultation(report)
        return report_page.render_consultation(report)
    if output is Format.MD:
        return report_markdown.unit(report)
    return report_page.render_unit(report)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)
