"""`sada audit …`: operator commands over the archive."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer

from services.archive import audit
from services.archive.chain import Break
from services.archive.settings import ArchiveSettings
from services.archive.store import MongoArchiveStore
from shared.mongo import make_client

app = typer.Typer(help="Audit the archive.", no_args_is_help=True)


@app.callback()
def audit_group() -> None:
    """Audit the archive: verify its tamper-evident hash chains."""


@app.command()
def verify(
    submission: Annotated[
        str | None, typer.Option("--submission", help="Verify only this submission's chain.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per break.")] = False,
) -> None:
    """Recompute the hash chains and report every broken link; exit 1 if any."""
    raise typer.Exit(asyncio.run(_verify(ArchiveSettings(), submission, as_json=as_json)))


async def _verify(settings: ArchiveSettings, submission: str | None, *, as_json: bool) -> int:
    client = make_client(settings.mongo, app_name="audit-cli")
    store = MongoArchiveStore(client, settings.mongo.database)
    try:
        if submission is not None:
            report = await audit.verify_submission(store, submission)
            if report is None:
                typer.echo(f"no such submission: {submission}", err=True)
                return 2
            chains, events, breaks = 1, report.events, report.breaks
        else:
            summary = await audit.verify_all(store, time_limit=settings.verify_timeout_seconds)
            chains, events, breaks = summary.chains, summary.events, summary.breaks
    finally:
        await client.close()
    for found in breaks:
        typer.echo(_json(found) if as_json else _line(found))
    verdict = f"{len(breaks)} broken link(s)" if breaks else "all chains intact"
    typer.echo(f"verified {chains} chain(s), {events} event(s): {verdict}", err=as_json)
    return 1 if breaks else 0


def _line(found: Break) -> str:
    event = f" event={found.event_id}" if found.event_id else ""
    return (
        f"BROKEN submission={found.submission_id} seq={found.seq} kind={found.kind.value}"
        f"{event}: {found.detail}"
    )


def _json(found: Break) -> str:
    return orjson.dumps(
        {
            "submission_id": found.submission_id,
            "seq": found.seq,
            "kind": found.kind.value,
            "event_id": found.event_id,
            "detail": found.detail,
        }
    ).decode()
