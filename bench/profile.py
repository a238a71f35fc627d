"""`python -m bench.profile router|raw|archive|rawmongo|notifier|rawsmtp [--n N]`: where a stage
spends its time.

Pre-fills a topic as part 1 (2, 2b) does, then attaches py-spy (installed with
`pip install --target .cache/py-spy py-spy`) to this process for the measured section only,
and prints the functions with the most samples, inclusive and self. The collapsed stacks are
kept under `.run/bench/profiles/` (load them into speedscope.app or flamegraph.pl).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from bench import kafka, mix

ROOT = Path(__file__).resolve().parent.parent
PY_SPY = ROOT / ".cache" / "py-spy" / "bin" / "py-spy"
PROFILES = ROOT / ".run" / "bench" / "profiles"


@contextlib.asynccontextmanager
async def py_spy(name: str, rate: int = 100) -> AsyncIterator[Path]:
    """Sample this process with py-spy while the block runs; yield the output path.

    With `SADA_PROFILE_GIL=1`, only the thread holding the GIL is sampled: where the CPU goes,
    rather than where the event loop waits (a socket write waiting for the GIL looks busy).
    """
    PROFILES.mkdir(parents=True, exist_ok=True)
    out = PROFILES / f"{name}-{time.strftime('%H%M%S')}.txt"
    spy = subprocess.Popen(  # noqa: ASYNC220 - py-spy must attach while this loop runs
        [str(PY_SPY), "record", "--pid", str(os.getpid()), "--rate", str(rate),
         "--format", "raw", "-o", str(out),
         *(["--gil"] if os.environ.get("SADA_PROFILE_GIL") == "1" else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(1.0)  # let py-spy attach
    try:
        yield out
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def summarise(path: Path, top: int = 30) -> str:
    """Return the top functions by inclusive and by self samples, from collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] for f in stack.split(";")]
        if any("select" in f and "selectors" in f for f in frames[-2:]):
            frames = [*frames, "<idle: waiting on sockets>"]
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{total} samples; inclusive:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    return "\n".join(lines)


async def profile_router(bootstrap: str, n: int, contender: str) -> Path:
    """Profile part 1's `contender` ("raw" or "router") on `n` fresh records."""
    from bench import router_stage

    source = f"bench.profile.in-{uuid.uuid4().hex[:8]}"
    await kafka.create_topics(bootstrap, [source])
    await kafka.fill(bootstrap, mix.accepted_events(f"prof-{uuid.uuid4().hex[:6]}", n, source))
    async with py_spy(contender) as out:
        result = await router_stage.one_run(bootstrap, source, n, contender)
    print(f"{contender}: {result['msgs_per_s']:,} msgs/s under py-spy")
    return out


async def profile_notifier(n: int, contender: str, *, keep: bool) -> Path:
    """Profile part 2b's `contender` on the private stack (needs its sink and Maildir)."""
    from bench import end_to_end, notifier_stage

    await end_to_end.start_stack()
    try:
        return await notifier_stage.profile(end_to_end.stack(), n, contender)
    finally:
        if not keep:
            end_to_end.stop_stack()


def main() -> None:
    """Parse arguments, profile, print the summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument(
        "contender", choices=("raw", "router", "rawmongo", "archive", "rawsmtp", "notifier")
    )
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017/")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument(
        "--keep-stack",
        action="store_true",
        help="notifier|rawsmtp run on the bench's private stack (started afresh): leave it up",
    )
    args = parser.parse_args()
    from bench.cli import quiet_logs

    quiet_logs()
    if args.contender in ("raw", "router"):
        out = asyncio.run(profile_router(args.bootstrap, args.n, args.contender))
    elif args.contender in ("rawsmtp", "notifier"):
        out = asyncio.run(profile_notifier(args.n, args.contender, keep=args.keep_stack))
    else:
        from bench import archive_stage

        out = asyncio.run(archive_stage.profile(args.bootstrap, args.mongo, args.n, args.contender))
    print(summarise(out, args.top))
    print(f"stacks: {out}")


if __name__ == "__main__":
    main()
