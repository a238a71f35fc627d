"""The declarative topic spec (`deploy/config/topics.yaml`): what every Sada topic must look like.

Partitions, replication factor, `min.insync.replicas` and `retention.ms` per topic, validated on
load like the other configuration files (errors name the file and line). `shared.topic_admin`
applies it to a broker; a single-node broker gets replication 1 only through `single_node`, an
explicit override the caller has to ask for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared import config, topics

SPEC_PATH = Path(__file__).resolve().parent.parent / "deploy" / "config" / "topics.yaml"
TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
HOUR_MS = 3_600_000


class TopicDefaults(BaseModel):
    """Settings a topic entry inherits unless it names its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partitions: int = Field(ge=1, le=1000, description="Partitions of a new topic.")
    replication_factor: int = Field(ge=1, le=7, description="Copies of every partition.")
    min_insync_replicas: int = Field(
        ge=1, description="Replicas that must have a record before acks=all acknowledges it."
    )
    retention_ms: int = Field(
        ge=HOUR_MS, description="How long records are kept (ms); never infinite: personal data."
    )

    @model_validator(mode="after")
    def _insync_fits(self) -> TopicDefaults:
        _check_insync(self.replication_factor, self.min_insync_replicas)
        return self


class TopicEntry(BaseModel):
    """One topic of the spec; unset fields come from `defaults`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: TopicName = Field(description="Topic name, one of shared/topics.py.")
    partitions: int | None = Field(default=None, ge=1, le=1000)
    replication_factor: int | None = Field(default=None, ge=1, le=7)
    min_insync_replicas: int | None = Field(default=None, ge=1)
    retention_ms: int | None = Field(default=None, ge=HOUR_MS)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("known")
        if known is not None and name not in known:
            msg = f"unknown topic {name!r}: shared/topics.py declares {', '.join(known)}"
            raise ValueError(msg)
        return name


class TopicSettings(BaseModel):
    """A topic's resolved settings: what the broker must show for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Topic name.")
    partitions: int = Field(description="Partitions of a new topic.")
    replication_factor: int = Field(description="Copies of every partition.")
    min_insync_replicas: int = Field(description="`min.insync.replicas`.")
    retention_ms: int = Field(description="`retention.ms`.")

    def configs(self) -> dict[str, str]:
        """Return the topic-level Kafka configs this spec owns, as the broker spells them."""
        return {
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(self.min_insync_replicas),
            "cleanup.policy": "delete",
        }


class TopicsFile(BaseModel):
    """Schema of `topics.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: TopicDefaults
    topics: tuple[TopicEntry, ...] = Field(min_length=1)

    @field_validator("topics")
    @classmethod
    def _complete(
        cls, entries: tuple[TopicEntry, ...], info: ValidationInfo
    ) -> tuple[TopicEntry, ...]:
        names = [entry.name for entry in entries]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            msg = f"topic listed twice: {', '.join(duplicates)}"
            raise ValueError(msg)
        known = (info.context or {}).get("known")
        missing = [name for name in known or () if name not in names]
        if missing:
            msg = f"missing topics (declared in shared/topics.py): {', '.join(missing)}"
            raise ValueError(msg)
        defaults = info.data.get("defaults")
        if not isinstance(defaults, TopicDefaults):
            return entries  # the defaults' own error is reported
        for entry in entries:
            _check_insync(
                entry.replication_factor or defaults.replication_factor,
                entry.min_insync_replicas or defaults.min_insync_replicas,
                entry.name,
            )
        return entries

    def settings(self, name: str) -> TopicSettings:
        """Resolve topic `name`; a name the spec does not list gets the defaults."""
        entry = next((e for e in self.topics if e.name == name), TopicEntry(name=name))
        values: dict[str, Any] = self.defaults.model_dump()
        values.update(entry.model_dump(exclude_none=True))
        return TopicSettings(**values)

    def all(self) -> tuple[TopicSettings, ...]:
        """Every listed topic, resolved, in file order."""
        return tuple(self.settings(entry.name) for entry in self.topics)

    def single_node(self) -> TopicsFile:
        """Return a copy for a one-broker cluster: replication factor and min.insync.replicas 1."""
        one = {"replication_factor": 1, "min_insync_replicas": 1}
        return self.model_copy(
            update={
                "defaults": self.defaults.model_copy(update=one),
                "topics": tuple(e.model_copy(update=one) for e in self.topics),
            }
        )


def _check_insync(replication: int, insync: int, name: str | None = None) -> None:
    """One broker may fail without stopping acks=all producers: min.insync < replicas."""
    where = f"{name}: " if name else ""
    if insync > replication:
        msg = f"{where}min_insync_replicas {insync} > replication_factor {replication}"
        raise ValueError(msg)
    if replication > 1 and insync >= replication:
        msg = (
            f"{where}min_insync_replicas {insync} = replication_factor {replication}: losing one"
            " broker would stop every producer (use replication_factor - 1)"
        )
        raise ValueError(msg)


def load(path: Path | str = SPEC_PATH) -> TopicsFile:
    """Return the spec at `path`, which must list exactly the topics of shared/topics.py.

    Raises `shared.config.ConfigError` naming the file, the line and the problem.
    """
    return config.load(path, TopicsFile, context={"known": topics.ALL})
