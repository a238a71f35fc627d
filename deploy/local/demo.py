"""`make demo`: send the sample submissions through both doors of a running `make run`.

Half go to `feedback.submissions.v1` (as a channel producing to Kafka would), half to
`POST /v1/submissions` with the channel's demo key. Then it asks the archive where each went
and finds each unit's e-mail in the SMTP sink's Maildir, and prints one line per submission. A
second run within ten minutes passes the mailboxes' threshold (and repeats the campaigns of the
first): those submissions come in a digest, which the demo waits for (one window) and counts.
Questionnaire answers to the example projects of the registry of consultations
(`deploy/config/consultations.yaml`) follow: valid ones to the open project, a late one to the
closed project and one to a project the registry does not know, each accepted and e-mailed with
its consultation mark. A few broken inputs follow through both doors: each must come back
rejected with the reason codes intake's own validation gives (the HTTP door answers 422 with
them), be archived as rejected, and be e-mailed to nobody; among them answers that do not fit a
questionnaire and views on a project not yet open. Last, each project's report URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from services.intake.validation import Accepted, Rejected, validate
from services.notifier.digest_messages import listed_references
from services.notifier.settings import NotifierSettings
from shared import ids, topics
from shared.consultations import CONSULTATIONS_PATH, Consultation, load_consultations
from shared.consultations_cli import window_state
from shared.directory import CONFIG_DIR, load_channels, load_units

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("SADA_RUN_DIR", ROOT / ".run"))
SAMPLES = Path(os.environ.get("SADA_SAMPLES", ROOT / "deploy" / "samples" / "submissions.jsonl"))
INTAKE = "http://127.0.0.1:8001"
ARCHIVE = "http://127.0.0.1:8004"
ARCHIVE_TOKEN = os.environ.get("SADA_DEMO_ARCHIVE_TOKEN", "local-dev-token")
TERMINAL = frozenset({"notified", "notification_failed", "rejected"})


@dataclass(frozen=True, slots=True)
class Input:
    """One thing the demo sends: through which door, and what intake should make of it."""

    door: str
    body: bytes
    channel: str = "email"
    what: str = ""
    """For a broken input: what is wrong with it."""


def load(run: str) -> list[Input]:
    """Return the samples with channel refs unique to this demo run, alternating the doors."""
    lines = SAMPLES.read_text(encoding="utf-8").splitlines()
    samples = [json.loads(line) for line in lines if line.strip()]
    inputs = []
    for i, sample in enumerate(samples):
        sample["channel_ref"] = f"DEMO-{run}-{i:02d}"
        body = json.dumps(sample, ensure_ascii=False).encode()
        inputs.append(Input("kafka" if i % 2 == 0 else "http", body, sample["channel"]))
    return inputs


OPEN, CLOSED, NOT_YET_OPEN = "MOJ-DRAFT-2026-003", "MOJ-DRAFT-2026-007", "MOJ-DRAFT-2027-002"
ANSWERED_AT = "2026-12-01T09:30:00+03:00"
"""When the demo's questionnaire answers were sent: in the open project's window, a day after the
closed project closed, two months before the third opens (fixed, so every run reads the same)."""


def questionnaire(run: str) -> list[Input]:
    """Return answers to the example projects that intake accepts, each with its mark."""

    def doc(tag: str, ref: str, channel: str, answers: list[tuple[str, str]], **more: Any) -> bytes:
        return json.dumps(
            {"channel": channel, "channel_ref": f"DEMO-{run}-{tag}", "legislation_ref": ref,
             "kind": "consultation_response", "submitted_at": ANSWERED_AT,
             "answers": [{"question_id": q, "answer": a} for q, a in answers], **more},
            ensure_ascii=False,
        ).encode()  # fmt: skip

    lq = "legislation_questionnaire"
    return [
        Input("kafka", doc("Q1", OPEN, lq, [
            ("article_12", "support"), ("electronic_evidence", "e_signature,digital_records"),
            ("clarity", "4"), ("remarks", "المدة المقترحة تراعي من يسكن بعيداً عن المحكمة."),
        ]), lq, "answers, in time"),
        Input("http", doc("Q2", OPEN, lq, [
            ("article_12", "oppose"), ("electronic_evidence", "email, text_messages"),
            ("clarity", "٢"),
        ]), lq, "answers, in time"),
        Input("http", doc("Q3", CLOSED, lq, [
            ("q1", "partly"), ("q2", "وصلت متأخراً: أرجو النظر في تعريف (المنشأة)."),
        ]), lq, "answers, late"),
        Input("kafka", doc("Q4", "MOJ-DRAFT-2026-099", "istitlaa", [], kind="comment",
                           body="ملاحظة على مشروع لم يُسجَّل بعد في سجل الاستطلاعات."),
              "istitlaa", "unregistered project"),
    ]  # fmt: skip


def broken(run: str) -> list[Input]:
    """Return broken inputs unique to this demo run, each a mistake a real channel makes."""
    at = "2026-11-30T09:00:00+03:00"

    def doc(**fields: Any) -> bytes:
        return json.dumps(fields, ensure_ascii=False).encode()

    return [
        Input("kafka", f'{{"channel": "email", "body": "DEMO-{run}'.encode(), what="cut-off JSON"),
        Input("kafka", b"\xff\xfe DEMO-" + run.encode(), what="not UTF-8"),
        Input("kafka", doc(channel="fax", channel_ref=f"DEMO-{run}-X1", kind="idea", body="نص",
                           submitted_at=at), what="unknown channel"),
        Input("http", doc(channel="email", channel_ref=f"DEMO-{run}-X2", kind="idea", body="x",
                          submitted_at="2099-01-01T00:00:00+03:00"), what="sent from the future"),
        Input("http", doc(channel="email", channel_ref=f"DEMO-{run}-X3", kind="opinion",
                          submitted_at=at), what="no body and no answers"),
        Input("http", doc(channel="legislation_questionnaire", channel_ref=f"DEMO-{run}-X4",
                          kind="consultation_response", legislation_ref=OPEN,
                          submitted_at=ANSWERED_AT,
                          answers=[{"question_id": "article_12", "answer": "maybe"},
                                   {"question_id": "electronic_evidence", "answer": "fax"},
                                   {"question_id": "clarity", "answer": "عشرة"}]),
              "legislation_questionnaire", "answers not fitting"),
        Input("kafka", doc(channel="legislation_questionnaire", channel_ref=f"DEMO-{run}-X5",
                           kind="consultation_response", legislation_ref=NOT_YET_OPEN,
                           submitted_at=ANSWERED_AT,
                           answers=[{"question_id": "usefulness", "answer": "9"},
                                    {"question_id": "q7", "answer": "نعم"}]),
              "legislation_questionnaire", "project not yet open"),
    ]  # fmt: skip


def expected(
    item: Input, channels: Collection[str], consultations: Mapping[str, Consultation]
) -> Rejected:
    """Return what intake's own validation makes of a broken input."""
    result = validate(
        item.body, channels=channels, now=datetime.now(UTC), consultations=consultations
    )
    if not isinstance(result, Rejected):
        raise SystemExit(f"demo: the broken input {item.what!r} would be accepted")
    return result


