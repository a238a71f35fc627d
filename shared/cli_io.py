"""Input and failure helpers shared by the services' operator commands.

Every `sada` sub-command reads a file or `-` (stdin) the same way and fails the same way: a one-line
message on stderr and a documented exit code, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer


def fail(message: str, code: int) -> NoReturn:
    """Print `message` on stderr and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def read_input(file: str) -> bytes:
    """Return the bytes of `file`, or of stdin for `-`; exit 2 when it cannot be read."""
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}", 2)
