"""`python -m bench --only cli`: what it times, in which bytecode state, and what it reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import cli_startup, report


def figures(median: float) -> dict[str, Any]:
    return {
        "median_s": median,
        "p90_s": median,
        "min_s": median,
        "cpu_median_s": median / 2,
        "runs_s": [median],
    }


def test_the_two_operator_checks_and_the_help_are_timed_against_the_bare_interpreter(
    tmp_path: Path,
) -> None:
    timed = cli_startup.commands(tmp_path / "s.json")
    assert timed["python -c pass (floor)"][-2:] == ["-c", "pass"]
    assert timed["sada route explain"][-3:] == ["route", "explain", str(tmp_path / "s.json")]
    assert timed["sada intake check"][-3:] == ["intake", "check", str(tmp_path / "s.json")]
    assert timed["sada --help"][-1] == "--help"


def test_cached_bytecode_goes_to_a_private_prefix_and_none_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    cached = cli_startup.environment(tmp_path, cached=True)
    none = cli_startup.environment(tmp_path, cached=False)
    assert "PYTHONDONTWRITEBYTECODE" not in cached
    assert none["PYTHONDONTWRITEBYTECODE"] == "1"
    assert cached["PYTHONPYCACHEPREFIX"] == none["PYTHONPYCACHEPREFIX"] == str(tmp_path)


def test_the_targets_hold_the_two_checks_to_the_limit_with_cached_bytecode_only() -> None:
    cached = {
        "python -c pass (floor)": figures(0.02),
        "sada route explain": figures(0.3),
        "sada intake check": figures(0.5),
        "sada --help": figures(0.9),
    }
    cli = {
        "n": 1,
        "load_average": {"start": [0.1], "end": [0.2]},
        "cached": cached,
        "none": {label: figures(2.0) for label in cached},
    }
    found = {t["target"].split("`")[1]: t["met"] for t in report.targets({"cli": cli})}
    assert found == {"sada route explain": True, "sada intake check": False}
    lines = report.cli_lines(cli)
    row = (
        "| `sada intake check` | 500 ms | 500 ms | 500 ms | 250 ms "
        "| 2,000 ms | 2,000 ms | 1,000 ms |"
    )
    assert row in lines
