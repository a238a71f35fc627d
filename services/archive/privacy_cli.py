"""`sada privacy …`: a data subject's requests (PDPL): erase, export, and their register.

- `erase` destroys every data key of the person (found by blind index, or by a submission's
  reference: the keys of its chains and of the submitter it names), then archives a
  `privacy.erased` event naming only random key ids and counts. The events stay, their chains
  verify; their personal data reads `[erased]`.
- `export` prints everything the archive holds about the person as JSON: the events sealed
  under their keys and every other event of those submissions (in clear), the submissions'
  statuses and references, and the campaigns they joined.
- Each request is in `privacy_requests` (kind, the subject's blind index, received, due = +30
  days, extendable once by 30, answered); `erase`/`export` answer the subject's open request of
  their kind, or log one received now. The archive exports `sada_privacy_requests_past_due`.
Finding a person scans the small `privacy_keys` collection and, for their events, `events`:
acceptable for a rare operator command, never done on the write path.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import orjson
import typer

from services.archive import envelope, privacy
from services.archive.privacy import DUE_DAYS, KeyVault
from services.archive.projection import current
from services.archive.settings import ArchiveSettings
from services.archive.store import ArchiveStore, MongoArchiveStore
from shared import version
from shared.events import Producer
from shared.mongo import make_client

Document = dict[str, Any]
Kind = Literal["access", "erasure"]

app = typer.Typer(help="Data subjects' requests: erase, export, register.", no_args_is_help=True)


@app.callback()
def privacy_group() -> None:
    """Personal data in the archive: erase or export a person's, and track their requests."""


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a request is about: their labels (never printed) and blind indexes."""

    labels: list[str]
    blinds: list[str]


def subject_of(keyring: envelope.Keyring, email: str | None, national_id: str | None) -> Subject:
    """Return the subject named by an e-mail address and/or a national id."""
    labels = envelope.identity_labels(national_id=national_id, email=email)
    return Subject(labels, [envelope.blind_index(keyring, label) for label in labels])


# --- the register of requests ---------------------------------------------------------------


async def open_request(
    keys: KeyVault, kind: Kind, subject: Subject, received: datetime
) -> Document:
    """Log a request received at `received` (due 30 days later); return it."""
    doc = {
        "_id": uuid.uuid4().hex,
        "kind": kind,
        "subject": subject.blinds[0],
        "blinds": subject.blinds,
        "received_at": received,
        "due_at": received + timedelta(days=DUE_DAYS),
        "extended": False,
        "answered_at": None,
    }
    await keys.requests.insert_one(doc)
    return doc


async def answer_request(keys: KeyVault, kind: Kind, subject: Subject, now: datetime) -> str:
    """Mark the subject's oldest open request of `kind` answered (or log one); return its id."""
    cursor = keys.requests.find(
        {"kind": kind, "answered_at": None, "blinds": {"$in": subject.blinds}}
    ).sort("received_at", 1)
    found = await cursor.to_list()
    request = found[0] if found else await open_request(keys, kind, subject, now)
    await keys.requests.update_one({"_id": request["_id"]}, {"$set": {"answered_at": now}})
    return str(request["_id"])


async def extend_request(keys: KeyVault, request_id: str, reason: str) -> bool:
    """Extend an open request's due date once by 30 days; return False if it cannot be."""
    found = await keys.requests.find_one({"_id": request_id})
    if found is None or found.get("extended") or found.get("answered_at") is not None:
        return False
    await keys.requests.update_one(
        {"_id": request_id},
        {
            "$set": {
                "extended": True,
                "extend_reason": reason,
                "due_at": found["due_at"] + timedelta(days=DUE_DAYS),
            }
        },
    )
    return True


# --- erase ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did: PII-free."""

    request_id: str
    keys: int
    events: int
    chains: int


async def keys_of_chains(keys: KeyVault, store: ArchiveStore, chains: Sequence[str]) -> set[str]:
    """Return the key ids of the events on `chains`."""
    return {str(d["key_id"]) for d in await store.chain_events(list(chains)) if d.get("key_id")}


