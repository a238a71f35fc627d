"""The topic spec applied to the real local broker, read back with describeConfigs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidReplicationFactorError

from deploy.local.topics import ensure_topics
from shared import topic_admin, topic_spec, topics
from shared.topic_spec import TopicEntry, TopicsFile
from tests import infra

HOUR_MS = 3_600_000


@pytest.fixture
async def admin() -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def _scratch_spec(*names: str, retention_ms: int) -> TopicsFile:
    spec = topic_spec.load()
    return spec.model_copy(
        update={"topics": tuple(TopicEntry(name=n, retention_ms=retention_ms) for n in names)}
    )


async def test_contract_topics_match_the_spec(admin: AIOKafkaAdminClient) -> None:
    # what `make run` does; the topics may already exist (then their configs are set)
    await ensure_topics(infra.KAFKA, partitions=3, single_node=True)
    found = await topic_admin.describe(admin, topics.ALL)
    assert set(found) == set(topics.ALL)
    for topic in topic_spec.load().all():
        state = found[topic.name]
        assert state.configs["retention.ms"] == str(topic.retention_ms)
        assert state.configs["min.insync.replicas"] == "1"  # the single-node override
        assert state.configs["cleanup.policy"] == "delete"
        assert state.replication_factor == 1
    assert found[topics.SUBMISSIONS].configs["retention.ms"] == str(7 * 24 * HOUR_MS)
    assert found[topics.DEADLETTER].configs["retention.ms"] == str(30 * 24 * HOUR_MS)


async def test_new_topic_is_created_with_the_spec(admin: AIOKafkaAdminClient) -> None:
    name = infra.unique("spec-new")
    spec = _scratch_spec(name, retention_ms=5 * HOUR_MS)
    created = await ensure_topics(infra.KAFKA, 4, (name,), single_node=True, spec=spec)
    assert created == [name]
    state = (await topic_admin.describe(admin, [name]))[name]
    assert state.partitions == 4
    assert state.configs["retention.ms"] == str(5 * HOUR_MS)
    assert state.configs["min.insync.replicas"] == "1"
    await admin.delete_topics([name])


async def test_existing_topic_configs_are_altered_to_the_spec(admin: AIOKafkaAdminClient) -> None:
    name = infra.unique("spec-drift")
    # created by hand: broker defaults (retention 7 days), another partition count
    await admin.create_topics([NewTopic(name, 2, 1, topic_configs={"retention.ms": "3600000"})])
    spec = _scratch_spec(name, retention_ms=9 * HOUR_MS)
    results = await topic_admin.apply(admin, spec.single_node(), names=[name], partitions=5)
    assert results[0].altered == {"retention.ms": str(9 * HOUR_MS)}
    assert results[0].partitions_differ  # reported, not changed
    state = (await topic_admin.describe(admin, [name]))[name]
    assert state.configs["retention.ms"] == str(9 * HOUR_MS)
    assert state.partitions == 2
    again = await topic_admin.apply(admin, spec.single_node(), names=[name])
    assert again[0].altered == {}  # idempotent
    await admin.delete_topics([name])


async def test_production_spec_on_one_broker_is_refused_not_silently_lowered(
    admin: AIOKafkaAdminClient,
) -> None:
    name = infra.unique("spec-rf")
    spec = _scratch_spec(name, retention_ms=HOUR_MS)  # replication 3, min.insync 2
    with pytest.raises(InvalidReplicationFactorError):
        await topic_admin.apply(admin, spec, names=[name])
    await admin.create_topics([NewTopic(name, 1, 1)])
    with pytest.raises(topic_admin.SpecMismatchError, match="--single-node"):
        await topic_admin.apply(admin, spec, names=[name])
    await admin.delete_topics([name])


def _topic_admin(*args: str, single_node: bool) -> subprocess.CompletedProcess[str]:
    """Run the command compose's kafka-init and the Kubernetes Job run."""
    env = {**os.environ, "SADA_KAFKA__BOOTSTRAP_SERVERS": infra.KAFKA, "SADA_LOG_JSON": "true"}
    env.pop("SADA_TOPICS_SINGLE_NODE", None)
    if single_node:
        env["SADA_TOPICS_SINGLE_NODE"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "shared.topic_admin", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def test_the_job_command_says_its_override_or_refuses() -> None:
    await ensure_topics(infra.KAFKA, partitions=3, single_node=True)
    # as written (replication 3, min.insync 2) a one-broker cluster cannot hold it: refused
    refused = _topic_admin(single_node=False)
    assert refused.returncode == 2
    assert "--single-node" in refused.stderr
    # compose's explicit override: applied, and said in the log
    applied = _topic_admin(single_node=True)
    assert applied.returncode == 0, applied.stderr
    assert "overridden for a single-node broker" in applied.stderr
    assert f"topic {topics.SUBMISSIONS}" in applied.stdout
    # --check: the local topics have 3 partitions, the spec says 6
    checked = _topic_admin("--check", single_node=True)
    assert checked.returncode == 1
    assert "the spec says 6: left as is" in checked.stdout
