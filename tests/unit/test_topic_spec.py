"""The topic spec (deploy/config/topics.yaml): the committed file, and errors naming file:line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared import topic_admin, topic_spec, topics
from shared.config import ConfigError

DAY_MS = 24 * 3_600_000

HEAD = (
    "defaults:\n"
    "  partitions: 6\n"
    "  replication_factor: 3\n"
    "  min_insync_replicas: 2\n"
    "  retention_ms: 604800000\n"
    "topics:\n"
)


def _every_topic(extra: str = "") -> str:
    return HEAD + "".join(f"  - name: {name}\n" for name in topics.ALL) + extra


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_committed_spec_is_production_grade() -> None:
    spec = topic_spec.load()
    resolved = {t.name: t for t in spec.all()}
    assert tuple(resolved) == topics.ALL
    for topic in resolved.values():
        assert topic.replication_factor == 3
        assert topic.min_insync_replicas == 2
    # the raw submissions carry personal data: a week, no more; the dead letters wait longer
    assert resolved[topics.SUBMISSIONS].retention_ms == 7 * DAY_MS
    assert resolved[topics.DEADLETTER].retention_ms == 30 * DAY_MS
    assert all(t.retention_ms <= resolved[topics.DEADLETTER].retention_ms for t in spec.all())


def test_single_node_is_an_explicit_copy() -> None:
    spec = topic_spec.load()
    local = spec.single_node()
    assert {(t.replication_factor, t.min_insync_replicas) for t in local.all()} == {(1, 1)}
    assert [t.retention_ms for t in local.all()] == [t.retention_ms for t in spec.all()]
    assert spec.all()[0].replication_factor == 3  # the original is untouched


def test_configs_use_kafka_names() -> None:
    topic = topic_spec.load().settings(topics.SUBMISSIONS)
    assert topic.configs() == {
        "retention.ms": str(7 * DAY_MS),
        "min.insync.replicas": "2",
        "cleanup.policy": "delete",
    }


def test_unlisted_name_gets_the_defaults() -> None:
    scratch = topic_spec.load().settings("bench.scratch")
    assert (scratch.partitions, scratch.retention_ms) == (6, 7 * DAY_MS)


def test_unknown_topic_is_reported_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, _every_topic("  - name: feedback.typo.v1\n"))
    with pytest.raises(ConfigError, match=r"unknown topic 'feedback\.typo\.v1'") as caught:
        topic_spec.load(path)
    assert caught.value.line == 6 + len(topics.ALL) + 1
    position = f"{path}:{caught.value.line}: topics.{len(topics.ALL)}.name"
    assert str(caught.value).startswith(position)


def test_missing_topic_is_named(tmp_path: Path) -> None:
    text = HEAD + "".join(f"  - name: {name}\n" for name in topics.ALL[:-1])
    with pytest.raises(
        ConfigError, match=rf"missing topics .*{re.escape(topics.DEADLETTER)}"
    ) as caught:
        topic_spec.load(_write(tmp_path, text))
    assert caught.value.line == 7  # where the list begins


def test_duplicate_topic_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _every_topic(f"  - name: {topics.ACCEPTED}\n"))
    with pytest.raises(ConfigError, match=f"topic listed twice: {re.escape(topics.ACCEPTED)}"):
        topic_spec.load(path)


def test_infinite_or_tiny_retention_is_refused(tmp_path: Path) -> None:
    text = _every_topic().replace(
        f"  - name: {topics.SUBMISSIONS}\n",
        f"  - name: {topics.SUBMISSIONS}\n    retention_ms: -1\n",
    )
    with pytest.raises(ConfigError, match=r"topics\.0\.retention_ms") as caught:
        topic_spec.load(_write(tmp_path, text))
    assert caught.value.line == 8


@pytest.mark.parametrize(
    ("replication", "insync", "problem"),
    [(3, 3, "losing one broker would stop every producer"), (2, 3, "min_insync_replicas 3 > ")],
)
def test_min_insync_must_leave_room_for_a_lost_broker(
    tmp_path: Path, replication: int, insync: int, problem: str
) -> None:
    text = _every_topic().replace("replication_factor: 3", f"replication_factor: {replication}")
    text = text.replace("min_insync_replicas: 2", f"min_insync_replicas: {insync}")
    with pytest.raises(ConfigError, match=problem) as caught:
        topic_spec.load(_write(tmp_path, text))
    assert caught.value.line == 2


def test_per_topic_insync_names_the_topic(tmp_path: Path) -> None:
    text = _every_topic().replace(
        f"  - name: {topics.ROUTED}\n", f"  - name: {topics.ROUTED}\n    min_insync_replicas: 3\n"
    )
    with pytest.raises(ConfigError, match=f"{re.escape(topics.ROUTED)}: min_insync_replicas 3 = "):
        topic_spec.load(_write(tmp_path, text))


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    text = _every_topic().replace("  partitions: 6\n", "  partitions: 6\n  acks: 1\n")
    with pytest.raises(ConfigError, match=r"defaults\.acks: Extra inputs") as caught:
        topic_spec.load(_write(tmp_path, text))
    assert caught.value.line == 3


def test_the_admin_reads_back_every_config_the_spec_sets() -> None:
    assert set(topic_admin.OWNED) == set(topic_spec.load().all()[0].configs())
