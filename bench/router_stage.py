"""Part 1: raw aiokafka pass-through vs the router stage, on one pre-filled topic.

Both contenders read the same N `submission.accepted` records with a fresh consumer group and
write one record per input to a fresh output topic, with the same delivery guarantees: acks=all,
idempotent producer, every acknowledgement awaited before the batch's commit. Runs alternate
(raw, router, raw, router, ...) so drifting background load hits both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from bench import kafka, mix
from bench.stats import median, ratio
from services.router.app import build
from services.router.settings import RouterSettings
from shared.settings import KafkaSettings

MAX_RECORDS = KafkaSettings().max_records
BATCH_TIMEOUT_MS = KafkaSettings().batch_timeout_ms


def settle_heap() -> None:
    """Collect, then freeze what the benchmark itself holds, before anything is measured.

    The contenders run in this process; without this, every full collection they trigger would
    also walk the benchmark's own objects (tens of thousands of pre-built records), a cost a
    deployed service does not have, and one that grows with how much a contender allocates.
    """
    gc.collect()
    gc.freeze()


async def raw_pass_through(bootstrap: str, source: str, target: str, group: str, n: int) -> None:
    """Consume `n` records: getmany(500) → orjson parse → send all → gather acks → commit."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = kafka.producer(bootstrap)
    await consumer.start()
    await producer.start()
    try:
        done = 0
        while done < n:
            batches = await consumer.getmany(timeout_ms=BATCH_TIMEOUT_MS, max_records=MAX_RECORDS)
            pending = []
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    value = orjson.dumps(event)
                    pending.append(await producer.send(target, value, key=record.key))
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
                done += len(pending)
    finally:
        await producer.stop()
        await consumer.stop()


@contextlib.asynccontextmanager
async def router_running(
    bootstrap: str, source: str, target: str, group: str
) -> AsyncIterator[None]:
    """Run the real router app (its FastAPI lifespan: broker, subscriber, runner) in-process."""
    settings = RouterSettings(
        accepted_topic=source,
        routed_topic=target,
        group_id=group,
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
    )
    app = build(settings)
    async with app.router.lifespan_context(app):
        yield


async def one_run(bootstrap: str, source: str, n: int, contender: str) -> dict[str, Any]:
    """Measure one contender once; return its rate."""
    tag = uuid.uuid4().hex[:8]
    target, group = f"bench.router.out-{tag}", f"bench-{contender}-{tag}"
    await kafka.create_topics(bootstrap, [target])
    started = time.monotonic()
    watch = asyncio.create_task(kafka.watch_commits(bootstrap, group, n, within=300))
    if contender == "raw":
        await raw_pass_through(bootstrap, source, target, group, n)
        progress = await watch
    else:
        async with router_running(bootstrap, source, target, group):
            progress = await watch
    return {
        "msgs_per_s": round(progress.rate()),
        "cpu_us_per_msg": round(progress.cpu_us_per_record(), 1),
        "wall_s": round(time.monotonic() - started, 2),
        "group": group,
    }


async def run(bootstrap: str, *, n: int, runs: int) -> dict[str, Any]:
    """Pre-fill a topic with `n` accepted events, then alternate raw and router `runs` times."""
    source = f"bench.router.in-{uuid.uuid4().hex[:8]}"
    await kafka.create_topics(bootstrap, [source])
    started = time.monotonic()
    records = mix.accepted_events(f"bench-{uuid.uuid4().hex[:6]}", n, source)
    await kafka.fill(bootstrap, records)
    prefill_s = time.monotonic() - started
    described = mix.describe(records)
    del records
    settle_heap()
    # A fresh broker's JIT is cold: the first runs on it would be slow for both contenders.
    warm = f"bench.router.warm-{uuid.uuid4().hex[:8]}"
    await kafka.create_topics(bootstrap, [warm])
    await raw_pass_through(bootstrap, source, warm, f"bench-warm-{warm}", min(n, 20_000))
    results: dict[str, list[dict[str, Any]]] = {"raw": [], "router": []}
    for index in range(runs):
        for contender in ("raw", "router"):
            outcome = await one_run(bootstrap, source, n, contender)
            results[contender].append(outcome)
            print(
                f"  router part, run {index + 1}/{runs}: {contender:6} "
                f"{outcome['msgs_per_s']:>8,} msgs/s, {outcome['cpu_us_per_msg']:6.1f} µs CPU/msg"
            )
    raw = median([r["msgs_per_s"] for r in results["raw"]])
    stage = median([r["msgs_per_s"] for r in results["router"]])
    raw_cpu = median([r["cpu_us_per_msg"] for r in results["raw"]])
    stage_cpu = median([r["cpu_us_per_msg"] for r in results["router"]])
    return {
        "n": n,
        "topic": source,
        "mix": described,
        "prefill_s": round(prefill_s, 1),
        "runs": results,
        "median": {
            "raw_msgs_per_s": raw,
            "router_msgs_per_s": stage,
            "raw_cpu_us_per_msg": raw_cpu,
            "router_cpu_us_per_msg": stage_cpu,
        },
        "ratio": round(ratio(stage, raw), 3),
        "cpu_ratio": round(ratio(raw_cpu, stage_cpu), 3),
    }
