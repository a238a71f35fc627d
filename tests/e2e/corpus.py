"""A corpus of hostile and broken inputs, each with the outcome a mature product owes it.

Every case is sent through intake's Kafka door or its HTTP door (alternating), and says what
must happen: a rejection with a specific reason code (archived with its reasons), an HTTP
status at the door, or a safe normalised acceptance.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from shared import ids
from tests.e2e.driver import Archive, post


@dataclass(frozen=True)
class Case:
    """One hostile input and what must come of it."""

    name: str
    body: bytes
    door: str  # kafka | http
    status: int  # the HTTP door's answer (ignored for the Kafka door)
    expect_code: frozenset[str]  # a rejection reason code, one of these; empty: not a rejection
    key: str | None = None  # the API key the HTTP door is given

    @property
    def accepted_id(self) -> str | None:
        """Return the submission id when this input must be accepted (normalised), else None."""
        if self.expect_code or self.status != 202:
            return None
        raw = json.loads(self.body)
        return ids.submission_id(raw["channel"], raw["channel_ref"], "")

    def found_in(self, rejected: dict[str, set[str]]) -> bool:
        """Return True when the archive holds this input's rejection with an expected code."""
        codes = rejected.get(hashlib.sha256(self.body).hexdigest(), set())
        return bool(codes & self.expect_code)


def _good(ref: str, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "channel": "najiz_portal",
        "channel_ref": ref,
        "kind": "suggestion",
        "topic": "najiz-services",
        "body": "أقترح إضافة إشعار عند تحديث حالة الطلب.",
        "submitted_at": "2026-11-25T10:03:00+03:00",
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


Template = Callable[[str], tuple[bytes, frozenset[str]]]
codes = frozenset

TEMPLATES: dict[str, Template] = {
    "invalid UTF-8": lambda r: (b"\xff\xfe" + _json(_good(r)), codes({"invalid_utf8"})),
    "truncated JSON": lambda r: (_json(_good(r))[:-7], codes({"invalid_json"})),
    "JSON array": lambda r: (_json([_good(r)]), codes({"not_an_object"})),
    "nested 10,000 deep": lambda r: (_nested(10_000), codes({"too_deep", "invalid_json"})),
    "over 256 KiB": lambda r: (_json(_good(r, body="x" * 270_000)), codes({"too_large"})),
    "kind of the wrong type": lambda r: (
        _json(_good(r, kind=5)),
        codes({"invalid_type", "invalid_value"}),
    ),
    "unknown kind": lambda r: (_json(_good(r, kind="rant")), codes({"invalid_value"})),
    "$ operator key": lambda r: (_json({**_good(r), "$where": "1==1"}), codes({"forbidden_key"})),
    "dotted key": lambda r: (
        _json({**_good(r), "submitter": {"a.b": 1}}),
        codes({"forbidden_key"}),
    ),
    "unknown channel": lambda r: (
        _json(_good(r, channel="fax_machine")),
        codes({"unknown_channel"}),
    ),
    "submitted in the future": lambda r: (
        _json(_good(r, submitted_at=(datetime.now(UTC) + timedelta(days=2)).isoformat())),
        codes({"submitted_in_future"}),
    ),
    "no offset in the timestamp": lambda r: (
        _json(_good(r, submitted_at="2026-11-25T10:03:00")),
        codes({"invalid_timestamp"}),
    ),
    "missing body and answers": lambda r: (
        _json(_good(r, body=None)),
        codes({"empty_submission", "missing_field"}),
    ),
    "missing channel": lambda r: (_json(_good(r, channel=None)), codes({"missing_field"})),
    "subject over 300 chars": lambda r: (_json(_good(r, subject="س" * 301)), codes({"too_long"})),
    "201 answers": lambda r: (
        _json(_good(r, answers=[{"question_id": f"q{i}", "answer": "نعم"} for i in range(201)])),
        codes({"too_many_items"}),
    ),
    "invalid e-mail": lambda r: (
        _json(_good(r, submitter={"email": "not-an-address"})),
        codes({"invalid_email"}),
    ),
    "invalid phone": lambda r: (
        _json(_good(r, submitter={"phone": "12"})),
        codes({"invalid_phone"}),
    ),
    "invalid national id": lambda r: (
        _json(_good(r, submitter={"national_id": "9999999999"})),
        codes({"invalid_national_id"}),
    ),
    # accepted, safely normalised: the pipeline must carry them to the mailbox unharmed
    "NUL and bidi controls": lambda r: (
        _json(_good(r, body="نص\u0000 مع \u202eعكس\u202c الاتجاه")),
        frozenset(),
    ),
    "HTML and script": lambda r: (
        _json(_good(r, body="<script>alert(1)</script><b>bold</b>")),
        frozenset(),
    ),
    "CRLF header injection in subject": lambda r: (
        _json(_good(r, subject="hello\r\nBcc: attacker@example.com")),
        frozenset(),
    ),
}

HTTP_ONLY: dict[str, tuple[int, str | None]] = {
    "no API key": (401, None),
    "another channel's key": (403, "local-istitlaa-key"),
}


def _http_status(name: str, expect: frozenset[str]) -> int:
    if name == "over 256 KiB":
        return 413
    if name == "unknown channel":
        return 403  # the key's channel is not the body's: refused before validation
    return 422 if expect else 202


def build(run: str, variants: int = 10) -> list[Case]:
    """Return every template `variants` times, alternating doors, plus the HTTP-only cases."""
    cases: list[Case] = []
    for name, template in TEMPLATES.items():
        for i in range(variants):
            body, expect = template(f"{run}-{len(cases):05d}")
            door = "http" if i % 2 else "kafka"
            status = _http_status(name, expect)
            # the door refuses these before they become submissions: nothing to archive
            archived = expect if not (door == "http" and status in {401, 403, 413}) else frozenset()
            cases.append(Case(name, body, door, status, archived, "local-najiz_portal-key"))
    for name, (status, key) in HTTP_ONLY.items():
        for _ in range(variants):
            body = _json(_good(f"{run}-{len(cases):05d}"))
            cases.append(Case(name, body, "http", status, frozenset(), key))
    return cases


async def post_all(client: httpx.AsyncClient, cases: Sequence[Case]) -> list[int]:
    """POST each HTTP case with its key; return the status codes, in order."""
    codes_seen = []
    for case in cases:
        for _ in range(60):
            try:
                response = await post(client, case.body, case.key)
                break
            except httpx.TransportError:
                await asyncio.sleep(0.5)
        codes_seen.append(response.status_code)
    return codes_seen


async def archived_rejections(since: datetime) -> dict[str, set[str]]:
    """Return the reason codes of every rejection archived since `since`, by raw SHA-256."""
    found: dict[str, set[str]] = {}
    for line in await Archive().events(since):
        if line["event_type"] != "submission.rejected":
            continue
        event = orjson.loads(line["event"]) if isinstance(line["event"], str) else line["event"]
        payload = event["payload"]
        found.setdefault(payload["raw_sha256"], set()).update(r["code"] for r in payload["reasons"])
    return found
