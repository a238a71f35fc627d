"""Test helpers for the router: submissions from the shared samples, and accepted events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from shared import events, ids
from shared.models import Submission
from tests.infra import ROOT

SAMPLES = ROOT / "deploy" / "samples" / "submissions.jsonl"
LO, VOC = "legislations_office", "voice_of_customer"

# docs/design.md's rules applied to each sample by hand (line number → unit, rule id).
EXPECTED = {
    1: (LO, "legislation-reference"),
    2: (LO, "legislation-reference"),
    3: (LO, "legislation-reference"),
    4: (VOC, "explicit-topic"),
    5: (VOC, "explicit-topic"),
    6: (VOC, "default"),
    7: (VOC, "explicit-topic"),
    8: (VOC, "default"),
    9: (VOC, "default"),
    10: (VOC, "default"),
    11: (VOC, "explicit-topic"),
    12: (LO, "legislative-keywords"),
    13: (LO, "legislative-keywords"),
    14: (VOC, "explicit-topic"),
    15: (VOC, "default"),
    16: (LO, "legislative-topic"),
    17: (VOC, "default"),
    18: (VOC, "default"),
    19: (LO, "consultation-channel"),
    20: (LO, "legislation-reference"),
}


def raw_samples() -> list[dict[str, Any]]:
    """Return the shared sample RawSubmissions as dicts, in file order."""
    return [orjson.loads(line) for line in SAMPLES.read_bytes().splitlines() if line.strip()]


def submission(**fields: Any) -> Submission:
    """Return a valid Submission: an anonymous Najiz portal idea unless `fields` say otherwise."""
    data: dict[str, Any] = {
        "channel": "najiz_portal",
        "kind": "idea",
        "body": "نص عادي عن خدمة",
        "submitted_at": "2026-11-25T10:00:00+03:00",
        "language": "ar",
    } | fields
    sid = ids.submission_id(
        data["channel"], data.get("channel_ref"), ids.digest(orjson.dumps(data))
    )
    data.setdefault("submission_id", sid)
    data.setdefault("reference", ids.reference(data["submission_id"]))
    data.setdefault("received_at", datetime.now(UTC))
    return Submission.model_validate(data)


def samples() -> list[Submission]:
    """Return the shared samples as accepted Submissions."""
    return [submission(**raw) for raw in raw_samples()]


def accepted(sub: Submission, *, correlation_id: str | None = None) -> events.SubmissionAccepted:
    """Return the `submission.accepted` event intake would publish for `sub`."""
    return events.build(
        events.SubmissionAccepted,
        submission_id=sub.submission_id,
        reference=sub.reference,
        payload=events.AcceptedPayload(submission=sub, door="kafka"),
        discriminator="test",
        producer=events.Producer(service="intake", version="test"),
        correlation_id=correlation_id,
    )
