"""Drive the e2e installation: send submissions through both doors, then prove what happened.

The proof reads only what users of Sada can see: the archive's audit API (statuses, units,
timelines, hash chains) and the unit mailboxes (the SMTP sink's Maildir).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.archive.projection import current
from services.archive.settings import ArchiveSettings
from services.archive.store import MongoArchiveStore
from services.notifier.digest_messages import listed_references
from shared import ids, topics
from tests.e2e import harness
from tests.workload import MAILBOX, Item

ARCHIVE_TOKEN = "local-dev-token"  # the archive's documented local-mode token
TERMINAL = {"notified", "notification_failed"}


def progress(message: str) -> None:
    """Say how a long e2e step is going (shown with `pytest -s`, and in failures' output)."""
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def submission_id(item: Item) -> str:
    """Return the id intake gives a submission with a channel_ref."""
    channel, ref = item.key
    return ids.submission_id(channel, ref, "")


async def send_kafka(payloads: Sequence[bytes], *, within: float = 180.0) -> None:
    """Publish raw submissions to `feedback.submissions.v1`, riding out a broker outage."""
    producer = AIOKafkaProducer(
        bootstrap_servers=harness.BOOTSTRAP,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=10_000,
    )
    deadline = time.monotonic() + within
    while True:
        try:
            await producer.start()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)
    try:
        pending = list(payloads)
        while pending:
            try:
                futures = [await producer.send(topics.SUBMISSIONS, p) for p in pending[:500]]
                await asyncio.gather(*futures)
                pending = pending[500:]
            except Exception:  # a broker outage: the same records again (intake is idempotent)
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
    finally:
        await producer.stop()


async def post(client: httpx.AsyncClient, body: bytes, key: str | None) -> httpx.Response:
    """POST one raw submission to intake's HTTP door with the channel's API key."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await client.post(f"{harness.INTAKE_URL}/v1/submissions", content=body, headers=headers)


async def send_http(
    items: Sequence[Item], *, within: float = 180.0, concurrency: int = 8
) -> list[int]:
    """POST submissions (a few at a time, as channels do), riding out intake restarts (503)."""
    deadline = time.monotonic() + within
    gate = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, item: Item) -> int:
        async with gate:
            while True:
                try:
                    response = await post(client, item.encoded(), f"local-{item.key[0]}-key")
                    if response.status_code not in {502, 503, 504}:
                        return response.status_code
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("intake's HTTP door did not come back in time")
                await asyncio.sleep(0.5)

    async with httpx.AsyncClient(timeout=15.0) as client:
        return list(await asyncio.gather(*(one(client, item) for item in items)))


async def send(items: Sequence[Item]) -> None:
    """Send each item through its door (Kafka and HTTP concurrently)."""
    kafka = [i.encoded() for i in items if i.door == "kafka"]
    http = [i for i in items if i.door == "http"]
    began = time.monotonic()
    _, codes = await asyncio.gather(send_kafka(kafka), send_http(http))
    progress(
        f"sent {len(kafka)} via Kafka, {len(http)} via HTTP in {time.monotonic() - began:.1f} s"
    )
    assert set(codes) <= {202}, Counter(codes)


class Archive:
    """Reads the e2e archive: its store in one pass, and its audit API for spot checks.

    The audit API is exercised in tests/integration; here whole workloads are read at once,
    because FerretDB (the local stand-in for MongoDB) scans a collection for every query, so
    paging thousands of submissions through the API would measure FerretDB, not Sada.
    """

    def __init__(self) -> None:
        self.url = f"{harness.ARCHIVE_URL}/v1"
        self.headers = {"Authorization": f"Bearer {ARCHIVE_TOKEN}"}

    @staticmethod
    async def _read(what: str, since: datetime) -> list[dict[str, Any]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            harness.MONGO_URI,
            tz_aware=True,
            serverSelectionTimeoutMS=60_000,
            socketTimeoutMS=120_000,
        )
        try:
            store = MongoArchiveStore(client, ArchiveSettings().mongo.database)
            collection, field = (
                (store.submissions, "created_at")
                if what == "snapshots"
                else (store.events, "archived_at")
            )
            for _ in range(60):  # FerretDB may be in its outage test's pause
                try:
                    cursor = collection.find({field: {"$gte": since}}, batch_size=2000)
                    return [doc async for doc in cursor]
                except PyMongoError:
                    await asyncio.sleep(1)
            raise AssertionError(f"the archive's {what} could not be read")
        finally:
            await client.close()

    async def submissions(self, since: datetime) -> dict[str, dict[str, Any]]:
        """Return each submission's current state (as the API computes it), by id."""
        family: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for doc in await self._read("snapshots", since):
            family[doc["submission_id"]].append(doc)
        states = {sid: current(docs) for sid, docs in family.items()}
        found = {sid: s for sid, s in states.items() if s}
        progress(f"archive: {len(found)} submissions since the test began")
        return found

    async def events(self, since: datetime) -> list[dict[str, Any]]:
        """Return every event archived since `since`, with its stored JSON text."""
        return await self._read("events", since)

    async def api_get(self, path: str) -> httpx.Response:
        """GET an audit API path with the token, waiting out an archive restart."""
        async with httpx.AsyncClient(timeout=120.0) as client:
            for _ in range(120):
                try:
                    response = await client.get(f"{self.url}{path}", headers=self.headers)
                    if response.status_code < 500:
                        return response
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)
        raise AssertionError(f"archive API did not answer {path}")

    async def wait_terminal(
        self, wanted: Iterable[str], since: datetime, within: float, *, mailed: bool = True
    ) -> float:
        """Wait until every wanted submission is notified (or failed); return the seconds taken.

        With `mailed`, first wait (cheaply, on the Maildir) for every wanted e-mail.
        """
        started = time.monotonic()
        missing = set(wanted)
        if mailed:
            await wait_mailed(missing, within)
        while True:
            snapshots = await self.submissions(since)
            missing = {s for s in missing if snapshots.get(s, {}).get("status") not in TERMINAL}
            if not missing:
                return time.monotonic() - started
            if time.monotonic() - started > within:
                raise AssertionError(f"{len(missing)} submissions never reached the mailbox")
            await asyncio.sleep(2.0)


