"""Prometheus metrics of the archive (default registry; labels are bounded sets)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "sada_archive_events_total",
    "Records seen by the archive, by topic and outcome (archived, duplicate, invalid).",
    ["topic", "outcome"],
)
DUPLICATES = Counter(
    "sada_archive_duplicates_total",
    "Redelivered events that were already archived (a no-op).",
    ["topic"],
)
WRITE_SECONDS = Histogram(
    "sada_archive_write_seconds",
    "Time spent writing one batch, by collection.",
    ["collection"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CHAIN_BREAKS = Counter(
    "sada_archive_chain_breaks_total",
    "Broken chain links found by any verification (API, CLI, background sweep), by kind.",
    ["kind"],
)
CHAIN_BREAKS_LAST_SWEEP = Gauge(
    "sada_archive_chain_breaks_last_sweep",
    "Broken chain links found by the last full background verification.",
)
CHAIN_CONFLICTS = Counter(
    "sada_archive_chain_conflicts_total",
    "Appends that lost a race for a chain position (stale head) and were re-chained.",
)
ACCESSES = Counter(
    "sada_archive_accesses_total",
    "Reads of the API by outcome: `stored` (its access event archived, then served), "
    "`refused` (the access log was full or too slow: 503, nothing served), `failed`.",
    ["outcome"],
)
ACCESS_QUEUE = Gauge(
    "sada_archive_access_queue", "Reads waiting for their access event to be stored."
)
LOG_CHECKPOINTS = Counter(
    "sada_archive_log_checkpoints_total",
    "Signed checkpoints of partition logs written to the witness (one per partition advanced).",
)
LOG_CHECKPOINT_FAILURES = Counter(
    "sada_archive_log_checkpoint_failures_total",
    "Checkpoints that could not be written to the witness (retried at the next interval).",
)
PRIVACY_PAST_DUE = Gauge(
    "sada_privacy_requests_past_due",
    "Data subjects' requests (access or erasure) still open past their due date (PDPL: 30 "
    "days, extendable once by 30); refreshed every privacy interval.",
)
