"""The message mix: realistic events built from the samples, as the services would emit them.

Accepted events are intake's own output for the workload of `tests.workload` (the 20 sample
submissions, each made unique), so the router sees exactly what it sees in production.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.intake.outcomes import Destinations, outcome_of
from shared.consultations import load_consultations
from shared.directory import load_channels
from shared.events import Producer
from shared.kafka import Outgoing
from tests import workload

INTAKE = Producer(service="intake", version="bench")


def accepted_events(run: str, count: int, topic: str) -> list[Outgoing]:
    """Return `count` `submission.accepted` records for `topic`, validated as intake does."""
    channels = frozenset(load_channels())
    consultations = load_consultations()
    to = Destinations(accepted=topic, rejected=f"{topic}.rejected")
    now = datetime.now(UTC)
    items = workload.build(run, count, resubmit_share=0.0)
    outgoing = [
        outcome_of(
            item.encoded(),
            channels=channels,
            consultations=consultations,
            now=now,
            door="http" if item.door == "http" else "kafka",
            source=None,
            producer=INTAKE,
            to=to,
        ).outgoing
        for item in items
    ]
    rejected = [o for o in outgoing if o.topic != topic]
    if rejected:  # the samples are all valid; a rejection means the samples or intake changed
        msg = f"{len(rejected)} workload submissions were rejected; check deploy/samples"
        raise RuntimeError(msg)
    return outgoing


def describe(records: Sequence[Outgoing]) -> dict[str, Any]:
    """Return the mix's size statistics and its share by topic."""
    sizes = sorted(len(r.value) for r in records)
    return {
        "records": len(records),
        "bytes_mean": round(sum(sizes) / len(sizes)) if sizes else 0,
        "bytes_min": sizes[0] if sizes else 0,
        "bytes_max": sizes[-1] if sizes else 0,
        "by_topic": dict(Counter(r.topic for r in records)),
    }


def workload_mix() -> dict[str, Any]:
    """Return the submission mix of the workload: channels, kinds and expected units."""
    samples = workload.load_samples()
    return {
        "samples": len(samples),
        "channels": dict(Counter(s["channel"] for s in samples)),
        "kinds": dict(Counter(s["kind"] for s in samples)),
        "units": dict(Counter(workload.expected_unit(s) for s in samples)),
        "with_submitter": sum(1 for s in samples if s.get("submitter")),
        "with_answers": sum(1 for s in samples if s.get("answers")),
    }
