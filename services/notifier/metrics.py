"""The notifier's Prometheus metrics (default registry; labels are bounded sets only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EMAILS = Counter(
    "sada_notifier_emails_total",
    "Notifications by unit and outcome: sent, failed (permanent refusal), repeat (ledger hit) "
    "or parked (recipient refused for now: retried on a schedule).",
    ["unit", "outcome"],
)
LEDGER_HITS = Counter(
    "sada_notifier_ledger_hits_total",
    "Routed events whose e-mail the ledger already held: the repeat was suppressed.",
    ["unit"],
)
SMTP_SECONDS = Histogram(
    "sada_notifier_smtp_seconds",
    "Time the mail server took to take one e-mail (MAIL FROM to the reply to DATA).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SMTP_RETRIES = Counter(
    "sada_notifier_smtp_retries_total",
    "Sends that failed transiently and will be retried, by failure kind.",
    ["kind"],
)
SMTP_CONNECTIONS = Counter(
    "sada_notifier_smtp_connections_total",
    "SMTP connections opened (one is reused; more means the server dropped us).",
)
ACCEPTED_TO_EMAILED = Histogram(
    "sada_notifier_accepted_to_emailed_seconds",
    "From intake accepting a submission to the mail server taking its notification.",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
DEFERRED_ATTEMPTS = Counter(
    "sada_notifier_deferred_attempts_total",
    "Attempts at parked notifications, by unit and result: sent, failed, refused (again), "
    "announced (`notification.deferred` published) or error (server-wide, tried again).",
    ["unit", "result"],
)
DEFERRED_DUE = Gauge(
    "sada_notifier_deferred_due",
    "Parked notifications found due at this notifier's last look (capped by its batch).",
)
DIGEST_MODE = Gauge(
    "sada_notifier_digest_mode",
    "1 while this notifier sees the unit's mailbox above its threshold (digest mode), else 0.",
    ["unit"],
)
DIGEST_MODE_CHANGES = Counter(
    "sada_notifier_digest_mode_changes_total",
    "Switches of a unit's mailbox between individual and digest mode, by the mode entered.",
    ["unit", "mode"],
)
DIGEST_PENDING = Counter(
    "sada_notifier_digest_pending_total",
    "Submissions set aside for the next digest, by unit and why: surge or campaign (a copy "
    "past the campaign's first members).",
    ["unit", "why"],
)
DIGESTS = Counter(
    "sada_notifier_digests_total",
    "Digest e-mails by unit and outcome: sent, failed (permanent refusal) or retry.",
    ["unit", "outcome"],
)
DIGEST_ITEMS = Histogram(
    "sada_notifier_digest_items",
    "Submissions in one digest e-mail.",
    ["unit"],
    buckets=(1, 5, 10, 30, 100, 200, 500, 1000, 2000, 5000, 10000, 20000),
)
DIGEST_OLDEST_SECONDS = Gauge(
    "sada_notifier_digest_oldest_pending_seconds",
    "Age of the oldest submission waiting for a digest of the unit's mailbox (0: none waits).",
    ["unit"],
)
DIGEST_WINDOW_SECONDS = Gauge(
    "sada_notifier_digest_window_seconds",
    "The unit's digest window, for alerts (oldest pending over two windows).",
    ["unit"],
)
PRUNED = Counter(
    "sada_notifier_pruned_total",
    "Documents the pruner deleted, by collection (older than the de-duplication window).",
    ["collection"],
)
GIVEN_UP = Counter(
    "sada_notifier_given_up_total",
    "Notifications given up undelivered because their submission's personal data may not wait "
    "longer (SADA_RETENTION__PERSONAL_DAYS), by unit and path: deferred or digest.",
    ["unit", "path"],
)