async def person_keys(
    keys: KeyVault, store: ArchiveStore, subject: Subject
) -> tuple[list[Document], set[str]]:
    """Return every key document of the person and the chains of their events."""
    found = await people_keys(keys, [subject])
    return found[0]


async def people_keys(
    keys: KeyVault, subjects: Sequence[Subject]
) -> list[tuple[list[Document], set[str]]]:
    """Return each subject's key documents and the chains of their events, in three scans.

    Their keys by blind index; then the chains their events are on (and those chains' receipts);
    then those chains' anonymous keys (`c:`), so an event of theirs sealed without a submitter
    (a dead letter, say) goes too. One scan of `privacy_keys` for everyone's blind indexes, one
    of `events` for everyone's keys and one of `privacy_keys` for the chains: a batch of
    requests costs what one does.
    """
    wanted = sorted({blind for subject in subjects for blind in subject.blinds})
    by_blind: dict[str, list[Document]] = {}
    for doc in await keys.keys_with_blinds(wanted):
        for blind in doc.get("blinds", []):
            by_blind.setdefault(blind, []).append(doc)
    owned: list[dict[str, Document]] = [
        {str(d["_id"]): d for blind in subject.blinds for d in by_blind.get(blind, [])}
        for subject in subjects
    ]
    chains_of_key: dict[str, set[str]] = {}
    every_key = sorted({key_id for found in owned for key_id in found})
    if every_key:
        cursor = keys.events.find(
            {"key_id": {"$in": every_key}}, {"submission_id": 1, "receipt_id": 1, "key_id": 1}
        )
        async for doc in cursor:
            chains = chains_of_key.setdefault(str(doc["key_id"]), set())
            chains.add(str(doc["submission_id"]))
            if doc.get("receipt_id"):
                chains.add(str(doc["receipt_id"]))
    chains_of = [
        {chain for key_id in found for chain in chains_of_key.get(key_id, set())} for found in owned
    ]
    label_of = {
        envelope.blind_index(keys.keyring, envelope.chain_label(chain)): chain
        for chains in chains_of
        for chain in chains
    }
    by_chain: dict[str, list[Document]] = {}
    for doc in await keys.keys_with_blinds(sorted(label_of)):
        for blind in doc.get("blinds", []):
            if blind in label_of:
                by_chain.setdefault(label_of[blind], []).append(doc)
    out = []
    for found, chains in zip(owned, chains_of, strict=True):
        for chain in chains:
            for doc in by_chain.get(chain, []):
                found[str(doc["_id"])] = doc
        out.append((list(found.values()), chains))
    return out


def widened(subject: Subject, keys: Sequence[Document]) -> Subject:
    """Return `subject` with every blind index their keys carry (all their identifiers).

    A request logged by national id is answered by an export asked by e-mail, and so on.
    """
    blinds = list(subject.blinds)
    for doc in keys:
        blinds += [b for b in doc.get("blinds", []) if not b.startswith("c:") and b not in blinds]
    return Subject(subject.labels, blinds)


async def subject_of_reference(
    keys: KeyVault, store: ArchiveStore, reference: str
) -> tuple[Subject, set[str]] | None:
    """Return the submitter a reference's submission names (by opening it) and its key ids."""
    chain = await store.chain_for_reference(reference.upper())
    if chain is None:
        return None
    events = await store.chain_events([chain])
    receipts = sorted({str(d["receipt_id"]) for d in events if d.get("receipt_id")} - {chain})
    events += await store.chain_events(receipts)
    key_ids = {str(d["key_id"]) for d in events if d.get("key_id")}
    labels: list[str] = []
    for event in (await keys.reveal(events)).values():
        labels = envelope.submitter_labels(envelope.find_submitter(event))
        if labels:
            break
    blinds = [envelope.blind_index(keys.keyring, label) for label in labels]
    blinds += [envelope.blind_index(keys.keyring, envelope.chain_label(c)) for c in [chain]]
    return Subject(labels, blinds), key_ids


