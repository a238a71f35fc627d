"""Measure the HTTP door's rate limit across intake replicas: two processes, one key, N requests.

`python -m bench.intake_replicas [--limit 100/minute] [--requests 300] [--replicas-setting 2]
[--one]`
starts two `sada serve intake` processes on the Kafka given by `SADA_KAFKA__BOOTSTRAP_SERVERS`
(ports from `--port`), sends `--requests` submissions with one demo key round-robin between
them (as a balancer spreading connections would; `--one`: all to the first, as one kept-alive
connection would), and prints how many each admitted and how
many were refused with 429. Each replica is told `SADA_INTAKE_REPLICAS=--replicas-setting`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter

import httpx
import orjson

KEY = "local-istitlaa-key"  # the documented local demo key (local mode only)


def _start(port: int, limit: str, replicas: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SADA_ENVIRONMENT": "local",
        "SADA_HTTP_PORT": str(port),
        "SADA_INTAKE_RATE_LIMIT": limit,
        "SADA_INTAKE_REPLICAS": str(replicas),
        "SADA_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-c", "from shared.cli import main; main()", "serve", "intake"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _ready(client: httpx.AsyncClient, url: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if (await client.get(f"{url}/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit(f"{url} did not become ready")


async def _measure(ports: list[int], requests: int, *, one: bool) -> dict[int, Counter[int]]:
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    codes: dict[int, Counter[int]] = {port: Counter() for port in ports}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=30) as client:
        for url in urls:
            await _ready(client, url)
        for i in range(requests):
            body = orjson.dumps(
                {
                    "channel": "istitlaa",
                    "channel_ref": f"RATE-{i}",
                    "kind": "opinion",
                    "body": "قياس حد المعدل",
                    "submitted_at": "2026-11-25T10:00:00+03:00",
                }
            )
            port = ports[0] if one else ports[i % len(ports)]
            answer = await client.post(
                f"http://127.0.0.1:{port}/v1/submissions", content=body, headers=headers
            )
            codes[port][answer.status_code] += 1
    return codes


def main() -> None:
    """Run the measurement and print the answers by replica and in total."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", default="100/minute")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--replicas-setting", type=int, default=2)
    parser.add_argument("--port", type=int, default=23001, help="first of two HTTP ports")
    parser.add_argument("--one", action="store_true", help="send everything to one replica")
    args = parser.parse_args()
    ports = [args.port, args.port + 1]
    processes = [_start(port, args.limit, args.replicas_setting) for port in ports]
    try:
        codes = asyncio.run(_measure(ports, args.requests, one=args.one))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    total: Counter[int] = Counter()
    for port, counted in codes.items():
        total.update(counted)
        print(f"replica :{port}  {dict(sorted(counted.items()))}")
    admitted = sum(n for code, n in total.items() if code != 429)
    spread = "to one replica" if args.one else "round-robin"
    print(
        f"limit {args.limit}, SADA_INTAKE_REPLICAS={args.replicas_setting}, 2 replicas, "
        f"{args.requests} requests {spread}: {admitted} admitted, {total[429]} refused (429)"
    )


if __name__ == "__main__":
    main()
