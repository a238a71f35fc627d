"""The campaigns app wired with FastStream's in-memory broker: routed in, grouped out.

The state is a dictionary standing in for MongoDB (one process never needs to reload it);
persistence, reloads and replicas are tested on the real infrastructure
(tests/integration/test_campaigns_*.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.campaigns.app import build
from services.campaigns.grouping import Grouping, MemoryStore
from services.campaigns.settings import CampaignsSettings
from services.campaigns.store import Position, ScopeChanges
from shared import events, topics
from tests import campaign_support

ROUTED, GROUPED = "test.campaigns.routed", "test.campaigns.grouped"


class DictState:
    """Positions and decisions in dictionaries: what one process alone would need."""

    def __init__(self) -> None:
        self.positions_: dict[str, Position] = {}
        self.decisions: dict[str, Grouping] = {}
        self.saves = 0

    async def positions(self, scopes: Iterable[str]) -> dict[str, Position]:
        return {scope: self.positions_.get(scope, Position()) for scope in scopes}

    async def load(self, scope: str, upto: Position, store: MemoryStore) -> int:
        return 0  # only this process ever decides: its memory is the state

    async def decided(self, event_ids: Sequence[str]) -> dict[str, Grouping]:
        return {i: self.decisions[i] for i in event_ids if i in self.decisions}

    async def save(self, changes: Sequence[ScopeChanges]) -> None:
        self.saves += 1
        for change in changes:
            self.positions_[change.scope] = change.after
            self.decisions |= {d.event_id: d.grouping for d in change.decisions}

    async def expire(self, scope: str, before: datetime) -> int:
        return 0


class Wired:
    """The app's broker under test, with sinks on the grouped and dead-letter topics."""

    def __init__(self, broker: KafkaBroker, state: DictState) -> None:
        self.broker, self.state = broker, state
        self.grouped: list[events.SubmissionGrouped] = []
        self.deadletters: list[events.MessageDeadLettered] = []

        @broker.subscriber(GROUPED)
        async def on_grouped(body: dict[str, Any]) -> None:
            self.grouped.append(events.SubmissionGrouped.model_validate(body))

        @broker.subscriber(topics.DEADLETTER)
        async def on_dead(body: dict[str, Any]) -> None:
            self.deadletters.append(events.MessageDeadLettered.model_validate(body))


@pytest.fixture
async def wired() -> AsyncIterator[Wired]:
    state = DictState()
    settings = CampaignsSettings.model_validate({"routed_topic": ROUTED, "grouped_topic": GROUPED})
    app = build(settings, state=state)
    result = Wired(app.state.broker, state)
    async with TestKafkaBroker(app.state.broker):
        yield result


async def test_each_routed_submission_is_published_again_with_its_campaign(wired: Wired) -> None:
    routed = campaign_support.corpus_events()[:120]
    expected = campaign_support.expected(routed)
    for event in routed:
        await wired.broker.publish(
            event.model_dump_json().encode(), ROUTED, key=campaign_support.scope_key(event).encode()
        )
    assert [g.submission_id for g in wired.grouped] == [r.submission_id for r in routed]
    for event, grouped in zip(routed, wired.grouped, strict=True):
        want, got = expected[event.event_id], grouped.payload.campaign
        assert grouped.payload.decision == event.payload.decision
        assert grouped.correlation_id == event.correlation_id
        assert (got.campaign_id if got else None) == want.campaign_id
        assert (got.size if got else None) == want.campaign_size
    assert any(g.payload.campaign for g in wired.grouped)
    assert wired.state.saves == len(routed)


async def test_a_record_that_is_not_a_routed_event_is_dead_lettered_and_the_rest_go_on(
    wired: Wired,
) -> None:
    good = campaign_support.corpus_events()[:1]
    await wired.broker.publish(b'{"event_type": "submission.routed"}', ROUTED, key=b"x")
    await wired.broker.publish(good[0].model_dump_json().encode(), ROUTED, key=b"y")
    assert len(wired.deadletters) == 1
    assert wired.deadletters[0].payload.source.topic == ROUTED
    assert [g.submission_id for g in wired.grouped] == [good[0].submission_id]
