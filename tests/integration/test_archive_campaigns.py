"""`submission.grouped` through the real Kafka and FerretDB: the campaigns the archive serves at
`/v1/campaigns` have the right sizes whatever the order and however often members arrive, the
representative's text goes only to a client with the `personal_data` scope, pages follow the
cursor, and a grouped event never moves a notified submission back."""

from __future__ import annotations

import random
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.models import Submission
from tests import archive_samples as samples
from tests import infra
from tests.integration.archive_support import (
    AUTH,
    READER,
    Producer,
    eventually,
    mongo,
    private_topics,
    running,
    settings_for,
)

LAW = samples.LEGISLATION_REF
VOC = "voice_of_customer"
PERSONAL = (samples.BODY, "a.harbi@example.sa", "عبدالله الحربي", "مشروع نظام الإثبات")

Item = tuple[str, bytes, str | None]


def _campaign(
    names: Any, size: int, *, legislation_ref: str | None = LAW, unit: str = "legislations_office"
) -> tuple[Submission, list[Item]]:
    """Return a campaign's first member and every record its members put on Kafka."""
    first = samples.submission(legislation_ref=legislation_ref)
    items: list[Item] = [
        (names.accepted, samples.encode(samples.accepted(first)), first.submission_id),
        (names.grouped, samples.encode(samples.grouped(first, unit=unit)), None),
    ]
    for n in range(2, size + 1):
        copy = samples.submission(legislation_ref=legislation_ref)
        decided = samples.grouped(copy, samples.member(first, n, unit=unit), unit)
        items.append((names.grouped, samples.encode(decided), None))  # any partition
    return first, items


async def _caught_up(group: str, topic: str, partitions: int = 3) -> bool:
    """Return whether `group` has committed every record of `topic` (all its partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.KAFKA, group_id=group)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, n) for n in range(partitions)]
        ends = await consumer.end_offsets(parts)
        done = [await consumer.committed(tp) for tp in parts]
        return all((offset or 0) >= ends[tp] for tp, offset in zip(parts, done, strict=True))
    finally:
        await consumer.stop()


async def _listing(api: httpx.AsyncClient, query: str, headers: dict[str, str]) -> Any:
    response = await api.get(f"/v1/campaigns?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_campaigns_are_served_with_the_right_sizes_text_scopes_and_pages() -> None:
    names = await private_topics()
    settings = settings_for(names)
    client = mongo(settings)
    db = client[settings.mongo.database]
    big, big_items = _campaign(names, 6)
    small = [_campaign(names, 3) for _ in range(2)]
    voc, voc_items = _campaign(names, 4, legislation_ref=None, unit=VOC)
    items = big_items + [item for _, its in small for item in its] + voc_items
    shuffled = random.Random(14).sample(items, len(items))
    redelivered = shuffled + random.Random(15).sample(items, len(items) // 2)
    try:
        async with running(settings) as api, Producer() as kafka:
            await kafka.send_all(redelivered)

            async def sizes() -> bool:
                body = await _listing(api, f"legislation_ref={LAW}", AUTH)
                return [c["size"] for c in body["items"]] == [6, 3, 3]

            await eventually(sizes)
            body = await _listing(api, f"legislation_ref={LAW}", AUTH)
            small_ids = sorted(samples.member(f, 2).campaign_id for f, _ in small)
            assert [c["campaign_id"] for c in body["items"]] == [
                samples.member(big, 2).campaign_id,
                *small_ids,
            ]
            top = body["items"][0]
            assert top["first_member"] == {
                "submission_id": big.submission_id,
                "reference": big.reference,
            }
            assert top["representative"] == {
                **top["first_member"],
                "subject": big.subject,
                "body": big.body,
                "redacted": False,
            }
            assert body["next_cursor"] is None

            response = await api.get(f"/v1/campaigns?legislation_ref={LAW}", headers=READER)
            assert response.status_code == 200
            assert not [p for p in PERSONAL if p in response.text]
            redacted = response.json()["items"]
            assert [c["size"] for c in redacted] == [6, 3, 3]
            assert {c["representative"]["redacted"] for c in redacted} == {True}
            assert {c["representative"]["body"] for c in redacted} == {None}

            first_page = await _listing(api, f"legislation_ref={LAW}&limit=2", READER)
            cursor = first_page["next_cursor"]
            assert cursor is not None
            rest = await _listing(api, f"legislation_ref={LAW}&limit=2&cursor={cursor}", READER)
            assert [c["campaign_id"] for c in first_page["items"] + rest["items"]] == [
                c["campaign_id"] for c in body["items"]
            ]
            assert rest["next_cursor"] is None

            by_unit = (await _listing(api, f"unit={VOC}", AUTH))["items"]
            assert [(c["scope"], c["size"]) for c in by_unit] == [(f"unit:{VOC}", 4)]
            assert by_unit[0]["representative"]["submission_id"] == voc.submission_id

            before = sorted(await db.campaigns.find({}).to_list(), key=lambda d: d["_id"])
            assert len(before) == 4
            await kafka.send_all(items)  # every member once more
            await eventually(lambda: _caught_up(settings.group_id, names.grouped))
        # A second archive with a fresh group replays every topic into the same database.
        again = settings_for(names, database=settings.mongo.database)
        async with running(again) as api:
            await eventually(lambda: _caught_up(again.group_id, names.grouped))
            assert [c["size"] for c in (await _listing(api, f"unit={VOC}", READER))["items"]] == [4]
        after = sorted(await db.campaigns.find({}).to_list(), key=lambda d: d["_id"])
        assert after == before
        grouped = await db.events.count_documents({"event_type": "submission.grouped"})
        assert grouped == len([i for i in items if i[0] == names.grouped])
        reader = {"event_type": "archive.accessed", "client": "it-reader"}
        assert await db.events.count_documents(reader) == 4  # each read above is on record
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()


async def test_a_grouped_event_after_the_notification_leaves_the_submission_notified() -> None:
    names = await private_topics()
    settings = settings_for(names)
    client = mongo(settings)
    sub, first = samples.submission(), samples.submission()
    key = sub.submission_id
    try:
        async with running(settings) as api, Producer() as kafka:
            await kafka.send_all(
                [
                    (names.accepted, samples.encode(samples.accepted(sub)), key),
                    (names.notifications, samples.encode(samples.notified(sub)), key),
                ]
            )

            async def status(expected: str) -> bool:
                found = await api.get(f"/v1/submissions/{sub.reference}", headers=AUTH)
                return found.status_code == 200 and found.json()["submission"]["status"] == (
                    expected
                )

            await eventually(lambda: status("notified"))
            late = samples.grouped(sub, samples.member(first, 2))
            await kafka.send(names.grouped, samples.encode(late), key)

            async def projected() -> bool:
                body = await _listing(api, f"legislation_ref={LAW}", AUTH)
                return [c["size"] for c in body["items"]] == [2]

            await eventually(projected)
            found = (await api.get(f"/v1/submissions/{sub.reference}", headers=AUTH)).json()
            assert found["submission"]["status"] == "notified"
            assert [e["event_type"] for e in found["timeline"]][-1] == "submission.grouped"
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()
