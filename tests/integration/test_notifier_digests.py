"""Digests on the real FerretDB: surges set aside, one digest per window, exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from services.notifier.digests import DigestPolicy
from services.notifier.pending import HEADS, ORPHAN_SECONDS, head_document
from shared.mongo import Document
from tests import infra
from tests import notifier_support as support
from tests.component.test_notifier_service import Clock
from tests.integration.digest_support import Mailbox, build_stack, record, surge

POLICY = DigestPolicy(threshold=5, rate_seconds=60, window_seconds=10, campaign_individual=3)


@pytest.fixture
async def db() -> AsyncIterator[tuple[AsyncMongoClient[Document], str]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.MONGO_URI, tz_aware=True)
    database = infra.unique("it_notifier_digests")
    try:
        yield client, database
    finally:
        await client.drop_database(database)
        await client.close()


def _sent_keys(stack_outcomes: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(o["submission_id"]) for o in stack_outcomes)


async def test_a_surge_sends_the_threshold_alone_then_one_digest_with_the_rest(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    stack = build_stack(client, database, policy=POLICY, clock=Clock())
    events = surge(40)
    out = await stack.notifier.notify([record(e, i) for i, e in enumerate(events)])
    assert len(stack.mailbox.sent) == 5  # the threshold's worth, one e-mail each
    assert len(out) == 5
    assert await stack.sender.run_due() == 0  # the window has not ended
    stack.clock.advance(POLICY.window_seconds + 2)
    assert await stack.sender.run_due() == 1
    digest = stack.mailbox.sent[-1]
    assert digest.message_id.startswith("<digest-")
    listed = digest.text.split("\n")
    assert sorted(listed) == sorted(e.reference for e in events[5:])
    outcomes = stack.outcomes()
    assert len(outcomes) == 35
    assert {o["payload"]["message_id"] for o in outcomes} == {digest.message_id}
    assert all(o["payload"]["digest"]["items"] == 35 for o in outcomes)
    stack.clock.advance(POLICY.window_seconds)
    assert await stack.sender.run_due() == 0  # nothing left, nothing sent twice
    assert len(stack.mailbox.sent) == 6


async def test_a_redelivered_batch_sends_nothing_before_or_after_its_digest(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    stack = build_stack(client, database, policy=POLICY, clock=Clock())
    events = surge(20)
    records = [record(e, i) for i, e in enumerate(events)]
    first = await stack.notifier.notify(records)
    again = await stack.notifier.notify(records)  # before the digest: nothing new
    assert len(stack.mailbox.sent) == 5
    assert len(again) == 5
    assert all(o.value for o in again)
    stack.clock.advance(POLICY.window_seconds + 2)
    await stack.sender.run_due()
    stack.published.clear()
    later = await stack.notifier.notify(records)  # after it: every outcome, as a repeat
    assert len(later) == 20
    assert len(stack.mailbox.sent) == 6
    assert len(first) == 5


async def test_campaign_copies_past_the_first_three_are_counted_in_a_digest_while_calm(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    stack = build_stack(client, database, policy=POLICY, clock=Clock())
    founder = surge(1)[0]
    sample = {**support.ENGLISH_SAMPLE, "channel_ref": "CAMPAIGN-FOUNDER"}
    members = [
        support.grouped(
            {**sample, "channel_ref": f"CAMPAIGN-{n}"},
            campaign=support.campaign_of(sample, size=n),
        )
        for n in range(2, 8)
    ]
    await stack.notifier.notify([record(e) for e in [founder, *members]])
    # The founder, members 2 and 3: alone; members 4 to 7: folded, and the mailbox is calm.
    assert len(stack.mailbox.sent) == 3
    stack.clock.advance(POLICY.window_seconds + 2)
    await stack.sender.run_due()
    assert stack.mailbox.sent[-1].text.count("\n") == 3  # four references
    assert all(o["payload"]["digest"]["why"] == "campaign" for o in stack.outcomes())


async def test_a_digest_whose_reply_was_lost_is_sent_again_as_the_same_message(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    mailbox = Mailbox()
    stack = build_stack(client, database, policy=POLICY, clock=Clock(), mailbox=mailbox)
    await stack.notifier.notify([record(e, i) for i, e in enumerate(surge(12))])
    stack.clock.advance(POLICY.window_seconds + 2)
    mailbox.fail_after_accepting = 1
    assert await stack.sender.run_due() == 0
    assert stack.outcomes() == []  # not recorded: the plan waits, still `planned`
    stack.clock.advance(5)  # past the sender's backoff
    await stack.notifier.notify([record(e) for e in surge(3)])  # more arrive meanwhile
    assert await stack.sender.run_due() >= 1
    first, second = mailbox.sent[5], mailbox.sent[6]
    assert first.data == second.data  # same members, same Message-ID: the same message
    digested = [o for o in stack.outcomes() if o["payload"].get("digest")]
    assert _sent_keys(digested).most_common(1)[0][1] == 1


async def test_two_senders_at_once_send_one_digest(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    clock, mailbox = Clock(), Mailbox()
    one = build_stack(client, database, policy=POLICY, clock=clock, mailbox=mailbox, holder="a")
    two = build_stack(client, database, policy=POLICY, clock=clock, mailbox=mailbox, holder="b")
    await one.notifier.notify([record(e, i) for i, e in enumerate(surge(30))])
    clock.advance(POLICY.window_seconds + 2)
    await asyncio.gather(one.sender.run_due(), two.sender.run_due())
    digests = [m for m in mailbox.sent if m.message_id.startswith("<digest-")]
    assert len(digests) == 1
    assert len(one.outcomes()) + len(two.outcomes()) == 25  # published once, by one side


async def test_a_head_whose_bucket_never_came_waits_then_is_dropped_and_nothing_is_lost(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    stack = build_stack(client, database, policy=POLICY, clock=Clock())
    events = surge(8)
    await stack.notifier.notify([record(e, i) for i, e in enumerate(events)])
    (real,) = await stack.store.heads()
    # A writer that died between its two writes left a head and nothing else.
    orphan = dataclasses.replace(real, bucket_id="b:orphan")
    await client[database][HEADS].insert_one(head_document(orphan))
    stack.clock.advance(POLICY.window_seconds + 2)
    assert await stack.sender.run_due() == 1  # the real bucket goes out; the orphan waits
    assert [h.bucket_id for h in await stack.store.heads()] == ["b:orphan"]
    stack.clock.advance(ORPHAN_SECONDS)
    assert await stack.sender.run_due() == 0
    assert await stack.store.heads() == []
    assert len(stack.outcomes()) == 3


async def test_a_bucket_set_aside_after_its_window_was_sent_goes_in_the_next_digest(
    db: tuple[AsyncMongoClient[Document], str],
) -> None:
    client, database = db
    clock = Clock()
    stack = build_stack(client, database, policy=POLICY, clock=clock)
    first = surge(10)
    await stack.notifier.notify([record(e, i) for i, e in enumerate(first)])
    clock.advance(POLICY.window_seconds + 2)
    await stack.sender.run_due()
    late = surge(4)
    await stack.notifier.notify([record(e) for e in late])  # the mailbox is still in a surge
    clock.advance(POLICY.window_seconds + 2)
    assert await stack.sender.run_due() == 1
    digests = [m for m in stack.mailbox.sent if m.message_id.startswith("<digest-")]
    assert len(digests) == 2
    assert sorted(digests[1].text.split("\n")) == sorted(e.reference for e in late)
    assert Counter(str(o["submission_id"]) for o in stack.outcomes()).most_common(1)[0][1] == 1
