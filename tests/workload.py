"""Realistic workloads built from `deploy/samples`, and an independent routing oracle.

The oracle re-states docs/design.md's routing table in a dozen lines, deliberately without the
router's code, so an end-to-end check compares the system with the contract, not with itself.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra import ROOT

SAMPLES = ROOT / "deploy" / "samples" / "submissions.jsonl"
LEGISLATIONS, VOC = "legislations_office", "voice_of_customer"
MAILBOX = {LEGISLATIONS: "LegislationsOffice@moj.gov.sa", VOC: "voc@moj.gov.sa"}
KEYWORDS_AR = [
    "مشروع نظام",
    "مشروع لائحة",
    "مسودة نظام",
    "مسودة لائحة",
    "مشروع تعديل",
    "اللائحة التنفيذية",
    "استطلاع مرئيات",
]
KEYWORDS_EN = [
    "draft law",
    "draft regulation",
    "draft bylaw",
    "executive regulations",
    "public consultation",
    "legislation",
]


def load_samples(path: Path = SAMPLES) -> list[dict[str, Any]]:
    """Return the sample submissions as dictionaries."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = re.sub("[\u064b-\u065f\u0670\u0640]", "", text)
    text = re.sub("[أإآٱ]", "ا", text).replace("ى", "ي").replace("ة", "ه")
    return re.sub(r"\s+", " ", text.casefold())


def expected_unit(raw: dict[str, Any]) -> str:
    """Return the unit docs/design.md's default rules give (first match wins)."""
    if raw.get("legislation_ref"):
        return LEGISLATIONS
    if raw["channel"] in {"istitlaa", "legislation_questionnaire"}:
        return LEGISLATIONS
    if raw["kind"] == "consultation_response":
        return LEGISLATIONS
    topic = raw.get("topic")
    if topic in {"legislation", "draft-legislation", "regulations", "bylaws"}:
        return LEGISLATIONS
    if topic:
        return VOC
    text = _normalise(f"{raw.get('subject') or ''} {raw.get('body') or ''}")
    if any(_normalise(k) in text for k in KEYWORDS_AR + KEYWORDS_EN):
        return LEGISLATIONS
    return VOC


@dataclass(frozen=True)
class Item:
    """One submission to send: its raw JSON, the door to use and the unit it must reach."""

    raw: dict[str, Any]
    door: str  # "kafka" or "http"
    unit: str
    resubmission: bool = False

    @property
    def key(self) -> tuple[str, str]:
        """Return the (channel, channel_ref) pair that identifies it."""
        return self.raw["channel"], self.raw["channel_ref"]

    def encoded(self) -> bytes:
        """Return the raw JSON bytes a channel would send."""
        return json.dumps(self.raw, ensure_ascii=False).encode()


def build(run: str, count: int, *, http_share: float = 0.25, resubmit_share: float = 0.05,
          seed: int = 7) -> list[Item]:  # fmt: skip
    """Return `count` varied submissions, a share via HTTP and a share sent twice."""
    rng = random.Random(seed)
    samples = load_samples()
    items: list[Item] = []
    for i in range(count):
        raw = dict(samples[i % len(samples)])
        raw["channel_ref"] = f"{run}-{i:06d}"
        if raw.get("body"):
            raw["body"] = f"{raw['body']} ({i})"
        door = "http" if rng.random() < http_share else "kafka"
        items.append(Item(raw, door, expected_unit(raw)))
    for original in rng.sample(items, int(count * resubmit_share)):
        other = "kafka" if original.door == "http" else "http"
        items.append(Item(original.raw, other, original.unit, resubmission=True))
    return items
