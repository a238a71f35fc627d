"""`sada campaigns group`: group raw submissions into campaigns, with no infrastructure.

The command validates each line as intake does, routes it with the router's own rules (the
unit is the scope when there is no `legislation_ref`), and groups it with
`services.campaigns.grouping`: the service's algorithm and thresholds. Heavy imports
(numpy, datasketch, the router) happen inside the command so `sada` starts fast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.cli_io import fail, read_input
from shared.config import ConfigError
from shared.directory import CONFIG_DIR

app = typer.Typer(
    help="Campaigns: group near-identical submissions per consultation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("group")
def group_command(
    file: Annotated[str, typer.Argument(help="JSON lines of raw submissions; - for stdin.")],
    rules: Annotated[
        Path, typer.Option("--rules", help="Rule file (routing.yaml).", dir_okay=False)
    ] = CONFIG_DIR / "routing.yaml",
    units: Annotated[
        Path, typer.Option("--units", help="Units file (units.yaml).", dir_okay=False)
    ] = CONFIG_DIR / "units.yaml",
    channels: Annotated[
        Path, typer.Option("--channels", help="Channels file (channels.yaml).", dir_okay=False)
    ] = CONFIG_DIR / "channels.yaml",
    window_days: Annotated[
        float, typer.Option("--window-days", help="Rolling window of a unit scope, in days.")
    ] = 7.0,
) -> None:
    """Print one JSON line per input line, in input order.

    `{"line", "reference", "campaign_id", "similar_to", "similarity"}` (null when the
    submission joined no campaign yet), or `{"line", "rejected": true, "reasons"}` for a line
    intake would reject. Blank lines are skipped. Exit 1 on an invalid configuration.
    """
    from datetime import timedelta

    import orjson

    from services.campaigns.grouping import MemoryStore, group
    from services.intake.validation import Rejected, validate
    from services.router import config as rules_config
    from services.router.rules import decide
    from shared.directory import load_channels

    try:
        config = rules_config.load(rules, units_path=units, channels_path=channels)
        known = load_channels(channels)
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}", 1)
    store = MemoryStore()
    window = timedelta(days=window_days)
    for number, raw in enumerate(read_input(file).splitlines(), start=1):
        if not raw.strip():
            continue
        outcome = validate(raw, channels=known, now=datetime.now(UTC))
        line: dict[str, Any]
        if isinstance(outcome, Rejected):
            reasons = [reason.model_dump() for reason in outcome.reasons]
            line = {"line": number, "rejected": True, "reasons": reasons}
        else:
            submission = outcome.submission
            unit = decide(submission, config).unit
            grouping = group(submission, unit, store, window=window)
            line = {
                "line": number,
                "reference": submission.reference,
                "campaign_id": grouping.campaign_id,
                "similar_to": grouping.similar_to,
                "similarity": grouping.similarity,
            }
        typer.echo(orjson.dumps(line).decode())
