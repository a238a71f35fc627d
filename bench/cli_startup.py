"""Part 5 of `python -m bench`: how long an operator waits for `sada route explain` and friends.

Each command runs N times as a fresh process through the installed `sada` script, the commands
taking turns so that a burst of other work hits them alike. Each run gives its wall time, from
spawn to exit, and its CPU time (user + system, from the kernel's accounting of children). The
floor is the bare interpreter (`python -c pass`), measured in the same turns.

Two states of Python's bytecode cache, both set by the environment so any machine gives the same
two answers without touching the tree:
- **cached** (`PYTHONPYCACHEPREFIX` = a private directory, warmed by one unmeasured run): what
  the Docker image (compiled at build) and any machine that lets Python write its caches see;
  the issue's target (≤ 0.4 s) is for this state;
- **none** (`PYTHONDONTWRITEBYTECODE=1`, an empty prefix): every module compiled from source at
  every start, as in a read-only tree that was never compiled.

`python -m bench.cli_startup [--n 20]` runs this part alone and prints JSON.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import machine, stats

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "deploy" / "samples" / "submissions.jsonl"
LIMIT_S = 0.4
TARGETED = ("sada route explain", "sada intake check")


def _sada() -> list[str]:
    """Return how to start `sada`: its console script next to this Python, else the module."""
    script = Path(sys.executable).with_name("sada")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from shared.cli import main; main()"]


def commands(sample: Path) -> dict[str, list[str]]:
    """Return each timed command by label; `sample` is one raw submission (a JSON file)."""
    sada = _sada()
    return {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "sada route explain": [*sada, "route", "explain", str(sample)],
        "sada intake check": [*sada, "intake", "check", str(sample)],
        "sada --help": [*sada, "--help"],
    }


def environment(pycache: Path, *, cached: bool) -> dict[str, str]:
    """Return the environment of one bytecode state (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if not cached:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run `argv` once; return its wall time and its CPU time (user + system), in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def summary(runs: list[tuple[float, float]]) -> dict[str, Any]:
    """Return the median, p90 and minimum wall time, the median CPU time, and every run.

    The CPU time hardly moves when other work competes for the cores, the wall time does: on a
    busy machine the CPU figure is the better guess of the wall time on an idle one.
    """
    times = [wall for wall, _ in runs]
    return {
        "median_s": stats.median(times),
        "p90_s": stats.percentile(times, 90),
        "min_s": min(times),
        "cpu_median_s": stats.median([cpu for _, cpu in runs]),
        "runs_s": [round(t, 4) for t in times],
    }


def run(n: int = 20) -> dict[str, Any]:
    """Time every command `n` times in each bytecode state; return the figures."""
    work = Path(tempfile.mkdtemp(prefix="sada-cli-bench-"))
    try:
        sample = work / "submission.json"
        sample.write_bytes(SAMPLES.read_bytes().splitlines()[0])
        timed = commands(sample)
        results: dict[str, Any] = {
            "n": n,
            "load_average": {"start": machine.load_average()},
            "limit_s": LIMIT_S,
        }
        for state, cached in (("cached", True), ("none", False)):
            env = environment(work / f"pycache-{state}", cached=cached)
            if cached:
                for argv in timed.values():
                    _once(argv, env)  # writes the caches; not measured
            times: dict[str, list[tuple[float, float]]] = {label: [] for label in timed}
            for _ in range(n):
                for label, argv in timed.items():
                    times[label].append(_once(argv, env))
            results[state] = {label: summary(values) for label, values in times.items()}
        results["load_average"]["end"] = machine.load_average()
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m bench.cli_startup`."""
    parser = argparse.ArgumentParser(prog="python -m bench.cli_startup", description=__doc__)
    parser.add_argument("--n", type=int, default=20, help="runs of each command per state")
    args = parser.parse_args(argv)
    sys.stdout.write(orjson.dumps(run(args.n), option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