async def erase(
    keys: KeyVault,
    store: ArchiveStore,
    *,
    subject: Subject | None = None,
    reference: str | None = None,
    reason: str,
    requested_by: str,
    now: datetime | None = None,
) -> Erasure | None:
    """Destroy the person's data keys and archive a `privacy.erased` event; None if not found."""
    extra: set[str] = set()
    if reference is not None:
        found = await subject_of_reference(keys, store, reference)
        if found is None:
            return None
        subject, extra = found
    assert subject is not None
    done = await erase_all(
        keys, [(subject, extra)], reason=reason, requested_by=requested_by, now=now
    )
    return done[0]


async def erase_all(
    keys: KeyVault,
    people: Sequence[tuple[Subject, set[str]]],
    *,
    reason: str,
    requested_by: str,
    now: datetime | None = None,
) -> list[Erasure]:
    """Erase each (subject, extra key ids) in one pass: one request and event per person."""
    now = now or datetime.now(UTC)
    found = await people_keys(keys, [subject for subject, _ in people])
    plans = []
    for (subject, extra), (docs, chains) in zip(people, found, strict=True):
        known = {str(d["_id"]) for d in docs}
        docs = docs + [{"_id": key_id} for key_id in sorted(extra - known)]
        plans.append((widened(subject, docs), docs, chains))
    every_key = sorted({str(d["_id"]) for _, docs, _ in plans for d in docs})
    counts = await keys.count_events_by_key(every_key)
    await keys.destroy(list({str(d["_id"]): d for _, docs, _ in plans for d in docs}.values()))
    producer = Producer(service="archive-cli", version=version.current())
    done = []
    for subject, docs, chains in plans:
        key_ids = sorted({str(d["_id"]) for d in docs})
        request_id = await answer_request(keys, "erasure", subject, now) if subject.blinds else ""
        request_id = request_id or uuid.uuid4().hex
        events = sum(counts.get(key_id, 0) for key_id in key_ids)
        await keys.record_erasure(
            request_id=request_id,
            reason=reason,
            trigger="request",
            key_ids=key_ids,
            events=events,
            requested_by=requested_by,
            producer=producer,
        )
        done.append(Erasure(request_id, len(key_ids), events, len(chains)))
    return done


# --- export ----------------------------------------------------------------------------------


async def export(
    keys: KeyVault, store: ArchiveStore, subject: Subject, *, now: datetime | None = None
) -> Document:
    """Return everything held about the subject, and log (answer) their access request."""
    now = now or datetime.now(UTC)
    docs, chains = await person_keys(keys, store, subject)
    events = await store.chain_events(sorted(chains))
    clear = await keys.reveal(events)
    out_events, campaigns = [], {}
    for doc in events:
        event = clear.get(str(doc["_id"]))
        if event is None:
            try:
                event = orjson.loads(doc.get("event") or "")
            except orjson.JSONDecodeError:
                continue
        out_events.append(
            {
                "submission_id": doc.get("submission_id"),
                "seq": doc.get("seq"),
                "event_type": doc.get("event_type"),
                "archived_at": _iso(doc.get("archived_at")),
                "event": event,
            }
        )
        joined = (event.get("payload") or {}).get("campaign") if isinstance(event, dict) else None
        if isinstance(joined, dict) and joined.get("campaign_id"):
            campaigns[str(joined["campaign_id"])] = {
                "campaign_id": joined["campaign_id"],
                "first_reference": joined.get("first_reference"),
                "submission_id": doc.get("submission_id"),
            }
    snaps = await store.snapshots(sorted(chains))
    by_chain: dict[str, list[Document]] = {}
    for snap in snaps:
        by_chain.setdefault(str(snap["submission_id"]), []).append(snap)
    submissions = []
    for chain, family in sorted(by_chain.items()):
        state = current(family) or {}
        submissions.append(
            {
                "submission_id": chain,
                "reference": state.get("reference"),
                "record": state.get("record"),
                "status": state.get("status"),
                "unit": state.get("unit"),
                "status_at": _iso(state.get("status_at")),
            }
        )
    request_id = await answer_request(keys, "access", widened(subject, docs), now)
    return {
        "request_id": request_id,
        "generated_at": now.isoformat(),
        "keys": [
            {"key_id": d["_id"], "day": d.get("day"), "created_at": _iso(d.get("created_at"))}
            for d in docs
        ],
        "submissions": submissions,
        "campaigns": sorted(campaigns.values(), key=lambda c: str(c["campaign_id"])),
        "events": out_events,
    }


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


