"""Create Sada's six topics with a chosen partition count; existing topics are left alone.

Usage: python -m deploy.local.topics [--partitions N] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared import topics


async def ensure_topics(
    bootstrap: str, partitions: int, names: tuple[str, ...] = topics.ALL
) -> list[str]:
    """Create the missing topics among `names`; return the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="sada-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            await admin.create_topics([NewTopic(name, partitions, 1) for name in missing])
        return missing
    finally:
        await admin.close()


def main() -> None:
    """Parse arguments and create the topics."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    created = asyncio.run(ensure_topics(args.bootstrap, args.partitions))
    for name in topics.ALL:
        state = "created" if name in created else "exists"
        print(f"topic {name:<28} {state}")


if __name__ == "__main__":
    main()