def mark_of(
    item: Input, channels: Collection[str], consultations: Mapping[str, Consultation]
) -> str:
    """Return the consultation mark intake gives an accepted input, as the table shows it."""
    result = validate(
        item.body, channels=channels, now=datetime.now(UTC), consultations=consultations
    )
    if not isinstance(result, Accepted):
        raise SystemExit(f"demo: {item.what or 'a sample'!r} would be rejected: {result.reasons}")
    mark = result.submission.consultation
    if mark is None:
        return "-"
    if not mark.registered:
        return "unregistered"
    return "late" if mark.late else "in time"


async def send(inputs: list[Input]) -> dict[str, list[str]]:
    """Send each input through its door; return the reason codes HTTP answered, by door's id."""
    answered: dict[str, list[str]] = {}
    producer = AIOKafkaProducer(
        bootstrap_servers="127.0.0.1:9092", acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for item in inputs:
                if item.door == "kafka":
                    await producer.send_and_wait(topics.SUBMISSIONS, item.body)
                    continue
                response = await client.post(
                    f"{INTAKE}/v1/submissions",
                    content=item.body,
                    headers={
                        "Authorization": f"Bearer local-{item.channel}-key",
                        "Content-Type": "application/json",
                    },
                )
                if response.status_code not in (202, 422):
                    response.raise_for_status()
                body = response.json()
                reasons = [r["code"] for r in body.get("reasons", [])]
                answered[body["submission_id"]] = reasons
    finally:
        await producer.stop()
    return answered


def mail_files() -> dict[str, list[Path]]:
    """Return the Maildir's files by the references they notify.

    A single e-mail names its submission in `X-Sada-Reference`; a digest lists several
    (`listed_references`), so its file counts once for each.
    """
    found: dict[str, list[Path]] = {}
    for path in (RUN / "mail" / "new").glob("*"):
        with path.open("rb") as handle:
            headers = BytesHeaderParser(policy=policy.default).parse(handle)
        if headers["X-Sada-Digest"] is None:
            found.setdefault(str(headers["X-Sada-Reference"]), []).append(path)
            continue
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)
        for reference in listed_references(message):
            found.setdefault(reference, []).append(path)
    return found


