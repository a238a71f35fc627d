"""Personal data on the real Kafka and FerretDB: sealed at rest, erased by key, exported, retained.

The FerretDB data files are searched byte for byte: the archive must never write a submitter's
e-mail address or national id in plaintext, before or after an erasure.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.archive import envelope, metrics, privacy
from services.archive.chain import verify_chain
from services.archive.privacy_cli import export, open_request, subject_of
from services.archive.settings import DEV_MASTER_KEY
from services.archive.store import MongoArchiveStore
from shared import events
from shared.events import Producer as EventProducer
from shared.models import Submission, Submitter
from tests import archive_samples as samples
from tests import infra
from tests.integration.archive_support import (
    AUTH,
    READER,
    Producer,
    audit_cli,
    eventually,
    mongo,
    private_topics,
    running,
    settings_for,
)

FERRETDB_FILES = infra.RUN_DIR / "data" / "ferretdb"
KAFKA = {"event_type": {"$ne": "archive.accessed"}}
PRODUCER = EventProducer(service="test", version="1")
Document = dict[str, Any]


def person() -> tuple[str, str]:
    """Return a unique e-mail address and national id."""
    return f"p-{uuid.uuid4().hex[:10]}@example.sa", "1" + "".join(random.choices("0123456789", k=9))


def submission_of(email: str, national_id: str | None) -> Submission:
    sub = samples.submission(body="رأيي في المادة 12 من المشروع")
    submitter = Submitter(name="مواطن", email=email, national_id=national_id)
    return sub.model_copy(update={"submitter": submitter})


def raw_of(email: str) -> bytes:
    return orjson.dumps(
        {
            "channel": "istitlaa",
            "channel_ref": f"T-{uuid.uuid4().hex[:12]}",
            "kind": "opinion",
            "body": "رأيي",
            "submitter": {"email": email},
            "submitted_at": "2026-11-25T10:00:00+03:00",
        }
    )


def in_data_files(*needles: str) -> list[str]:
    """Return which of `needles` occur in any FerretDB data file (database, WAL, journal)."""
    found = set()
    for path in FERRETDB_FILES.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found |= {needle for needle in needles if needle.encode() in data}
    return sorted(found)


def privacy_cli(database: str, *args: str) -> tuple[int, str, str]:
    """Run `sada privacy …` as an operator would."""
    env = {**os.environ, "SADA_MONGO__DATABASE": database, "SADA_MONGO__URI": infra.MONGO_URI}
    done = subprocess.run(
        [sys.executable, "-c", "from shared.cli import main; main()", "privacy", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


async def export_lines(api: Any, since: str, headers: dict[str, str]) -> list[Document]:
    """Return the lines of `/v1/export` since `since`."""
    response = await api.get("/v1/export", params={"since": since}, headers=headers)
    assert response.status_code == 200
    return [orjson.loads(line) for line in response.text.splitlines() if line]


def submitter_in(body: Document) -> list[Any]:
    """Return the `submitter` values of a timeline's events that carry a submission."""
    found = []
    for item in body["timeline"]:
        sub = ((item["event"] or {}).get("payload") or {}).get("submission")
        if isinstance(sub, dict):
            found.append(sub["submitter"])
    return found


