"""Apply the topic spec (deploy/config/topics.yaml) to the local single-node broker.

`make run`, the tests and the benchmark call `ensure_topics`: missing topics are created with the
spec's retention and min.insync.replicas, existing ones get their configs set to it. A local broker
is one node, so callers say `single_node=True` (replication factor and min.insync.replicas 1,
logged); the partition count is usually lowered for a laptop too.

Usage: python -m deploy.local.topics [--partitions N] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio

from shared import topic_admin, topic_spec
from shared.settings import KafkaSettings
from shared.topic_spec import TopicsFile


async def ensure_topics(
    bootstrap: str,
    partitions: int | None = None,
    names: tuple[str, ...] | None = None,
    *,
    single_node: bool,
    spec: TopicsFile | None = None,
) -> list[str]:
    """Apply `spec` (default: deploy/config/topics.yaml) to `names`; return the topics created.

    `names` defaults to the spec's topics; others get the spec's defaults. `partitions` replaces
    the spec's count for new topics. `single_node` must be said: it lowers replication to 1.
    """
    if spec is None:
        spec = topic_admin.load_spec(topic_spec.SPEC_PATH, single_node=single_node)
    elif single_node:
        spec = spec.single_node()
    results = await topic_admin.run(
        KafkaSettings(bootstrap_servers=bootstrap), spec, names=names, partitions=partitions
    )
    return [result.name for result in results if result.created]


def main() -> None:
    """Parse arguments and apply the spec to the local broker."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    spec = topic_admin.load_spec(topic_spec.SPEC_PATH, single_node=True)
    results = asyncio.run(
        topic_admin.run(
            KafkaSettings(bootstrap_servers=args.bootstrap), spec, partitions=args.partitions
        )
    )
    for result in results:
        print(result.describe())


if __name__ == "__main__":
    main()
