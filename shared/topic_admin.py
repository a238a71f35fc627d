"""Apply the topic spec (`deploy/config/topics.yaml`) to a Kafka cluster, and read it back.

Missing topics are created with the spec's partitions, replication factor and configs; existing
topics get their configs (`retention.ms`, `min.insync.replicas`, `cleanup.policy`) set to the
spec. The partition count of an existing topic is reported, never changed: adding partitions
moves keys to other partitions and with them the order of a submission's events.

    python -m shared.topic_admin [--spec PATH] [--single-node] [--partitions N] [--check]

The connection comes from the services' settings (`SADA_KAFKA__*`: bootstrap, SASL_SSL), so the
compose job and the Kubernetes Job use the same credentials as the services. `--single-node`
(or SADA_TOPICS_SINGLE_NODE=true) is the explicit override for a one-broker cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import topic_spec
from shared.config import ConfigError
from shared.lag import client_options
from shared.logging import get_logger
from shared.settings import KafkaSettings
from shared.topic_spec import TopicSettings, TopicsFile

log = get_logger(__name__)

TOPIC_ALREADY_EXISTS = 36
OWNED = ("retention.ms", "min.insync.replicas", "cleanup.policy")
"""The topic configs the spec owns: the keys of `TopicSettings.configs`."""


class SpecMismatchError(RuntimeError):
    """The cluster cannot hold the spec as asked (e.g. too few replicas for min.insync)."""


@dataclass(frozen=True, slots=True)
class TopicState:
    """What the broker shows for one topic."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome for one topic: created, configs altered, or already as specified."""

    name: str
    created: bool
    altered: dict[str, str]
    partitions_found: int | None = None
    partitions_wanted: int | None = None

    @property
    def partitions_differ(self) -> bool:
        """An existing topic has another partition count than the spec (reported, not fixed)."""
        return self.partitions_found is not None and self.partitions_found != self.partitions_wanted

    def describe(self) -> str:
        """One line for the operator."""
        if self.created:
            state = "created"
        elif self.altered:
            state = "configs set: " + ", ".join(f"{k}={v}" for k, v in sorted(self.altered.items()))
        else:
            state = "as specified"
        if self.partitions_differ:
            state += (
                f" (has {self.partitions_found} partitions, the spec says"
                f" {self.partitions_wanted}: left as is)"
            )
        return f"topic {self.name:<28} {state}"


def _raise_for(code: int, message: str | None, name: str) -> None:
    if code:
        error = for_code(code)
        raise error(f"{name}: {message or error.__name__}")


async def describe(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, TopicState]:
    """Return partitions, replication and the spec-owned configs of the `names` that exist."""
    existing = set(await admin.list_topics())
    present = [name for name in names if name in existing]
    if not present:
        return {}
    metadata = {t["topic"]: t for t in await admin.describe_topics(present)}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(OWNED)) for name in present]
    )
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for code, message, _type, name, entries in response.resources:
            _raise_for(code, message, name)
            configs[name] = {entry[0]: entry[1] for entry in entries}
    states = {}
    for name in present:
        partitions = metadata[name]["partitions"]
        states[name] = TopicState(
            name=name,
            partitions=len(partitions),
            replication_factor=len(partitions[0]["replicas"]) if partitions else 0,
            configs=configs.get(name, {}),
        )
    return states


async def apply(
    admin: AIOKafkaAdminClient,
    spec: TopicsFile,
    *,
    names: Sequence[str] | None = None,
    partitions: int | None = None,
) -> list[Applied]:
    """Make the broker match `spec` for `names` (default: every topic of the spec).

    `partitions` overrides the spec's partition count of new topics (local runs use fewer).
    Names the spec does not list get its defaults (benchmark and test topics).
    """
    wanted = [spec.settings(n) for n in names] if names is not None else list(spec.all())
    if partitions is not None:
        wanted = [t.model_copy(update={"partitions": partitions}) for t in wanted]
    found = await describe(admin, [t.name for t in wanted])
    missing = [t for t in wanted if t.name not in found]
    created = await _create(admin, missing)
    # "already exists" for a topic the metadata did not show yet (just created by someone
    # else): wait until the broker describes it, then treat it as existing.
    racing = [t.name for t in missing if t.name not in created]
    if racing:
        found.update(await _describe_when_visible(admin, racing))
    results: list[Applied] = []
    to_alter: list[ConfigResource] = []
    for topic in wanted:
        state = found.get(topic.name)
        if state is None or topic.name in created:
            results.append(Applied(topic.name, created=topic.name in created, altered={}))
            continue
        if state.replication_factor < topic.min_insync_replicas:
            msg = (
                f"{topic.name} has {state.replication_factor} replica(s), the spec wants"
                f" min.insync.replicas {topic.min_insync_replicas}: every acks=all write would"
                " fail (a single-node broker needs the explicit --single-node override)"
            )
            raise SpecMismatchError(msg)
        differing = {k: v for k, v in topic.configs().items() if state.configs.get(k) != v}
        if differing:
            # AlterConfigs replaces the topic's dynamic configs: send the whole owned set.
            to_alter.append(ConfigResource(ConfigResourceType.TOPIC, topic.name, topic.configs()))
        results.append(
            Applied(
                topic.name,
                created=False,
                altered=differing,
                partitions_found=state.partitions,
                partitions_wanted=topic.partitions,
            )
        )
    if to_alter:
        for response in await admin.alter_configs(to_alter):
            for code, message, _type, name in response.resources:
                _raise_for(code, message, name)
    return results


