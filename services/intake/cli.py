"""Intake's operator commands (`sada intake ...`)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import orjson
import typer

from services.intake.validation import Accepted, validate
from shared.config import ConfigError
from shared.consultations import CONSULTATIONS_PATH, load_consultations
from shared.directory import CONFIG_DIR, load_channels
from shared.models import MAX_MESSAGE_BYTES

app = typer.Typer(
    name="intake",
    help="Intake: validate and normalise submissions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

EXIT_REJECTED = 1
EXIT_UNUSABLE = 2


@app.command()
def check(
    file: Annotated[str, typer.Argument(help="A RawSubmission JSON file, or - for stdin.")],
    channels_file: Annotated[
        Path,
        typer.Option(
            "--channels", envvar="SADA_CHANNELS_FILE", help="The registered channels (YAML)."
        ),
    ] = CONFIG_DIR / "channels.yaml",
    consultations_file: Annotated[
        Path,
        typer.Option(
            "--consultations",
            envvar="SADA_CONSULTATIONS_PATH",
            help="The registry of consultations (YAML).",
        ),
    ] = CONSULTATIONS_PATH,
) -> None:
    """Validate one submission as intake would; print it normalised, or every reason.

    Exit 0 with the normalised submission (with submission_id and reference), 1 with
    `{"rejected": true, "reasons": [...]}`, 2 when the file, the channel list or the registry of
    consultations cannot be read.
    """
    try:
        channels = load_channels(channels_file)
        consultations = load_consultations(consultations_file)
        raw = _read(file)
    except (ConfigError, OSError) as exc:
        _emit({"error": str(exc)}, stream=sys.stderr.buffer)
        raise typer.Exit(EXIT_UNUSABLE) from None
    result = validate(raw, channels=channels, now=datetime.now(UTC), consultations=consultations)
    if isinstance(result, Accepted):
        _emit(result.submission.model_dump(mode="json"))
        return
    reasons = [reason.model_dump(mode="json") for reason in result.reasons]
    _emit({"rejected": True, "reasons": reasons})
    raise typer.Exit(EXIT_REJECTED)


def _read(file: str) -> bytes:
    """Read at most one byte more than the limit: enough to tell `too_large`, never a flood."""
    if file == "-":
        return sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
    with Path(file).open("rb") as handle:
        return handle.read(MAX_MESSAGE_BYTES + 1)


def _emit(document: dict[str, Any], stream: BinaryIO | None = None) -> None:
    """Write one JSON line as UTF-8 bytes, whatever the terminal's encoding."""
    out = stream or sys.stdout.buffer
    out.write(orjson.dumps(document) + b"\n")
    out.flush()