async def wait_mailed(wanted: Iterable[str], within: float) -> None:
    """Wait until the sink holds an e-mail for every wanted submission id."""
    references = {ids.reference(sid) for sid in wanted}
    began = time.monotonic()
    deadline = began + within
    while references - set(mailbox_index()):
        if time.monotonic() > deadline:
            missing = len(references - set(mailbox_index()))
            raise AssertionError(f"{missing} submissions never reached the mailbox")
        await asyncio.sleep(1.0)
    progress(f"all {len(references)} e-mails arrived after {time.monotonic() - began:.1f} s")


@dataclass(frozen=True)
class Mail:
    """The headers of one stored e-mail that the proof looks at.

    A digest is indexed once per submission it lists, each time with the digest's Message-ID.
    """

    to: str
    message_id: str
    subject: str
    bcc: str | None
    digest: str | None = None
    """The digest's id (X-Sada-Digest), None for a single e-mail."""
    arrived: float = 0.0
    """When the sink stored it (the Maildir file's mtime, epoch seconds)."""


_MAIL_CACHE: dict[str, tuple[tuple[str, ...], Mail]] = {}


def digest_references(message: EmailMessage) -> tuple[str, ...]:
    """Return the references a digest lists (its text's items, or its attached CSV's rows).

    The count must match X-Sada-Digest-Items: a campaign's "first" reference is no item.
    """
    references = tuple(listed_references(message))
    expected = int(str(message["X-Sada-Digest-Items"]))
    assert len(references) == expected, (
        f"digest {message['X-Sada-Digest']} lists {len(references)} of {expected} items"
    )
    return references


def mailbox_index() -> dict[str, list[Mail]]:
    """Return the e2e sink's messages by reference (headers; a digest's list; cached).

    A single e-mail names its submission in X-Sada-Reference; a digest (X-Sada-Digest, no
    X-Sada-Reference) is indexed under every reference it lists.
    """
    grouped: dict[str, list[Mail]] = defaultdict(list)
    new = harness.MAILDIR / "new"
    names = os.listdir(new) if new.exists() else []
    headers_only = BytesHeaderParser(policy=policy.default)
    whole = BytesParser(policy=policy.default)
    for name in names:
        if name not in _MAIL_CACHE:
            path = new / name
            with path.open("rb") as handle:
                headers = headers_only.parse(handle)
                digest = headers["X-Sada-Digest"]
                if digest is None:
                    references: tuple[str, ...] = (str(headers["X-Sada-Reference"]),)
                else:
                    handle.seek(0)
                    message = whole.parse(handle)
                    assert isinstance(message, EmailMessage)
                    assert message["X-Sada-Reference"] is None
                    references = digest_references(message)
            mail = Mail(
                str(headers["To"]),
                str(headers["Message-ID"]),
                str(headers["Subject"]),
                None if headers["Bcc"] is None else str(headers["Bcc"]),
                None if digest is None else str(digest),
                path.stat().st_mtime,
            )
            _MAIL_CACHE[name] = (references, mail)
        references, mail = _MAIL_CACHE[name]
        for reference in references:
            grouped[reference].append(mail)
    return grouped


