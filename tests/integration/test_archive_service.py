"""The archive on the real Kafka and FerretDB: every topic lands once, tampering is found,
and the audit API filters, pages, authenticates and exports."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson

from services.archive.chain import link_hash
from shared import events
from tests import archive_samples as samples
from tests import infra
from tests.integration.archive_support import (
    AUTH,
    Producer,
    eventually,
    mongo,
    private_topics,
    running,
    settings_for,
)


async def test_all_six_topics_land_and_a_submission_shows_its_receipt_and_lifecycle() -> None:
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
                    (names.notifications, samples.encode(samples.notified(sub)), key),
                    (names.rejected, samples.encode(samples.rejected()), None),
                    (names.deadletter, samples.encode(samples.dead_letter("x", 0, 1)), None),
                ]
            )

            async def six() -> bool:
                return await db.events.count_documents({}) == 6

            await eventually(six)
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
                before = sorted([d async for d in db.events.find({})], key=lambda d: d["_id"])
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
            after = sorted([d async for d in db.events.find({})], key=lambda d: d["_id"])
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
            code, out = _cli(settings.mongo.database)
            assert (code, out) == (0, "verified 2 chain(s), 3 event(s): all chains intact\n")

            routed = await db.events.find_one({"submission_id": sub.submission_id, "seq": 1})
            assert routed is not None
            edited = routed["event"].replace("legislations_office", "voice_of_customer")
            await db.events.update_one({"_id": routed["_id"]}, {"$set": {"event": edited}})

            report = (await api.get(verify, headers=AUTH)).json()
            assert report["ok"] is False
            assert [(b["seq"], b["kind"]) for b in report["breaks"]] == [(1, "edited")]
            code, out = _cli(settings.mongo.database)
            assert code == 1
            assert f"submission={sub.submission_id} seq=1 kind=edited" in out
            assert other.submission_id not in out
            code, out = _cli(settings.mongo.database, "--submission", other.submission_id)
            assert code == 0
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()


def _cli(database: str, *args: str) -> tuple[int, str]:
    """Run `sada audit verify` as an operator would; return its exit code and report."""
    env = {
        **os.environ,
        "SADA_MONGO__DATABASE": database,
        "SADA_MONGO__URI": infra.MONGO_URI,
    }
    done = subprocess.run(
        [sys.executable, "-c", "from shared.cli import main; main()", "audit", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout


async def test_api_filters_pages_and_exports_from_the_real_database() -> None:
    names = await private_topics()
    settings = settings_for(names)
    settings.export_page_size = 7
    client = mongo(settings)
    db = client[settings.mongo.database]
    start = datetime.now(UTC) - timedelta(seconds=2)
    notified = [samples.submission() for _ in range(6)]
    routed_only = [samples.submission(channel="najiz_portal") for _ in range(3)]
    items = [
        (names.accepted, samples.encode(samples.accepted(s)), s.submission_id)
        for s in notified + routed_only
    ]
    items += [
        (names.routed, samples.encode(samples.routed(s, "voice_of_customer")), s.submission_id)
        for s in routed_only
    ]
    items += [(names.routed, samples.encode(samples.routed(s)), s.submission_id) for s in notified]
    items += [
        (names.notifications, samples.encode(samples.notified(s)), s.submission_id)
        for s in notified
    ]
    try:
        async with running(settings) as api, Producer() as kafka:
            await kafka.send_all(items)

            async def all_in() -> bool:
                return await db.events.count_documents({}) == len(items)

            await eventually(all_in)

            async def ids(query: str) -> list[str]:
                response = await api.get(f"/v1/submissions?{query}", headers=AUTH)
                assert response.status_code == 200, response.text
                return [item["submission_id"] for item in response.json()["items"]]

            assert sorted(await ids("status=notified&unit=legislations_office")) == sorted(
                s.submission_id for s in notified
            )
            assert sorted(await ids("channel=najiz_portal&status=routed")) == sorted(
                s.submission_id for s in routed_only
            )
            assert await ids("status=accepted") == []
            assert await ids("unit=voice_of_customer&kind=idea") == []
            future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+", "%2B")
            assert await ids(f"since={future}") == []

            seen, cursor = [], None
            while True:
                query = "limit=4&order=asc" + (f"&cursor={cursor}" if cursor else "")
                body = (await api.get(f"/v1/submissions?{query}", headers=AUTH)).json()
                seen += [item["submission_id"] for item in body["items"]]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert sorted(seen) == sorted(s.submission_id for s in notified + routed_only)

            since = start.isoformat().replace("+", "%2B")
            export = await api.get(f"/v1/export?since={since}", headers=AUTH)
            assert export.status_code == 200
            lines = [orjson.loads(line) for line in export.text.splitlines()]
            assert len(lines) == len(items)
            assert len({line["event_id"] for line in lines}) == len(items)
            assert all(link_hash(x["prev_hash"], x["event"]) == x["hash"] for x in lines)
            assert [x["archived_at"] for x in lines] == sorted(x["archived_at"] for x in lines)
            assert (await api.get(f"/v1/export?since={since}")).status_code == 401
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()