async def test_personal_data_is_sealed_at_rest_and_an_erasure_leaves_verifiable_chains() -> None:
    names = await private_topics()
    settings = settings_for(names)
    database = settings.mongo.database
    client = mongo(settings)
    db = client[database]
    email, national_id = person()
    other_email, _ = person()
    sub, other = submission_of(email, national_id), submission_of(other_email, None)
    try:
        async with running(settings) as api, Producer() as kafka:
            spot = await kafka.send(names.submissions, raw_of(email))
            source = events.SourcePosition(
                topic=names.submissions, partition=spot.partition, offset=spot.offset
            )
            await kafka.send_all(
                [
                    (names.accepted, samples.encode(samples.accepted(sub, source)), None),
                    (names.routed, samples.encode(samples.routed(sub)), None),
                    (names.grouped, samples.encode(samples.grouped(sub)), None),
                    (names.accepted, samples.encode(samples.accepted(other)), None),
                    (names.routed, samples.encode(samples.routed(other)), None),
                ]
            )

            async def six() -> bool:
                return await db.events.count_documents(KAFKA) == 6

            await eventually(six)
            stored = await db.events.find(KAFKA).to_list()
            assert all(doc.get("key_id") for doc in stored)  # every one held personal data
            assert not any(email in doc["event"] for doc in stored)

            shown = (await api.get(f"/v1/submissions/{sub.reference}", headers=AUTH)).json()
            assert {s["email"] for s in submitter_in(shown)} == {email}
            assert any(email in orjson.dumps(i["event"]).decode() for i in shown["timeline"])
            hidden = (await api.get(f"/v1/submissions/{sub.reference}", headers=READER)).json()
            assert set(map(str, submitter_in(hidden))) == {"[redacted]"}
            assert "ciphertext" not in orjson.dumps(hidden).decode()

            since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            lines = await export_lines(api, since, AUTH)
            accepted = next(
                line
                for line in lines
                if line["event_type"] == "submission.accepted"
                and line["submission_id"] == sub.submission_id
            )
            assert email not in accepted["event"]  # the hashed text: sealed
            assert email in accepted["clear"]
            assert all("clear" not in line for line in await export_lines(api, since, READER))

            assert in_data_files(sub.reference) == [sub.reference]  # the search sees the data
            assert in_data_files(email, national_id, other_email) == []

            code, out, err = privacy_cli(
                database, "erase", "--email", email.upper(), "--reason", "data subject request"
            )
            assert code == 0, err
            assert email not in out
            assert "key(s) destroyed" in out

            erased = (await api.get(f"/v1/submissions/{sub.reference}", headers=AUTH)).json()
            assert set(map(str, submitter_in(erased))) == {"[erased]"}
            raw_receipt = [
                i for i in erased["timeline"] if i["event_type"] == "submission.received"
            ]
            assert raw_receipt[0]["event"]["raw"] == "[erased]"
            untouched = (await api.get(f"/v1/submissions/{other.reference}", headers=AUTH)).json()
            assert {s["email"] for s in submitter_in(untouched)} == {other_email}

        code, report = audit_cli(database)
        assert code == 0, report
        records = await db.events.find({"event_type": "privacy.erased"}).to_list()
        assert len(records) == 1
        event = orjson.loads(records[0]["event"])
        assert event["payload"]["trigger"] == "request"
        assert event["payload"]["keys"] == len(event["payload"]["key_ids"]) >= 1
        assert event["payload"]["events"] == 4  # receipt, accepted, routed, grouped
        assert email not in records[0]["event"]
        assert national_id not in records[0]["event"]
        assert not any(b in records[0]["event"] for b in ("e:", "n:"))
        assert verify_chain(records[0]["submission_id"], records) == []
        assert in_data_files(email, national_id, other_email) == []
    finally:
        await client.close()


async def test_an_erasure_by_reference_takes_the_submitters_other_keys_too() -> None:
    names = await private_topics()
    settings = settings_for(names)
    database = settings.mongo.database
    client = mongo(settings)
    db = client[database]
    email, national_id = person()
    first, second = submission_of(email, national_id), submission_of(email, national_id)
    try:
        async with running(settings) as api, Producer() as kafka:
            await kafka.send_all(
                [
                    (names.accepted, samples.encode(samples.accepted(first)), None),
                    (names.accepted, samples.encode(samples.accepted(second)), None),
                ]
            )

            async def two() -> bool:
                return await db.events.count_documents(KAFKA) == 2

            await eventually(two)
            code, _, err = privacy_cli(
                database, "erase", "--reference", first.reference, "--reason", "request"
            )
            assert code == 0, err
            for sub in (first, second):
                body = (await api.get(f"/v1/submissions/{sub.reference}", headers=AUTH)).json()
                assert set(map(str, submitter_in(body))) == {"[erased]"}
    finally:
        await client.close()


