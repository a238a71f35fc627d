"""`make demo`: send the sample submissions through both doors of a running `make run`.

Half go to `feedback.submissions.v1` (as a channel producing to Kafka would), half to
`POST /v1/submissions` with the channel's demo key. Then it asks the archive where each went
and finds each unit's e-mail in the SMTP sink's Maildir, and prints one line per submission.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared import ids, topics

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("SADA_RUN_DIR", ROOT / ".run"))
SAMPLES = Path(
    os.environ.get("SADA_SAMPLES", ROOT.parent / "shared" / "samples" / "submissions.jsonl")
)
INTAKE = "http://127.0.0.1:8001"
ARCHIVE = "http://127.0.0.1:8004"
ARCHIVE_TOKEN = os.environ.get("SADA_DEMO_ARCHIVE_TOKEN", "local-dev-token")


def load(run: str) -> list[dict[str, Any]]:
    """Return the samples with channel refs unique to this demo run."""
    lines = SAMPLES.read_text(encoding="utf-8").splitlines()
    samples = [json.loads(line) for line in lines if line.strip()]
    for i, sample in enumerate(samples):
        sample["channel_ref"] = f"DEMO-{run}-{i:02d}"
    return samples


async def send(samples: list[dict[str, Any]]) -> dict[str, str]:
    """Send even samples over Kafka and odd ones over HTTP; return the door by submission id."""
    doors: dict[str, str] = {}
    producer = AIOKafkaProducer(
        bootstrap_servers="127.0.0.1:9092", acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            for i, sample in enumerate(samples):
                body = json.dumps(sample, ensure_ascii=False).encode()
                sid = ids.submission_id(sample["channel"], sample["channel_ref"], "")
                if i % 2 == 0:
                    await producer.send_and_wait(topics.SUBMISSIONS, body)
                    doors[sid] = "kafka"
                    continue
                key = f"local-{sample['channel']}-key"
                response = await client.post(
                    f"{INTAKE}/v1/submissions",
                    content=body,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                response.raise_for_status()
                assert response.json()["submission_id"] == sid
                doors[sid] = "http"
    finally:
        await producer.stop()
    return doors


def mail_files() -> dict[str, list[Path]]:
    """Return the Maildir's files by X-Sada-Reference."""
    found: dict[str, list[Path]] = {}
    for path in (RUN / "mail" / "new").glob("*"):
        with path.open("rb") as handle:
            headers = BytesHeaderParser(policy=policy.default).parse(handle)
        found.setdefault(str(headers["X-Sada-Reference"]), []).append(path)
    return found


async def wait(doors: dict[str, str], within: float = 120.0) -> dict[str, dict[str, Any]]:
    """Wait until the archive shows every submission notified; return their states."""
    states: dict[str, dict[str, Any]] = {}
    headers = {"Authorization": f"Bearer {ARCHIVE_TOKEN}"}
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:
        while time.monotonic() < deadline:
            for sid in doors:
                if states.get(sid, {}).get("status") in {"notified", "notification_failed"}:
                    continue
                response = await client.get(f"{ARCHIVE}/v1/submissions/{sid}")
                if response.status_code == 200:
                    states[sid] = response.json()["submission"]
            if all(
                s.get("status") in {"notified", "notification_failed"} for s in states.values()
            ) and len(states) == len(doors):
                break
            await asyncio.sleep(2)
    return states


COLUMNS = (("reference", 16), ("door", 6), ("channel", 26), ("kind", 22), ("unit", 20),
           ("rule_id", 22), ("status", 10))  # fmt: skip


def row(values: list[str]) -> str:
    """Return one table line with the columns' widths."""
    return " ".join(f"{v:<{width}}" for v, (_, width) in zip(values, COLUMNS, strict=False))


def main() -> None:
    """Send, wait and print where each submission went."""
    run = uuid.uuid4().hex[:6].upper()
    samples = load(run)
    doors = asyncio.run(send(samples))
    by_kafka = sum(d == "kafka" for d in doors.values())
    print(f"sent {len(samples)} samples (run {run}): {by_kafka} via Kafka, "
          f"{len(doors) - by_kafka} via HTTP; waiting for the archive…")  # fmt: skip
    states = asyncio.run(wait(doors))
    mail = mail_files()
    print("\n" + row([name for name, _ in COLUMNS]) + " e-mails")
    complete = True
    for sid, door in doors.items():
        state = states.get(sid, {})
        reference = ids.reference(sid)
        emails = mail.get(reference, [])
        complete &= state.get("status") == "notified" and len(emails) == 1
        values = [reference, door] + [str(state.get(n, "?")) for n, _ in COLUMNS[2:]]
        print(f"{row(values)} {len(emails)}")
    print(f"\ne-mails are in {RUN / 'mail' / 'new'} (one file each; open with any mail reader).")
    if not complete:
        sys.exit("some submissions were not routed, e-mailed once and archived: see the table")
    print("every submission was routed, e-mailed once and archived.")


if __name__ == "__main__":
    main()