# --- commands --------------------------------------------------------------------------------

Email = Annotated[str | None, typer.Option("--email", help="The person's e-mail address.")]
NationalId = Annotated[str | None, typer.Option("--national-id", help="Their national id.")]


async def _with(settings: ArchiveSettings, work: Any) -> Any:
    client = make_client(settings.mongo, app_name="privacy-cli")
    keyring = privacy.keyring_from(settings.master_key())
    keys = privacy.vault(client, settings.mongo.database, keyring, 0)
    store = MongoArchiveStore(client, settings.mongo.database)
    try:
        return await work(keys, store)
    finally:
        await client.close()


def _subject(keys: KeyVault, email: str | None, national_id: str | None) -> Subject:
    subject = subject_of(keys.keyring, email, national_id)
    if not subject.blinds:
        raise typer.BadParameter("give --email or --national-id")
    return subject


@app.command("erase")
def erase_command(
    reason: Annotated[str, typer.Option("--reason", help="Why (no personal data).")],
    email: Email = None,
    national_id: NationalId = None,
    reference: Annotated[
        str | None, typer.Option("--reference", help="A submission's reference (SADA-…).")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Erase many people in one pass: a file of lines `email=…`, `national-id=…` or "
            "`reference=…` (one person per line; # starts a comment).",
        ),
    ] = None,
    requested_by: Annotated[
        str | None, typer.Option("--requested-by", help="Who runs it (default: login).")
    ] = None,
) -> None:
    """Destroy a person's data keys; their events stay, their personal data reads `[erased]`."""
    given = sum(x is not None for x in (reference, from_file)) + (
        email is not None or national_id is not None
    )
    if given != 1:
        raise typer.BadParameter("give --email and/or --national-id, or --reference, or --from")
    who = requested_by or getpass.getuser()
    lines = _request_lines(from_file) if from_file is not None else None

    async def work(keys: KeyVault, store: ArchiveStore) -> list[Erasure | None]:
        if lines is not None:
            return await _erase_lines(keys, store, lines, reason=reason, requested_by=who)
        subject = None if reference else _subject(keys, email, national_id)
        return [
            await erase(
                keys, store, subject=subject, reference=reference, reason=reason, requested_by=who
            )
        ]

    results: list[Erasure | None] = asyncio.run(_with(ArchiveSettings(), work))
    for number, done in enumerate(results, start=1):
        where = f"line {number}: " if lines is not None else ""
        if done is None:
            typer.echo(f"{where}no such submission", err=True)
            continue
        typer.echo(
            f"{where}erasure {done.request_id}: {done.keys} key(s) destroyed, {done.events} "
            f"event(s) sealed under them on {done.chains} chain(s); privacy.erased archived"
        )
    if any(done is None for done in results):
        raise typer.Exit(2)