def digest_wait_seconds() -> float:
    """Return how long a submission may wait for its digest: the longest unit window and more.

    Past a mailbox's threshold (or for a campaign's later copies) the notifier sends one digest
    per window (docs/digests.md), so the demo waits for the next one rather than failing.
    """
    settings = NotifierSettings()
    default = settings.digest.window_seconds
    windows = [
        unit.digest.window_seconds
        for unit in load_units(settings.units_path).values()
        if unit.digest is not None and unit.digest.window_seconds is not None
    ]
    return max([default, *windows]) + settings.digest.settle_seconds + 30


async def wait(sids: list[str], within: float = 120.0) -> dict[str, dict[str, Any]]:
    """Wait until the archive shows every submission at its end (notified or rejected)."""
    states: dict[str, dict[str, Any]] = {}
    headers = {"Authorization": f"Bearer {ARCHIVE_TOKEN}"}
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:
        while time.monotonic() < deadline:
            for sid in sids:
                if states.get(sid, {}).get("status") in TERMINAL:
                    continue
                response = await client.get(f"{ARCHIVE}/v1/submissions/{sid}")
                if response.status_code == 200:
                    states[sid] = response.json()["submission"]
            if all(states.get(sid, {}).get("status") in TERMINAL for sid in sids):
                break
            await asyncio.sleep(2)
    return states


COLUMNS = (("reference", 16), ("door", 6), ("channel", 26), ("kind", 22), ("unit", 20),
           ("rule_id", 22), ("status", 10), ("consultation", 13))  # fmt: skip


def row(values: list[str], columns: tuple[tuple[str, int], ...] = COLUMNS) -> str:
    """Return one table line with the columns' widths."""
    return " ".join(f"{v:<{width}}" for v, (_, width) in zip(values, columns, strict=False))


def main() -> None:
    """Send, wait and print where each submission went, and how each broken one was refused."""
    run = uuid.uuid4().hex[:6].upper()
    answers = questionnaire(run)
    good, bad = load(run) + answers, broken(run)
    channels = load_channels(CONFIG_DIR / "channels.yaml")
    consultations = load_consultations(CONSULTATIONS_PATH)
    marks = [mark_of(item, channels, consultations) for item in good]
    refusals = {item: expected(item, channels, consultations) for item in bad}
    sids = [
        ids.submission_id(item.channel, json.loads(item.body)["channel_ref"], "") for item in good
    ]
    answered = asyncio.run(send(good + bad))
    by_kafka = sum(item.door == "kafka" for item in good)
    print(f"sent {len(good) - len(answers)} samples and {len(answers)} questionnaire answers "
          f"(run {run}): {by_kafka} via Kafka, {len(good) - by_kafka} via HTTP, and {len(bad)} "
          "broken inputs; waiting for the archive…")  # fmt: skip
    within = max(120.0, digest_wait_seconds())
    states = asyncio.run(wait(sids + [r.submission_id for r in refusals.values()], within))
    mail = mail_files()
    print("\n" + row([name for name, _ in COLUMNS]) + " e-mails (a digest counts once for each)")
    complete = True
    for sid, item, mark in zip(sids, good, marks, strict=True):
        state = states.get(sid, {})
        reference = ids.reference(sid)
        emails = mail.get(reference, [])
        complete &= state.get("status") == "notified" and len(emails) == 1
        values = [reference, item.door] + [str(state.get(n, "?")) for n, _ in COLUMNS[2:-1]]
        print(f"{row([*values, mark])} {len(emails)}")
    print(f"\ne-mails are in {RUN / 'mail' / 'new'} (one file each; open with any mail reader).")
    columns = (("reference", 16), ("door", 6), ("what", 24), ("status", 10), ("reasons", 0))
    print("\n" + row([name for name, _ in columns], columns))
    for item, refusal in refusals.items():
        codes = [r.code for r in refusal.reasons]
        status = str(states.get(refusal.submission_id, {}).get("status", "?"))
        said = answered.get(refusal.submission_id, codes)  # the HTTP door's 422 answer
        complete &= status == "rejected" and said == codes and refusal.reference not in mail
        values = [refusal.reference, item.door, item.what, status, ", ".join(codes)]
        print(row(values, columns))
    print("\nconsultations (deploy/config/consultations.yaml): the summary of views of each")
    now = datetime.now(UTC)
    for ref, consultation in consultations.items():
        window = window_state(consultation, now)
        print(f"  {ref:<20} {window:<13} {ARCHIVE}/v1/consultations/{ref}/report?format=html")
    hint = "or: sada report consultation REF --format html --out report.html"
    print(f"  (the API wants a token: curl -H 'Authorization: Bearer {ARCHIVE_TOKEN}' URL; {hint})")
    if not complete:
        sys.exit("some submissions were not routed, e-mailed once and archived, or a broken "
                 "input was not rejected as intake's validation says: see the tables")  # fmt: skip
    print("every submission was routed, e-mailed once and archived; every broken input was "
          "rejected with its reasons, archived, and e-mailed to nobody.")  # fmt: skip


if __name__ == "__main__":
    main()
