"""Who read what, on the real FerretDB: each API read is an archived, verifiable access event.

The archive runs on its own topics and database; the API is read by a client with the
`personal_data` scope and by one without; the access events are then read from the database,
verified by the chain verification and by `sada audit verify`, and an edited one is found.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.archive import audit
from services.archive.clients import ApiClientConfig, hash_token
from services.archive.store import MongoArchiveStore
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
