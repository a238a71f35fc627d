"""The reliability results table, written by the e2e suite itself (never typed by hand)."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


@dataclass(frozen=True)
class Row:
    """One scenario's outcome."""

    scenario: str
    submissions: int
    inputs_rejected: int
    lost: int
    duplicate_emails: int
    recovery_seconds: float | None
    note: str = ""


@dataclass
class Results:
    """Rows collected during the session."""

    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Record one scenario."""
        self.rows.append(row)

    def table(self) -> str:
        """Return the rows as a Markdown table with the date and machine."""
        lines = [
            f"Produced by `make test` (tests/e2e) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{platform.machine()}, {_cores()} cores. Recovery: seconds from the fault's end "
            "until every submission of the workload was e-mailed and archived.",
            "",
            "| scenario | submissions | bad inputs rejected | lost | duplicate e-mails "
            "| recovery (s) | note |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.rows:
            recovery = f"{r.recovery_seconds:.1f}" if r.recovery_seconds is not None else "–"
            lines.append(
                f"| {r.scenario} | {r.submissions} | {r.inputs_rejected} | {r.lost} "
                f"| {r.duplicate_emails} | {recovery} | {r.note} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, doc: Path, readme: Path) -> None:
        """Write `doc` and replace the README's results block with the same table."""
        table = self.table()
        doc.write_text(f"# Reliability results\n\n{table}", encoding="utf-8")
        text = readme.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            readme.write_text(f"{head}{BEGIN}\n{table}{END}{tail}", encoding="utf-8")


def _cores() -> int:
    import os

    return os.cpu_count() or 0
