"""`make demo`: send the sample submissions through both doors of a running `make run`.

Half go to `feedback.submissions.v1` (as a channel producing to Kafka would), half to
`POST /v1/submissions` with the channel's demo key. Then it asks the archive where each went
and finds each unit's e-mail in the SMTP sink's Maildir, and prints one line per submission.
A few broken inputs follow through both doors: each must come back rejected with the reason
codes intake's own validation gives (the HTTP door answers 422 with them), be archived as
rejected, and be e-mailed to nobody.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from services.intake.validation import Rejected, validate
from shared import ids, topics
from shared.directory import CONFIG_DIR, load_channels

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
    ]  # fmt: skip


def expected(item: Input, channels: Collection[str]) -> Rejected:
    """Return what intake's own validation makes of a broken input."""
    result = validate(item.body, channels=channels, now=datetime.now(UTC))
    if not isinstance(result, Rejected):
        raise SystemExit(f"demo: the broken input {item.what!r} would be accepted")
    return result


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
    """Return the Maildir's files by X-Sada-Reference."""
    found: dict[str, list[Path]] = {}
    for path in (RUN / "mail" / "new").glob("*"):
        with path.open("rb") as handle:
            headers = BytesHeaderParser(policy=policy.default).parse(handle)
        found.setdefault(str(headers["X-Sada-Reference"]), []).append(path)
    return found


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
           ("rule_id", 22), ("status", 10))  # fmt: skip


def row(values: list[str], columns: tuple[tuple[str, int], ...] = COLUMNS) -> str:
    """Return one table line with the columns' widths."""
    return " ".join(f"{v:<{width}}" for v, (_, width) in zip(values, columns, strict=False))


def main() -> None:
    """Send, wait and print where each submission went, and how each broken one was refused."""
    run = uuid.uuid4().hex[:6].upper()
    good, bad = load(run), broken(run)
    channels = load_channels(CONFIG_DIR / "channels.yaml")
    refusals = {item: expected(item, channels) for item in bad}
    sids = [
        ids.submission_id(item.channel, json.loads(item.body)["channel_ref"], "") for item in good
    ]
    answered = asyncio.run(send(good + bad))
    by_kafka = sum(item.door == "kafka" for item in good)
    print(f"sent {len(good)} samples (run {run}): {by_kafka} via Kafka, "
          f"{len(good) - by_kafka} via HTTP, and {len(bad)} broken inputs; "
          "waiting for the archive…")  # fmt: skip
    states = asyncio.run(wait(sids + [r.submission_id for r in refusals.values()]))
    mail = mail_files()
    print("\n" + row([name for name, _ in COLUMNS]) + " e-mails")
    complete = True
    for sid, item in zip(sids, good, strict=True):
        state = states.get(sid, {})
        reference = ids.reference(sid)
        emails = mail.get(reference, [])
        complete &= state.get("status") == "notified" and len(emails) == 1
        values = [reference, item.door] + [str(state.get(n, "?")) for n, _ in COLUMNS[2:]]
        print(f"{row(values)} {len(emails)}")
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
    if not complete:
        sys.exit("some submissions were not routed, e-mailed once and archived, or a broken "
                 "input was not rejected as intake's validation says: see the tables")  # fmt: skip
    print("every submission was routed, e-mailed once and archived; every broken input was "
          "rejected with its reasons, archived, and e-mailed to nobody.")  # fmt: skip


if __name__ == "__main__":
    main()
