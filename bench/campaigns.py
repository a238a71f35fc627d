"""Campaign grouping's cost: CPU per submission with 100,000 members in one scope, and memory.

`python -m bench.campaigns` (not part of `make bench`: no infrastructure, one process) fills
one `legislation_ref` scope of a fresh `MemoryStore` with `--members` submissions, then groups
`--measured` more and reports the CPU time (`time.process_time`) per grouped submission, and
the store's memory after the fill: the Python allocations it holds (`tracemalloc`, so the
fill is not timed) and the RSS growth (submissions are pre-built before either is read).

Two mixes, both built from the labelled corpus' generator (`tests/campaign_corpus.py`):

- `campaign`: what a contested draft law receives — 80% copies of 20 campaign templates
  (each copy a variant: synonyms, punctuation, letter variants, greeting or signature), 20%
  organic comments in the submitters' own words;
- `distinct`: the worst case for the index — every submission an organic comment, so every
  one is indexed as a near-identical candidate.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from services.campaigns.grouping import MAX_EXACT, MAX_INDEXED, MemoryStore, group
from shared import ids
from shared.models import Kind, Submission
from tests.campaign_corpus import EN_WORDS, sentence, variant

SUBMITTED = datetime(2026, 3, 1, tzinfo=UTC)
SCOPE = "legislation:bench-law"


def submission(n: int, body: str) -> Submission:
    """Return an accepted submission on one draft law (built directly: validation is not timed)."""
    submission_id = ids.submission_id("bench", f"campaign-{n}", "")
    return Submission.model_construct(
        channel="bench",
        channel_ref=f"campaign-{n}",
        kind=Kind.CONSULTATION_RESPONSE,
        topic=None,
        legislation_ref="bench-law",
        survey_id=None,
        subject=None,
        body=body,
        answers=(),
        submitter=None,
        submitted_at=SUBMITTED,
        attachments=(),
        submission_id=submission_id,
        reference=ids.reference(submission_id),
        language="en",
        received_at=SUBMITTED,
    )


def bodies(mix: str, count: int, seed: int) -> list[str]:
    """Return `count` comment texts of the given mix."""
    rng = random.Random(seed)
    templates = [sentence(rng, EN_WORDS, rng.randint(40, 70)) for _ in range(20)]
    out = []
    for _ in range(count):
        if mix == "campaign" and rng.random() < 0.8:
            out.append(variant(rng, rng.choice(templates), "en"))
        else:
            out.append(sentence(rng, EN_WORDS, rng.randint(20, 80)))
    return out


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def rss_bytes() -> int:
    """Return this process's resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(
    mix: str, members: int, measured: int, seed: int, *, max_indexed: int, max_exact: int
) -> dict[str, object]:
    """Fill one scope with `members`, then time `measured` more; return the figures."""
    texts = bodies(mix, members + measured, seed)
    subs = [submission(n, text) for n, text in enumerate(texts)]
    store = MemoryStore(max_indexed=max_indexed, max_exact=max_exact)
    gc.collect()
    before = rss_bytes()
    tracemalloc.start()
    for sub in subs[:members]:
        group(sub, "unit", store)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    memory = rss_bytes() - before
    started = time.process_time()
    grouped = sum(group(sub, "unit", store).campaign_id is not None for sub in subs[members:])
    cpu = time.process_time() - started
    return {
        "mix": mix,
        "members": members,
        "max_indexed": max_indexed,
        "measured": measured,
        "grouped_share": round(grouped / measured, 3),
        "cpu_ms_per_submission": round(cpu * 1000 / measured, 4),
        "store_mib": round(traced / 2**20, 1),
        "store_rss_mib": round(memory / 2**20, 1),
        "indexed": store.indexed(SCOPE),
        "distinct_texts": store.distinct(SCOPE),
    }


def main() -> None:
    """Run both mixes and print one JSON object per mix, then the machine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--measured", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--max-indexed", type=int, default=MAX_INDEXED)
    parser.add_argument("--max-exact", type=int, default=MAX_EXACT)
    parser.add_argument("--mix", choices=("campaign", "distinct", "both"), default="both")
    args = parser.parse_args()
    mixes = ("campaign", "distinct") if args.mix == "both" else (args.mix,)
    for mix in mixes:
        print(
            json.dumps(
                measure(
                    mix,
                    args.members,
                    args.measured,
                    args.seed,
                    max_indexed=args.max_indexed,
                    max_exact=args.max_exact,
                )
            ),
            flush=True,
        )
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
