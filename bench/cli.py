"""`python -m bench [--runs N] [--quick] [--only router|archive|notifier|e2e|rss|cli|reads|scale]`.

Times the CLI's start-up first (no infrastructure), then starts a private stack (Kafka, FerretDB,
SMTP sink under `.run/bench`, own ports), runs the parts on it in order (router, archive,
notifier, end to end with RSS, the archive API's reads at `--n` submissions; then the scale-out
part on a fresh stack whose topics have 6 partitions), prints a table, writes
`bench/results.json`, and on a full run refreshes the results blocks of the READMEs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import machine, mix, report
from shared.logging import configure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
LOGS = HERE.parent / ".run" / "bench" / "logs"
PARTS = ("router", "archive", "notifier", "e2e", "rss", "cli", "reads", "scale")
SCALE_N, SCALE_N_QUICK = 3_000, 1_000
"""Submissions per blast of the scale-out part (1 replica, then 2, per run; then rebalancing)."""
SCALE_STAGES = ("router", "notifier")
"""Stages part 7 runs at two replicas. Not the archive: two archive replicas on FerretDB 1.24
stop making progress (bench/README.md, "Scale-out"), which would stall `make bench`;
`python -m bench.scale_out --stages router,notifier,archive` measures it on purpose."""
CLI_RUNS = 20  # runs of each command (`bench.cli_startup`); 5 with --quick


def quiet_logs() -> Path:
    """Send the in-process services' logs to a file, as JSON at INFO like a deployed service."""
    LOGS.mkdir(parents=True, exist_ok=True)
    path = LOGS / "in-process.log"
    configure("bench", level="INFO", json=True)
    stream = path.open("a", encoding="utf-8")
    import faststream  # noqa: F401 - it installs its own stderr handler on "faststream" at import

    for name in ("", "faststream"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
    return path


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only this part")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--keep-stack", action="store_true", help="leave the private stack running afterwards"
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="submissions seeded for `reads` (default 20,000: every read scans on FerretDB 1.24)",
    )
    parser.add_argument(
        "--reads", type=int, default=20, help="timed lookups of each kind for `reads`"
    )
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected parts; return everything measured."""
    parts = set(args.only or PARTS)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "load_average": {"start": machine.load_average()},
        "options": {"runs": args.runs, "quick": args.quick, "parts": sorted(parts)},
        "workload": mix.workload_mix(),
    }
    if "cli" in parts:  # before the stack starts: its processes would take the cores
        from bench import cli_startup

        print("part 5: CLI start-up (no infrastructure)")
        results["cli"] = cli_startup.run(n=5 if args.quick else CLI_RUNS)
        if parts == {"cli"}:
            results["load_average"]["end"] = machine.load_average()
            results["targets"] = report.targets(results)
            return results
    from bench import end_to_end, scale_out

    if parts - {"cli", "scale"}:
        await end_to_end.start_stack()
    else:
        await scale_out.start_stack()
    results["stack"] = {"kafka": end_to_end.BOOTSTRAP, "mongo": end_to_end.MONGO_URI}
    try:
        if "router" in parts:
            from bench import router_stage

            print("part 1: raw aiokafka pass-through vs router stage")
            n = 10_000 if args.quick else 50_000
            results["router"] = await router_stage.run(end_to_end.BOOTSTRAP, n=n, runs=args.runs)
        if "archive" in parts:
            from bench import archive_stage

            print("part 2: raw PyMongo insert_many vs archive")
            n = 4_000 if args.quick else 40_000
            results["archive"] = await archive_stage.run(
                end_to_end.BOOTSTRAP, end_to_end.MONGO_URI, n=n, runs=args.runs
            )
        if "notifier" in parts:
            from bench import notifier_stage

            print("part 2b: raw aiokafka + aiosmtplib vs notifier")
            n = 1_500 if args.quick else 6_000
            results["notifier"] = await notifier_stage.run(end_to_end.stack(), n=n, runs=args.runs)
        if parts & {"e2e", "rss"}:
            print("part 3: end to end, part 4: peak RSS")
            results.update(await end_to_end.run(runs=args.runs, quick=args.quick))
        if "reads" in parts:
            from bench import archive_reads

            n = args.n or (2_000 if args.quick else 20_000)
            print(f"part 6: archive API reads at {n:,} submissions")
            results["reads"] = await archive_reads.run(end_to_end.MONGO_URI, n=n, reads=args.reads)
        if "scale" in parts:
            print("part 7: scale-out, 1 vs 2 replicas of router and notifier; rebalancing")
            if parts - {"cli", "scale"}:  # the other parts' topics have 3 partitions: start over
                end_to_end.stop_stack()
                await scale_out.start_stack()
            n = SCALE_N_QUICK if args.quick else SCALE_N
            results["scale"] = await scale_out.run(n=n, runs=args.runs, scaled=SCALE_STAGES)
    finally:
        if not args.keep_stack:
            end_to_end.stop_stack()
    results["load_average"]["end"] = machine.load_average()
    results["targets"] = report.targets(results)
    return results


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m bench`."""
    args = parse(argv)
    quiet_logs()
    started = time.monotonic()
    results = asyncio.run(run(args))
    results["duration_s"] = round(time.monotonic() - started)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    table = report.table(results)
    print()
    print(table)
    print(f"\nwritten: {args.out}")
    if not args.quick and not args.only:
        report.update_readmes(table)