async def _describe_when_visible(
    admin: AIOKafkaAdminClient, names: Sequence[str], within: float = 30.0
) -> dict[str, TopicState]:
    """Describe `names`, which exist, once the broker's metadata shows all of them."""
    async with asyncio.timeout(within):
        while True:
            found = await describe(admin, names)
            if len(found) == len(names):
                return found
            await asyncio.sleep(0.2)


async def _create(admin: AIOKafkaAdminClient, missing: Sequence[TopicSettings]) -> set[str]:
    """Create `missing`; return the names this call created (a racing creator is fine)."""
    if not missing:
        return set()
    response = await admin.create_topics(
        [
            NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.configs())
            for t in missing
        ]
    )
    created = set()
    for name, code, message in response.topic_errors:
        if code == TOPIC_ALREADY_EXISTS:
            continue
        _raise_for(code, message, name)
        created.add(name)
    return created


def load_spec(path: Path | str = topic_spec.SPEC_PATH, *, single_node: bool) -> TopicsFile:
    """Load the spec; with `single_node`, replication 1 and min.insync 1, said out loud."""
    spec = topic_spec.load(path)
    if single_node:
        log.warning(
            "topic spec overridden for a single-node broker: replication_factor=1,"
            " min_insync_replicas=1 (never for production)",
            spec=str(path),
        )
        spec = spec.single_node()
    return spec


async def run(
    settings: KafkaSettings,
    spec: TopicsFile,
    *,
    names: Sequence[str] | None = None,
    partitions: int | None = None,
) -> list[Applied]:
    """Connect with `settings`, apply `spec`, disconnect."""
    options: dict[str, Any] = client_options(settings) | {"client_id": "sada-topics"}
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        return await apply(admin, spec, names=names, partitions=partitions)
    finally:
        await admin.close()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}


def main(argv: Sequence[str] | None = None) -> int:
    """Apply the spec with the services' Kafka settings.

    Exit 2 on an invalid spec or one the cluster cannot hold; 1 with `--check` when an existing
    topic's partition count differs from the spec.
    """
    from shared.logging import configure

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=topic_spec.SPEC_PATH)
    parser.add_argument(
        "--single-node",
        action="store_true",
        default=_truthy(os.environ.get("SADA_TOPICS_SINGLE_NODE")),
        help="one-broker cluster: replication factor and min.insync.replicas 1 (logged)",
    )
    parser.add_argument("--partitions", type=int, help="partitions of new topics (default: spec)")
    parser.add_argument("--bootstrap", help="default: SADA_KAFKA__BOOTSTRAP_SERVERS")
    parser.add_argument("--check", action="store_true", help="fail on a partition mismatch")
    args = parser.parse_args(argv)
    configure("topics", json=_truthy(os.environ.get("SADA_LOG_JSON", "true")))
    settings = _kafka_settings(args.bootstrap)
    try:
        spec = load_spec(args.spec, single_node=args.single_node)
        results = asyncio.run(run(settings, spec, partitions=args.partitions))
    except (ConfigError, SpecMismatchError) as exc:
        print(f"topics: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(result.describe(), flush=True)
    return 1 if args.check and any(r.partitions_differ for r in results) else 0


class _Env(BaseSettings):
    """The services' Kafka settings from the environment (`SADA_KAFKA__*`)."""

    model_config = SettingsConfigDict(env_prefix="SADA_", env_nested_delimiter="__", extra="ignore")
    kafka: KafkaSettings = KafkaSettings()


def _kafka_settings(bootstrap: str | None) -> KafkaSettings:
    kafka = _Env().kafka
    return kafka.model_copy(update={"bootstrap_servers": bootstrap}) if bootstrap else kafka


if __name__ == "__main__":
    sys.exit(main())
