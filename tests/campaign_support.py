"""Test helpers for the campaigns service: the labelled corpus as routed events and records."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.campaigns.grouping import Grouping, MemoryStore, group
from services.intake.validation import Rejected, validate
from services.router import config as rules_config
from services.router.routing import routed_event
from shared import events
from shared.directory import load_channels
from shared.kafka import Record
from shared.scopes import campaign_scope
from tests import archive_samples, campaign_corpus
from tests.router_support import accepted

ROUTER = events.Producer(service="router", version="test")


def corpus_events(*, unit_share: int = 7) -> list[events.SubmissionRouted]:
    """Return the labelled corpus as routed events, in corpus order.

    Every `unit_share`-th item loses its `legislation_ref`, so unit scopes are exercised too.
    """
    config = rules_config.load()
    channels = load_channels()
    routed = []
    for n, item in enumerate(campaign_corpus.build()):
        raw = dict(item.raw)
        if unit_share and n % unit_share == 0:
            raw.pop("legislation_ref", None)
        outcome = validate(orjson.dumps(raw), channels=channels, now=datetime.now(UTC))
        assert not isinstance(outcome, Rejected), outcome.reasons
        routed.append(routed_event(accepted(outcome.submission), config, ROUTER))
    return routed


def scope_key(event: events.SubmissionRouted) -> str:
    """Return the Kafka key the router gives `event`: its campaign scope."""
    return campaign_scope(event.payload.submission.legislation_ref, event.payload.decision.unit)


def expected(routed: list[events.SubmissionRouted]) -> dict[str, Grouping]:
    """Return each routed event's decision by one process seeing them in this order."""
    store = MemoryStore()
    return {
        event.event_id: group(event.payload.submission, event.payload.decision.unit, store)
        for event in routed
    }


def record(event: events.SubmissionRouted | bytes, partition: int, offset: int) -> Record:
    """Return `event` as the consumer record at `partition`/`offset` of the routed topic."""
    value = event if isinstance(event, bytes) else event.model_dump_json().encode()
    return archive_samples.record("routed", value, partition=partition, offset=offset)


def partitioned(
    routed: list[events.SubmissionRouted], partitions: int = 3
) -> list[tuple[events.SubmissionRouted, int, int]]:
    """Place each event on a partition by its scope, with per-partition offsets, in order."""
    scopes = sorted({scope_key(event) for event in routed})
    offsets = [0] * partitions
    placed = []
    for event in routed:
        partition = scopes.index(scope_key(event)) % partitions
        placed.append((event, partition, offsets[partition]))
        offsets[partition] += 1
    return placed