async def test_an_erasure_file_erases_each_person_it_names_and_no_one_else(
    tmp_path: Path,
) -> None:
    names = await private_topics()
    settings = settings_for(names)
    database = settings.mongo.database
    client = mongo(settings)
    db = client[database]
    people = [person() for _ in range(4)]
    subs = [submission_of(email, national_id) for email, national_id in people]
    try:
        async with running(settings) as api, Producer() as kafka:
            await kafka.send_all(
                [(names.accepted, samples.encode(samples.accepted(s)), None) for s in subs]
            )

            async def all_four() -> bool:
                return await db.events.count_documents(KAFKA) == 4

            await eventually(all_four)
            listing = tmp_path / "erasures.txt"
            listing.write_text(
                "# two requests by e-mail, one by national id, one by reference\n"
                f"email={people[0][0]}\nnational-id={people[1][1]}\n"
                f"reference={subs[2].reference}\nreference=SADA-0000-0000\n",
                encoding="utf-8",
            )
            code, out, err = privacy_cli(
                database, "erase", "--from", str(listing), "--reason", "requests"
            )
            assert code == 2, err  # the unknown reference is reported, the rest erased
            assert "line 4: no such submission" in err
            assert out.count("privacy.erased archived") == 3
            assert not any(email in out + err for email, _ in people)
            for sub, erased in zip(subs, (True, True, True, False), strict=True):
                body = (await api.get(f"/v1/submissions/{sub.reference}", headers=AUTH)).json()
                values = set(map(str, submitter_in(body)))
                assert (values == {"[erased]"}) is erased, values
            erasures = await db.events.count_documents({"event_type": "privacy.erased"})
            assert erasures == 3
    finally:
        await client.close()


async def test_an_export_returns_the_persons_data_and_answers_their_request() -> None:
    names = await private_topics()
    settings = settings_for(names)
    database = settings.mongo.database
    client = mongo(settings)
    db = client[database]
    email, national_id = person()
    other_email, _ = person()
    sub, other = submission_of(email, national_id), submission_of(other_email, None)
    try:
        async with running(settings), Producer() as kafka:
            await kafka.send_all(
                [
                    (names.accepted, samples.encode(samples.accepted(sub)), None),
                    (names.routed, samples.encode(samples.routed(sub)), None),
                    (names.accepted, samples.encode(samples.accepted(other)), None),
                ]
            )

            async def three() -> bool:
                return await db.events.count_documents(KAFKA) == 3

            await eventually(three)
        keys = privacy.vault(client, database, privacy.keyring_from(DEV_MASTER_KEY), 0)
        store = MongoArchiveStore(client, database)
        subject = subject_of(keys.keyring, None, national_id)
        received = datetime.now(UTC) - timedelta(days=40)
        opened = await open_request(keys, "access", subject, received)
        assert await keys.past_due(datetime.now(UTC)) == 1

        found = await export(keys, store, subject_of(keys.keyring, email, None))
        text = orjson.dumps(found).decode()
        assert email in text
        assert other_email not in text
        assert {s["reference"] for s in found["submissions"]} == {sub.reference}
        assert {e["event_type"] for e in found["events"]} >= {"submission.accepted"}
        assert found["request_id"] == opened["_id"]
        assert await keys.past_due(datetime.now(UTC)) == 0
        answered = await db[privacy.REQUESTS].find_one({"_id": opened["_id"]})
        assert answered is not None
        assert answered["answered_at"] is not None
    finally:
        await client.close()


async def test_retention_destroys_the_keys_of_old_days_only() -> None:
    database = infra.unique("it_privacy")
    client = mongo(settings_for(await private_topics(1), database=database))
    try:
        keys = privacy.vault(client, database, envelope.LocalKeyring(os.urandom(32)), 10)
        now = datetime.now(UTC)
        old_day = (now - timedelta(days=400)).date().isoformat()
        people = {"e:old@example.sa": ["e:old@example.sa"]}
        old = await keys.slots_for(people, old_day, now)
        new = await keys.slots_for(people, now.date().isoformat(), now)
        again = await keys.slots_for(people, now.date().isoformat(), now)
        assert again == new  # one key per person and day

        assert await privacy.retain(keys, 365, now, producer=PRODUCER) == 1
        old_key, new_key = old["e:old@example.sa"].key_id, new["e:old@example.sa"].key_id
        assert list(await keys.data_keys([old_key, new_key])) == [new_key]
        records = await client[database].events.find({"event_type": "privacy.erased"}).to_list()
        assert len(records) == 1
        payload = orjson.loads(records[0]["event"])["payload"]
        assert payload["reason"] == "retention"
        assert payload["key_ids"] == [old_key]
        assert verify_chain(records[0]["submission_id"], records) == []
        assert await privacy.retain(keys, 365, now, producer=PRODUCER) == 0
    finally:
        await client.close()