@dataclass
class Proof:
    """What the archive and the mailboxes say about one workload."""

    submissions: int = 0
    lost: list[str] = field(default_factory=list)
    wrong_unit: list[str] = field(default_factory=list)
    incomplete_timeline: list[str] = field(default_factory=list)
    broken_chains: list[str] = field(default_factory=list)
    missing_email: list[str] = field(default_factory=list)
    wrong_mailbox: list[str] = field(default_factory=list)
    duplicate_emails: int = 0
    duplicates_with_new_message_id: int = 0
    failed_notifications: int = 0
    digested: int = 0
    """Submissions notified by a digest (the rest by a single e-mail)."""
    digests: set[str] = field(default_factory=set)
    """The ids of the digests that listed the workload's submissions."""
    digest_resends: int = 0
    """Extra copies of a digest (same Message-ID): the crash window between the server taking
    it and the plan's `sent` mark (docs/digests.md)."""
    digest_latencies: list[float] = field(default_factory=list)
    """Per digested submission: seconds from its accepted event to its digest's arrival."""

    def assert_clean(self, *, allow_duplicates: bool = False) -> None:
        """Fail with every problem found; duplicates only where the design allows them."""
        problems = {
            "lost": self.lost,
            "wrong unit": self.wrong_unit,
            "incomplete timeline": self.incomplete_timeline,
            "broken chain": self.broken_chains,
            "missing e-mail": self.missing_email,
            "wrong mailbox": self.wrong_mailbox,
        }
        found = {name: ids[:5] for name, ids in problems.items() if ids}
        assert not found, found
        assert self.duplicates_with_new_message_id == 0
        if not allow_duplicates:
            assert self.duplicate_emails == 0


async def prove(
    items: Sequence[Item], since: datetime, *, failing_mailboxes: frozenset[str] = frozenset()
) -> Proof:
    """Check every submission of `items` end to end (see the module docstring)."""
    archive = Archive()
    wanted = {submission_id(i): i for i in items}
    snapshots = await archive.submissions(since)
    events = await archive.events(since)
    by_submission: dict[str, set[str]] = defaultdict(set)
    accepted: dict[str, datetime] = {}
    for event in events:
        by_submission[event["submission_id"]].add(event["event_type"])
        if event["event_type"] == "submission.accepted":
            accepted[event["submission_id"]] = event["occurred_at"]
    mail = mailbox_index()
    proof = Proof(submissions=len(wanted))
    resent: dict[str, int] = {}
    for sid, item in wanted.items():
        snapshot = snapshots.get(sid)
        if snapshot is None:
            proof.lost.append(sid)
            continue
        if snapshot["unit"] != item.unit:
            proof.wrong_unit.append(sid)
        failed = MAILBOX[item.unit] in failing_mailboxes
        outcome = "notification.failed" if failed else "notification.sent"
        stages = {"submission.accepted", "submission.routed", "submission.grouped", outcome}
        if not stages <= by_submission[sid]:
            proof.incomplete_timeline.append(sid)
        messages = mail.get(snapshot["reference"], [])
        if failed:
            proof.failed_notifications += 1
            continue
        if not messages:
            proof.missing_email.append(sid)
            continue
        if any(MAILBOX[item.unit] not in m.to for m in messages):
            proof.wrong_mailbox.append(sid)
        proof.duplicate_emails += len(messages) - 1
        proof.duplicates_with_new_message_id += len({m.message_id for m in messages}) - 1
        if messages[0].digest is not None:
            proof.digested += 1
            proof.digests.add(messages[0].digest)
            resent[messages[0].digest] = len(messages) - 1
            if sid in accepted:
                first = min(m.arrived for m in messages)
                proof.digest_latencies.append(first - accepted[sid].timestamp())
    proof.digest_resends = sum(resent.values())
    spot = next(iter(wanted))  # the auditors' API agrees with the store (full check: the CLI)
    detail = (await archive.api_get(f"/submissions/{snapshots[spot]['reference']}")).json()
    if detail["submission"]["submission_id"] != spot or len(detail["timeline"]) < 3:
        proof.incomplete_timeline.append(spot)
    verdict = (await archive.api_get(f"/submissions/{spot}/verify")).json()
    if not verdict["ok"]:
        proof.broken_chains.append(spot)
    return proof
