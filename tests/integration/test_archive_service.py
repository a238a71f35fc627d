"""The archive on the real Kafka and FerretDB: every topic lands once, tampering is found,
and the audit API filters, pages, authenticates and exports."""

from __future__ import annotations

import asyncio

from shared import events
from tests import archive_samples as samples
from tests.integration.archive_support import (
    AUTH,
    Producer,
    audit_cli,
    eventually,
    mongo,
    private_topics,
    running,
    settings_for,
)

KAFKA = {"event_type": {"$ne": "archive.accessed"}}
"""Events that came from Kafka (the API's own reads are archived as `archive.accessed`)."""


async def test_every_topic_lands_and_a_submission_shows_its_receipt_and_lifecycle() -> None:
    names = await private_topics()
    settings = settings_for(names)
    client = mongo(settings)
    db = client[settings.mongo.database]
    sub = samples.submission()
    try:
        async with running(settings) as api, Producer() as kafka:
            raw = samples.raw_submission()
            spot = await kafka.send(names.submissions, raw)
            source = events.SourcePosition(
                topic=names.submissions, partition=spot.partition, offset=spot.offset
            )
            key = sub.submission_id
            await kafka.send_all(
                [
                    (names.accepted, samples.encode(samples.accepted(sub, source)), key),
                    (names.routed, samples.encode(samples.routed(sub)), key),
                    (names.grouped, samples.encode(samples.grouped(sub)), key),
                    (names.notifications, samples.encode(samples.notified(sub)), key),
                    (names.rejected, samples.encode(samples.rejected()), None),
                    (names.deadletter, samples.encode(samples.dead_letter("x", 0, 1)), None),
                ]
            )

            async def seven() -> bool:
                return await db.events.count_documents({}) == 7

            await eventually(seven)
            assert set(await db.events.distinct("topic")) == set(names.all())
            assert all(isinstance(d["event"], str) for d in await db.events.find({}).to_list())

            response = await api.get(f"/v1/submissions/{sub.reference}", headers=AUTH)
            assert response.status_code == 200
            body = response.json()
            assert body["submission"]["status"] == "notified"
            assert body["submission"]["receipt_id"] == body["timeline"][0]["submission_id"]
            assert [e["event_type"] for e in body["timeline"]] == [
                "submission.received",
                "submission.accepted",
                "submission.routed",
                "submission.grouped",
                "notification.sent",
            ]
            assert body["timeline"][0]["event"]["raw"] == raw.decode()
            assert (await api.get(f"/v1/submissions/{sub.reference}")).status_code == 401
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()


async def test_redelivery_and_a_second_consumer_group_change_nothing() -> None:
    names = await private_topics()
    settings = settings_for(names)
    client = mongo(settings)
    db = client[settings.mongo.database]
    subs = [samples.submission() for _ in range(10)]
    lifecycle = [
        (topic, samples.encode(event), sub.submission_id)
        for sub in subs
        for topic, event in (
            (names.accepted, samples.accepted(sub)),
            (names.routed, samples.routed(sub)),
            (names.notifications, samples.notified(sub)),
        )
    ]
    try:
        async with Producer() as kafka:
            await kafka.send_all(lifecycle)
            async with running(settings):

                async def thirty() -> bool:
                    return await db.events.count_documents({}) == 30

                await eventually(thirty)
                before = sorted([d async for d in db.events.find(KAFKA)], key=lambda d: d["_id"])
                snapshots = await db.submissions.count_documents({})
                await kafka.send_all(lifecycle)  # every event published again
                await asyncio.sleep(3)
            # a second archive with a fresh group re-reads the topics from the start
            again = settings_for(names, database=settings.mongo.database)
            async with running(again) as api:

                async def reread() -> bool:
                    page = await api.get("/v1/submissions?status=notified&limit=200", headers=AUTH)
                    return len(page.json()["items"]) == 10

                await eventually(reread)
                await asyncio.sleep(2)
            after = sorted([d async for d in db.events.find(KAFKA)], key=lambda d: d["_id"])
            assert after == before
            assert await db.submissions.count_documents({}) == snapshots
            for sub in subs:
                seqs = sorted(d["seq"] for d in after if d["submission_id"] == sub.submission_id)
                assert seqs == [0, 1, 2]
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()


async def test_an_event_edited_in_the_database_is_reported_by_verify_api_and_cli() -> None:
    names = await private_topics()
    settings = settings_for(names)
    client = mongo(settings)
    db = client[settings.mongo.database]
    sub, other = samples.submission(), samples.submission()
    try:
        async with running(settings) as api, Producer() as kafka:
            await kafka.send_all(
                [
                    (names.accepted, samples.encode(samples.accepted(s)), s.submission_id)
                    for s in (sub, other)
                ]
                + [(names.routed, samples.encode(samples.routed(sub)), sub.submission_id)]
            )

            async def three() -> bool:
                return await db.events.count_documents({}) == 3

            await eventually(three)
            verify = f"/v1/submissions/{sub.submission_id}/verify"
            assert (await api.get(verify, headers=AUTH)).json()["ok"] is True
            code, out = audit_cli(settings.mongo.database)
            # the API read just above is itself archived, on an access chain of its own
            assert (code, out) == (0, "verified 3 chain(s), 4 event(s): all chains intact\n")

            routed = await db.events.find_one({"submission_id": sub.submission_id, "seq": 1})
            assert routed is not None
            edited = routed["event"].replace("legislations_office", "voice_of_customer")
            await db.events.update_one({"_id": routed["_id"]}, {"$set": {"event": edited}})

            report = (await api.get(verify, headers=AUTH)).json()
            assert report["ok"] is False
            assert [(b["seq"], b["kind"]) for b in report["breaks"]] == [(1, "edited")]
            code, out = audit_cli(settings.mongo.database)
            assert code == 1
            assert f"submission={sub.submission_id} seq=1 kind=edited" in out
            assert other.submission_id not in out
            code, out = audit_cli(settings.mongo.database, "--submission", other.submission_id)
            assert code == 0
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()
