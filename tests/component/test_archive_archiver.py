"""The archiver's batch work against an in-memory store: chains, repeats, races, restarts."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect

from services.archive import audit, metrics
from services.archive.archiver import Archiver
from services.archive.projection import current
from services.archive.records import UnreadableRecordError
from services.archive.settings import ArchiveTopics
from shared import events
from shared.kafka import Record
from tests import archive_samples as samples
from tests.archive_samples import record
from tests.component.archive_fake import InMemoryArchiveStore

TOPICS = ArchiveTopics()


class Feed:
    """Hands out records with increasing offsets, like a partition."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, topic: str, event: events.Envelope | bytes) -> Record:
        self.offset += 1
        value = event if isinstance(event, bytes) else samples.encode(event)
        return record(topic, value, offset=self.offset)


def _archiver(store: InMemoryArchiveStore, cache_size: int = 1000) -> Archiver:
    return Archiver(store, TOPICS, cache_size=cache_size)


async def _chain_ok(store: InMemoryArchiveStore, chain: str) -> list[int]:
    report = await audit.verify_submission(store, chain)
    assert report is not None
    assert report.breaks == []
    return sorted(d["seq"] for d in store.events.values() if d["submission_id"] == chain)


def _state(store: InMemoryArchiveStore, chain: str) -> dict[str, object]:
    state = current([d for d in store.submissions.values() if d["submission_id"] == chain])
    assert state is not None
    return state


async def test_a_submissions_events_from_three_topics_form_one_chain() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    archiver = _archiver(store)
    await archiver.archive([feed(TOPICS.accepted, samples.accepted(sub))])
    await archiver.archive([feed(TOPICS.routed, samples.routed(sub))])
    await archiver.archive([feed(TOPICS.notifications, samples.notified(sub))])
    assert await _chain_ok(store, sub.submission_id) == [0, 1, 2]
    state = _state(store, sub.submission_id)
    assert (state["status"], state["unit"], state["channel"], state["kind"]) == (
        "notified",
        "legislations_office",
        "istitlaa",
        "opinion",
    )
    assert state["reference"] == sub.reference


async def test_steady_state_appends_read_nothing_from_the_database() -> None:
    store, feed = InMemoryArchiveStore(), Feed()
    archiver = _archiver(store)
    subs = [samples.submission() for _ in range(20)]
    await archiver.archive([feed(TOPICS.accepted, samples.accepted(s)) for s in subs])
    await archiver.archive([feed(TOPICS.routed, samples.routed(s)) for s in subs])
    await archiver.archive([feed(TOPICS.notifications, samples.notified(s)) for s in subs])
    assert store.reads == 0
    assert store.inserts == 3
    assert len(store.events) == 60


async def test_redelivered_batch_changes_nothing_and_counts_duplicates() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    archiver = _archiver(store)
    batch = [
        feed(TOPICS.accepted, samples.accepted(sub)),
        feed(TOPICS.routed, samples.routed(sub)),
    ]
    await archiver.archive(batch)
    before = (dict(store.events), dict(store.submissions))
    duplicates = metrics.DUPLICATES.labels(TOPICS.routed)._value.get()
    await archiver.archive(batch)
    await _archiver(store).archive(batch)  # a restarted replica, with an empty cache
    assert (store.events, store.submissions) == before
    assert metrics.DUPLICATES.labels(TOPICS.routed)._value.get() == duplicates + 2


async def test_the_same_event_twice_in_one_batch_is_archived_once() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    event = samples.accepted(sub)
    await _archiver(store).archive([feed(TOPICS.accepted, event), feed(TOPICS.accepted, event)])
    assert len(store.events) == 1


async def test_events_arriving_out_of_order_never_move_the_status_backwards() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    archiver = _archiver(store)
    await archiver.archive([feed(TOPICS.notifications, samples.notified(sub))])
    await archiver.archive([feed(TOPICS.routed, samples.routed(sub))])
    await archiver.archive([feed(TOPICS.accepted, samples.accepted(sub))])
    assert await _chain_ok(store, sub.submission_id) == [0, 1, 2]
    state = _state(store, sub.submission_id)
    assert state["status"] == "notified"
    assert state["channel"] == "istitlaa"


async def test_a_whole_lifecycle_in_one_batch_is_chained_in_order() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    await _archiver(store).archive(
        [
            feed(TOPICS.notifications, samples.notified(sub)),
            feed(TOPICS.accepted, samples.accepted(sub)),
            feed(TOPICS.routed, samples.routed(sub)),
        ]
    )
    chain = sorted(store.events.values(), key=lambda d: d["seq"])
    assert [d["event_type"] for d in chain] == [
        "submission.accepted",
        "submission.routed",
        "notification.sent",
    ]
    assert [d["status"] for d in store.submissions.values()] == ["notified"]


async def test_two_replicas_appending_to_one_chain_never_fork_it() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    one, two = _archiver(store), _archiver(store)
    await one.archive([feed(TOPICS.accepted, samples.accepted(sub))])
    await two.archive([feed(TOPICS.routed, samples.routed(sub))])  # two reads the head
    await one.archive([feed(TOPICS.notifications, samples.notified(sub))])  # one's head is stale
    await two.archive([feed(TOPICS.notifications, samples.notified(sub, unit="voice_of_customer"))])
    assert await _chain_ok(store, sub.submission_id) == [0, 1, 2, 3]