async def test_the_privacy_task_counts_requests_past_due_and_applies_retention() -> None:
    database = infra.unique("it_privacy")
    client = mongo(settings_for(await private_topics(1), database=database))
    try:
        keys = privacy.vault(client, database, envelope.LocalKeyring(os.urandom(32)), 10)
        now = datetime.now(UTC)
        subject = subject_of(keys.keyring, "late@example.sa", None)
        await open_request(keys, "erasure", subject, now - timedelta(days=31))
        await open_request(keys, "access", subject, now - timedelta(days=2))
        old_day = (now - timedelta(days=40)).date().isoformat()
        await keys.slots_for({"c:chain-1": ["c:chain-1"]}, old_day, now)
        tasks = privacy.PrivacyTasks(
            keys, retention_days=30, interval=60, lease=None, producer=PRODUCER
        )
        await tasks.run_once(now)
        assert metrics.PRIVACY_PAST_DUE._value.get() == 1
        assert await client[database][privacy.KEYS].count_documents({}) == 0
    finally:
        await client.close()


async def test_two_replicas_seal_a_persons_day_under_keys_of_their_own_erased_together() -> None:
    database = infra.unique("it_privacy")
    client = mongo(settings_for(await private_topics(1), database=database))
    try:
        keyring = envelope.LocalKeyring(os.urandom(32))
        one = privacy.vault(client, database, keyring, 10)
        two = privacy.vault(client, database, keyring, 10)
        now, day = datetime.now(UTC), "2026-12-01"
        people = {"n:1234567890": ["n:1234567890"]}
        first = await one.slots_for(people, day, now)
        assert await one.slots_for(people, day, now) == first  # cached: no second key
        second = await two.slots_for(people, day, now)
        assert second != first
        keys = client[database][privacy.KEYS]
        assert await keys.count_documents({}) == 2
        blind = envelope.blind_index(keyring, "n:1234567890")
        found = await one.keys_with_blinds([blind])
        assert len(found) == 2
        await one.destroy(found)
        assert await keys.count_documents({}) == 0
    finally:
        await client.close()


async def test_a_cached_slot_is_checked_again_after_a_minute_so_later_data_gets_a_new_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = infra.unique("it_privacy")
    client = mongo(settings_for(await private_topics(1), database=database))
    try:
        keyring = envelope.LocalKeyring(os.urandom(32))
        archive = privacy.vault(client, database, keyring, 10)
        operator = privacy.vault(client, database, keyring, 0)
        now, day = datetime.now(UTC), "2026-12-01"
        people = {"e:someone@example.sa": ["e:someone@example.sa"]}
        first = (await archive.slots_for(people, day, now))["e:someone@example.sa"]
        key = await client[database][privacy.KEYS].find_one({})
        assert key is not None
        await operator.destroy([key])  # the CLI's erasure: the archive's cache cannot see it
        within = (await archive.slots_for(people, day, now))["e:someone@example.sa"]
        assert within == first  # for the rest of its minute
        started = privacy._clock()
        monkeypatch.setattr(privacy, "_clock", lambda: started + privacy.CACHE_SECONDS + 1)
        later = (await archive.slots_for(people, day, now))["e:someone@example.sa"]
        assert later.key_id != first.key_id
        assert await client[database][privacy.KEYS].count_documents({}) == 1
    finally:
        await client.close()


def test_secure_delete_is_set_on_the_local_ferretdb() -> None:
    script = (Path(infra.ROOT) / "deploy" / "local" / "infra.sh").read_text()
    assert "_pragma=secure_delete(on)" in script


def test_the_register_logs_lists_and_extends_a_request_once() -> None:
    database = infra.unique("it_privacy")
    received = (datetime.now(UTC) - timedelta(days=45)).date().isoformat()
    code, out, err = privacy_cli(
        database, "request", "--kind", "erasure", "--national-id", "1234567890",
        "--received", received,
    )  # fmt: skip
    assert code == 0, err
    request_id = out.split()[1]
    code, listing, _ = privacy_cli(database, "requests")
    assert f"{request_id} erasure" in listing
    assert "PAST DUE" in listing
    assert "1234567890" not in listing

    code, out, err = privacy_cli(database, "extend", request_id, "--reason", "complex case")
    assert code == 0, err
    code, listing, _ = privacy_cli(database, "requests")
    assert "(extended) open" in listing  # due 75 days after receipt: not past due any more
    code, _, err = privacy_cli(database, "extend", request_id, "--reason", "again")
    assert code == 1
    assert "already extended" in err
