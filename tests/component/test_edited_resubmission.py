"""Submissions seen twice through intake, router, notifier and archive.

The campaigns service between router and notifier is stood in for by `support.as_grouped`
(no campaign): the notifier consumes grouped events, the archive here keeps the routed ones.

An edited resubmission (same channel reference, new content): the audit trail keeps both
decisions, a unit gets one e-mail per submission. A refused notification re-sent as the
SadaNotificationsFailing runbook says: sent once to the fixed mailbox, both outcomes archived.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.archive.archiver import Archiver
from services.archive.projection import current
from services.archive.settings import ArchiveTopics
from services.intake.outcomes import Destinations, outcome_of
from services.notifier.mailer import RefusedError
from services.notifier.messages import notification_key
from services.router import config as rules_config
from services.router.routing import routed_event
from shared import events
from shared.consultations import load_consultations
from shared.directory import load_channels
from shared.events import (
    NotificationFailed,
    NotificationSent,
    SubmissionAccepted,
    SubmissionRouted,
)
from tests import notifier_support as support
from tests.archive_samples import record
from tests.component.archive_fake import InMemoryArchiveStore
from tests.component.test_notifier_service import FakeMailer, notifier

TOPICS = ArchiveTopics()
PRODUCER = events.Producer(service="test", version="1")


def _accepted(raw: dict[str, Any]) -> SubmissionAccepted:
    outcome = outcome_of(
        orjson.dumps(raw),
        channels=load_channels(),
        consultations=load_consultations(),
        now=datetime.now(UTC),
        door="http",
        source=None,
        producer=PRODUCER,
        to=Destinations(accepted=TOPICS.accepted, rejected=TOPICS.rejected),
    )
    return SubmissionAccepted.model_validate_json(outcome.outgoing.value)


def _routed(accepted: SubmissionAccepted) -> SubmissionRouted:
    return routed_event(accepted, rules_config.load(), PRODUCER)


async def _archive(*batch: tuple[str, events.Envelope]) -> InMemoryArchiveStore:
    store = InMemoryArchiveStore()
    archiver = Archiver(store, TOPICS, cache_size=100)
    for offset, (topic, event) in enumerate(batch):
        await archiver.archive([record(topic, event.model_dump_json().encode(), offset=offset)])
    return store


def _archived(store: InMemoryArchiveStore, event_type: str) -> list[dict[str, Any]]:
    docs = sorted(store.events.values(), key=lambda d: d["seq"])
    return [orjson.loads(d["event"]) for d in docs if d["event_type"] == event_type]


async def test_an_edit_to_the_same_unit_is_archived_twice_and_mailed_once() -> None:
    edited = {**support.ARABIC_SAMPLE, "body": support.ARABIC_SAMPLE["body"] + "\nتعديل: المادة 13"}
    first, second = _accepted(support.ARABIC_SAMPLE), _accepted(edited)
    assert first.submission_id == second.submission_id  # the same submission, edited
    routed = [_routed(first), _routed(second)]
    assert {r.payload.decision.unit for r in routed} == {"legislations_office"}
    async with notifier() as h:
        for event in routed:
            await h.deliver(support.as_grouped(event))
    assert len(h.mailer.sent) == 1  # one e-mail per (submission, unit): docs/notifier.md
    sent = [o for o in h.outcomes if isinstance(o, NotificationSent)]
    assert [o.payload.repeat for o in sent] == [False, True]

    store = await _archive(
        (TOPICS.accepted, first),
        (TOPICS.routed, routed[0]),
        (TOPICS.notifications, sent[0]),
        (TOPICS.accepted, second),
        (TOPICS.routed, routed[1]),
        (TOPICS.notifications, sent[1]),
    )
    bodies = [r["payload"]["submission"]["body"] for r in _archived(store, "submission.routed")]
    assert bodies == [support.ARABIC_SAMPLE["body"], edited["body"]]
    outcomes = _archived(store, "notification.sent")
    assert [o["payload"]["repeat"] for o in outcomes] == [False, True]


async def test_an_edit_that_moves_the_submission_keeps_both_decisions_and_mails_the_new_unit() -> (
    None
):
    moved = {**support.ENGLISH_SAMPLE, "legislation_ref": "MOJ-DRAFT-2026-003"}
    first, second = _accepted(support.ENGLISH_SAMPLE), _accepted(moved)
    routed = [_routed(first), _routed(second)]
    units = [r.payload.decision.unit for r in routed]
    assert units == ["voice_of_customer", "legislations_office"]
    async with notifier() as h:
        for event in routed:
            await h.deliver(support.as_grouped(event))
    assert [e.recipient for e in h.mailer.sent] == [
        "voc@moj.gov.sa",
        "LegislationsOffice@moj.gov.sa",
    ]
    store = await _archive(
        *((TOPICS.routed, event) for event in routed),
        *((TOPICS.notifications, outcome) for outcome in h.outcomes),
    )
    decisions = _archived(store, "submission.routed")
    assert [d["payload"]["decision"]["unit"] for d in decisions] == units
    assert len(_archived(store, "notification.sent")) == 2


async def test_a_replay_of_the_same_content_under_the_same_rules_keeps_every_id() -> None:
    again = _accepted(support.ARABIC_SAMPLE)
    first = _accepted(support.ARABIC_SAMPLE)
    assert again.event_id == first.event_id
    assert _routed(again).event_id == _routed(first).event_id
    async with notifier() as h:
        await h.deliver(support.as_grouped(_routed(first)))
        await h.deliver(support.as_grouped(_routed(again)))
    assert len({o.event_id for o in h.outcomes}) == 1


@pytest.fixture
def wrong_units(tmp_path: Path) -> Path:
    """units.yaml with a mistyped Voice of the Customer mailbox."""
    units = Path(rules_config.UNITS_PATH).read_text("utf-8")
    wrong = tmp_path / "units.yaml"
    wrong.write_text(units.replace("voc@moj.gov.sa", "vox@moj.gov.sa"), "utf-8")
    return wrong


async def test_a_refused_notification_is_resent_by_the_runbook_and_archived(
    wrong_units: Path,
) -> None:
    """SadaNotificationsFailing's procedure: a replay alone sends nothing; after the mailbox is
    fixed, deleting the ledger entry and re-publishing the accepted event sends it once."""
    accepted = _accepted(support.ENGLISH_SAMPLE)
    routed = routed_event(accepted, rules_config.load(units_path=wrong_units), PRODUCER)
    mailer = FakeMailer(script={1: RefusedError(550, "5.1.1 no such mailbox: vox")})
    async with notifier(mailer) as h:
        await h.deliver(support.as_grouped(routed))
        # "replay the routed event": grouped again with the same id, the ledger answers
        await h.deliver(support.as_grouped(routed))
        assert mailer.calls == 1
        key = notification_key(routed.submission_id, "voice_of_customer")
        del h.ledger.entries[key]  # the runbook's deleteOne on sada_notifier.ledger
        rerouted = _routed(accepted)  # the accepted event published again, fixed units.yaml
        await h.deliver(support.as_grouped(rerouted))
    assert [e.recipient for e in mailer.sent] == ["voc@moj.gov.sa"]
    failed, repeat, sent = h.outcomes
    assert isinstance(failed, NotificationFailed)
    assert isinstance(sent, NotificationSent)
    assert repeat.event_id == failed.event_id
    store = await _archive(
        (TOPICS.accepted, accepted),
        (TOPICS.routed, routed),
        *((TOPICS.notifications, outcome) for outcome in h.outcomes),
        (TOPICS.routed, rerouted),
    )
    archived = [d["event_type"] for d in sorted(store.events.values(), key=lambda d: d["seq"])]
    assert archived == [
        "submission.accepted",
        "submission.routed",
        "notification.failed",
        "notification.sent",
    ]
    assert sent.payload.mailbox == "voc@moj.gov.sa"
    state = current(list(store.submissions.values()))
    assert state is not None
    assert state["status"] == "notified"