async def test_a_restarted_archive_continues_existing_chains() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    await _archiver(store).archive([feed(TOPICS.accepted, samples.accepted(sub))])
    again = samples.submission(ref=sub.channel_ref)
    second = events.build(
        events.SubmissionAccepted,
        submission_id=again.submission_id,
        reference=again.reference,
        payload=events.AcceptedPayload(submission=again, door="http"),
        discriminator="resubmitted",
        producer=samples.PRODUCER,
    )
    restarted = _archiver(store, cache_size=0)
    await restarted.archive([feed(TOPICS.accepted, second)])  # guesses seq 0, is corrected
    await restarted.archive([feed(TOPICS.routed, samples.routed(sub))])
    assert await _chain_ok(store, sub.submission_id) == [0, 1, 2]
    assert _state(store, sub.submission_id)["status"] == "routed"


async def test_a_crash_between_events_and_snapshots_is_healed_by_the_redelivery() -> None:
    store, feed, sub = InMemoryArchiveStore(), Feed(), samples.submission()
    batch = [feed(TOPICS.accepted, samples.accepted(sub)), feed(TOPICS.routed, samples.routed(sub))]
    original = store.insert_snapshots

    async def crash(_docs: object) -> None:
        raise AutoReconnect("gone")

    store.insert_snapshots = crash  # type: ignore[method-assign,assignment]
    with pytest.raises(AutoReconnect):
        await _archiver(store).archive(batch)
    assert len(store.events) == 2
    assert store.submissions == {}
    store.insert_snapshots = original  # type: ignore[method-assign]
    await _archiver(store).archive(batch)
    assert _state(store, sub.submission_id)["status"] == "routed"
    assert await _chain_ok(store, sub.submission_id) == [0, 1]


async def test_an_outage_raises_a_transient_error_and_the_retry_loses_nothing() -> None:
    store, feed = InMemoryArchiveStore(), Feed()
    archiver = _archiver(store)
    subs = [samples.submission() for _ in range(5)]
    batch = [feed(TOPICS.accepted, samples.accepted(s)) for s in subs]
    store.down = True
    with pytest.raises(AutoReconnect):
        await archiver.archive(batch)
    store.down = False
    await archiver.archive(batch)
    assert len(store.events) == 5
    assert len(store.submissions) == 5


async def test_a_bad_record_fails_the_batch_before_anything_is_written() -> None:
    store, feed = InMemoryArchiveStore(), Feed()
    good = feed(TOPICS.accepted, samples.accepted(samples.submission()))
    with pytest.raises(UnreadableRecordError):
        await _archiver(store).archive([good, feed(TOPICS.routed, b"{oops")])
    assert store.events == {}


async def test_raw_receipt_and_its_acceptance_are_linked() -> None:
    store, feed = InMemoryArchiveStore(), Feed()
    receipt = feed(TOPICS.submissions, samples.raw_submission())
    source = events.SourcePosition(topic=receipt.topic, partition=0, offset=receipt.offset)
    sub = samples.submission()
    await _archiver(store).archive([receipt, feed(TOPICS.accepted, samples.accepted(sub, source))])
    receipts = [d for d in store.submissions.values() if d["record"] == "receipt"]
    assert len(receipts) == 1
    assert receipts[0]["status"] == "received"
    assert _state(store, sub.submission_id)["receipt_id"] == receipts[0]["submission_id"]


async def test_verify_all_finds_an_edited_event_anywhere() -> None:
    store, feed = InMemoryArchiveStore(), Feed()
    subs = [samples.submission() for _ in range(3)]
    archiver = _archiver(store)
    await archiver.archive([feed(TOPICS.accepted, samples.accepted(s)) for s in subs])
    await archiver.archive([feed(TOPICS.routed, samples.routed(s)) for s in subs])
    assert (await audit.verify_all(store)).ok
    victim = next(d for d in store.events.values() if d["submission_id"] == subs[1].submission_id)
    victim["event"] = victim["event"].replace("istitlaa", "email")
    summary = await audit.verify_all(store)
    assert (summary.chains, summary.events) == (3, 6)
    assert [(b.submission_id, b.seq, b.kind.value) for b in summary.breaks] == [
        (subs[1].submission_id, victim["seq"], "edited")
    ]


async def test_an_event_id_already_used_on_another_chain_is_a_no_op_that_anchors_nothing() -> None:
    store, feed = InMemoryArchiveStore(), Feed()
    first, second = samples.submission(), samples.submission()
    original = samples.accepted(first)
    await _archiver(store).archive([feed(TOPICS.accepted, original)])
    forged = samples.accepted(second).model_copy(update={"event_id": original.event_id})
    await _archiver(store).archive([feed(TOPICS.accepted, forged)])
    assert len(store.events) == 1
    assert [d["submission_id"] for d in store.submissions.values()] == [first.submission_id]
    assert (await audit.verify_all(store)).ok