def _request_lines(path: Path) -> list[tuple[str, str]]:
    """Return the (kind, value) lines of an erasure file; refuse a malformed one whole."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        kind, _, value = text.partition("=")
        if kind.strip() not in {"email", "national-id", "reference"} or not value.strip():
            # The line may hold an address: name its number, never its content.
            raise typer.BadParameter(
                f"{path}: line {number} is not email=, national-id= or reference="
            )
        out.append((kind.strip(), value.strip()))
    return out


async def _erase_lines(
    keys: KeyVault,
    store: ArchiveStore,
    lines: Sequence[tuple[str, str]],
    *,
    reason: str,
    requested_by: str,
) -> list[Erasure | None]:
    """Erase everyone the lines name in one pass (`erase_all`); None for an unknown reference."""
    people: list[tuple[Subject, set[str]] | None] = []
    for kind, value in lines:
        if kind == "reference":
            people.append(await subject_of_reference(keys, store, value))
        else:
            email, national_id = (value, None) if kind == "email" else (None, value)
            people.append((subject_of(keys.keyring, email, national_id), set()))
    found = [person for person in people if person is not None]
    done = iter(await erase_all(keys, found, reason=reason, requested_by=requested_by))
    return [next(done) if person is not None else None for person in people]


@app.command("export")
def export_command(
    email: Email = None,
    national_id: NationalId = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON here.")] = None,
) -> None:
    """Print everything the archive holds about a person as JSON (an access request)."""

    async def work(keys: KeyVault, store: ArchiveStore) -> Document:
        return await export(keys, store, _subject(keys, email, national_id))

    found: Document = asyncio.run(_with(ArchiveSettings(), work))
    text = orjson.dumps(found, option=orjson.OPT_INDENT_2)
    if out is None:
        sys.stdout.buffer.write(text + b"\n")
    else:
        out.write_bytes(text + b"\n")
        typer.echo(f"access request {found['request_id']}: written to {out}", err=True)


@app.command("request")
def request_command(
    kind: Annotated[str, typer.Option("--kind", help="access or erasure.")],
    email: Email = None,
    national_id: NationalId = None,
    received: Annotated[
        str | None, typer.Option("--received", help="When received (YYYY-MM-DD; default now).")
    ] = None,
) -> None:
    """Log a data subject's request; it is due 30 days after it was received."""
    if kind not in ("access", "erasure"):
        raise typer.BadParameter("--kind is access or erasure")
    at = datetime.fromisoformat(received).replace(tzinfo=UTC) if received else datetime.now(UTC)

    async def work(keys: KeyVault, _store: ArchiveStore) -> Document:
        subject = _subject(keys, email, national_id)
        return await open_request(keys, cast(Kind, kind), subject, at)

    doc: Document = asyncio.run(_with(ArchiveSettings(), work))
    typer.echo(f"request {doc['_id']} ({kind}) due {doc['due_at'].date().isoformat()}")


@app.command("requests")
def requests_command() -> None:
    """List the requests with their due dates (open ones first)."""

    async def work(keys: KeyVault, _store: ArchiveStore) -> list[Document]:
        return await keys.requests.find({}).sort("due_at", 1).to_list()

    docs: list[Document] = asyncio.run(_with(ArchiveSettings(), work))
    docs.sort(key=lambda d: d.get("answered_at") is not None)
    now = datetime.now(UTC)
    for doc in docs:
        due = doc["due_at"].replace(tzinfo=UTC)
        answered = doc.get("answered_at")
        state = (
            f"answered {answered.date().isoformat()}"
            if answered
            else ("PAST DUE" if due < now else "open")
        )
        extended = " (extended)" if doc.get("extended") else ""
        typer.echo(
            f"{doc['_id']} {doc['kind']:8} received {doc['received_at'].date().isoformat()} "
            f"due {due.date().isoformat()}{extended} {state}"
        )


@app.command("extend")
def extend_command(
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why more time is needed.")],
) -> None:
    """Extend an open request's due date once by 30 days."""

    async def work(keys: KeyVault, _store: ArchiveStore) -> bool:
        return await extend_request(keys, request_id, reason)

    if not asyncio.run(_with(ArchiveSettings(), work)):
        typer.echo("no such open request, or already extended", err=True)
        raise typer.Exit(1)
    typer.echo(f"request {request_id} extended by {DUE_DAYS} days")
