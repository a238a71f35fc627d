"""Who read what, on the real FerretDB: each API read is an archived, verifiable access event.

The archive runs on its own topics and database; the API is read by a client with the
`personal_data` scope and by one without; the access events are then read from the database,
verified by the chain verification and by `sada audit verify`, and an edited one is found.
Then the archive runs as a process, is read by 20 concurrent readers and stopped with SIGTERM
mid-stream: it shuts down gracefully and every read it answered is on record.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from services.archive import audit, checkpoints
from services.archive.clients import ApiClientConfig, hash_token
from services.archive.store import MongoArchiveStore
from tests import archive_samples as samples
from tests import infra
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
from tests.integration.notifier_harness import free_port

READER = {"Authorization": "Bearer it-reader-token"}
ACCESSED = {"event_type": "archive.accessed"}


async def test_reads_are_archived_as_access_events_that_verify_and_show_tampering() -> None:
    names = await private_topics()
    settings = settings_for(names)
    reader = ApiClientConfig(name="it-dashboard", token_sha256=hash_token("it-reader-token"))
    settings.api_clients = (*settings.api_clients, reader)
    client = mongo(settings)
    db = client[settings.mongo.database]
    sub = samples.submission()
    try:
        async with running(settings) as api, Producer() as kafka:
            await kafka.send(names.accepted, samples.encode(samples.accepted(sub)))

            async def archived() -> bool:
                return await db.events.count_documents({"submission_id": sub.submission_id}) == 1

            await eventually(archived)
            full = await api.get(f"/v1/submissions/{sub.reference}", headers=AUTH)
            redacted = await api.get(f"/v1/submissions/{sub.submission_id}", headers=READER)
            assert (full.status_code, redacted.status_code) == (200, 200)
            assert "a.harbi@example.sa" in full.text
            assert "a.harbi@example.sa" not in redacted.text
            assert (await api.get("/v1/submissions", headers=READER)).status_code == 200

        docs = await db.events.find(ACCESSED).sort([("submission_id", 1), ("seq", 1)]).to_list()
        payloads = sorted(
            (orjson.loads(d["event"])["payload"] for d in docs), key=lambda p: p["client"]
        )
        assert [(p["client"], p["endpoint"], p["submission_id"]) for p in payloads] == [
            ("it-auditor", "/v1/submissions/{key}", sub.submission_id),
            ("it-dashboard", "/v1/submissions/{key}", sub.submission_id),
            ("it-dashboard", "/v1/submissions", None),
        ]
        assert [p["personal_data"] for p in payloads] == [True, False, False]
        readers = await db.events.find({**ACCESSED, "accessed": sub.submission_id}).to_list()
        assert sorted(d["client"] for d in readers) == ["it-auditor", "it-dashboard"]
        assert not [d for d in docs if "a.harbi" in d["event"] or "الحربي" in d["event"]]
        day = datetime.now(UTC).date().isoformat()
        chains = sorted({d["submission_id"] for d in docs})
        assert [c.rsplit(":", 1)[0] for c in chains] == [
            f"access:{day}:it-auditor",
            f"access:{day}:it-dashboard",
        ]

        store = MongoArchiveStore(client, settings.mongo.database)
        summary = await audit.verify_all(store)
        assert (summary.ok, summary.chains, summary.events) == (True, 3, 4)
        code, out = audit_cli(settings.mongo.database, "--submission", chains[1])
        assert (code, out) == (0, "verified 1 chain(s), 2 event(s): all chains intact\n")

        first = next(d for d in docs if d["submission_id"] == chains[1] and d["seq"] == 0)
        edited = first["event"].replace('"it-dashboard"', '"it-auditor"')
        await db.events.update_one({"_id": first["_id"]}, {"$set": {"event": edited}})
        breaks = (await audit.verify_all(store)).breaks
        assert [(b.submission_id, b.seq, b.kind.value) for b in breaks] == [
            (chains[1], 0, "edited")
        ]
        code, out = audit_cli(settings.mongo.database)
        assert code == 1
        assert f"submission={chains[1]} seq=0 kind=edited" in out
    finally:
        await client.drop_database(settings.mongo.database)
        await client.close()


async def test_every_read_answered_before_a_sigterm_is_on_record_after_it(tmp_path: Path) -> None:
    names = await private_topics()
    settings = settings_for(names)
    port = free_port()
    signing, _ = checkpoints.generate(tmp_path / "keys")  # outside local mode: required
    env = {
        **os.environ,
        "SADA_ENVIRONMENT": "test",
        "SADA_AUDIT_LOG__SIGNING_KEY_FILE": str(signing),
        "SADA_AUDIT_LOG__CHECKPOINT_DIR": str(tmp_path / "witness"),
        "SADA_HTTP_PORT": str(port),
        "SADA_LOG_JSON": "true",
        "SADA_KAFKA__BOOTSTRAP_SERVERS": infra.KAFKA,
        "SADA_KAFKA__LAG_INTERVAL_SECONDS": "0",
        "SADA_MONGO__URI": infra.MONGO_URI,
        "SADA_MONGO__DATABASE": settings.mongo.database,
        "SADA_GROUP_ID": settings.group_id,
        "SADA_VERIFY_INTERVAL_SECONDS": "0",
        "SADA_PRIVACY__MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),  # not local mode
        "SADA_API_CLIENTS": orjson.dumps(
            [{"name": "it-dashboard", "token_sha256": hash_token("it-reader-token")}]
        ).decode(),
        **{f"SADA_TOPICS__{field.upper()}": topic for field, topic in names.model_dump().items()},
    }
    log = tmp_path / "archive.log"
    with log.open("wb") as output:
        archive = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", "from shared.cli import main; main()", "serve", "archive"),
            env=env,
            stdout=output,
            stderr=output,
        )
    client = mongo(settings)
    answered: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def healthy() -> bool:
                return (await http.get("/health")).status_code == 200

            await eventually(healthy, within=60)

            async def reader() -> None:
                while True:
                    try:
                        got = await http.get("/v1/submissions/SADA-0000-0000", headers=READER)
                    except httpx.TransportError:
                        return  # the archive stopped listening
                    if got.status_code != 404:
                        return  # 503 while stopping: not served, nothing to count
                    answered.append(got.status_code)

            readers = [asyncio.create_task(reader()) for _ in range(20)]

            async def busy() -> bool:
                return len(answered) >= 300

            await eventually(busy, within=60, every=0.05)
            archive.send_signal(signal.SIGTERM)  # while 20 reads are in flight
            await asyncio.gather(*readers)
        await asyncio.wait_for(archive.wait(), 60)
        # uvicorn re-raises the signal after its graceful shutdown: the log says it was graceful
        assert '"service stopped"' in log.read_text(encoding="utf-8")
        db = client[settings.mongo.database]
        stored = await db.events.count_documents(ACCESSED)
        assert stored >= len(answered) >= 300  # every answered read is on record
        summary = await audit.verify_all(MongoArchiveStore(client, settings.mongo.database))
        assert (summary.ok, summary.events) == (True, stored)
    finally:
        if archive.returncode is None:
            archive.kill()
            await archive.wait()
        await client.drop_database(settings.mongo.database)
        await client.close()
