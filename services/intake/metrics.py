"""Intake's Prometheus metrics: outcomes by channel, kind and reason code, and HTTP requests.

Every label is a bounded set: a channel label is a registered channel or `unknown` (a rejected
message may claim any string), kinds are the nine `Kind` values, reason codes are
`validation.CODES`, routes are the app's route templates.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake.validation import Accepted, Rejected
from shared.events import Door

ACCEPTED = Counter(
    "sada_intake_accepted_total",
    "Submissions accepted (counted once Kafka acknowledged the event).",
    ["door", "channel", "kind"],
)
REJECTED = Counter(
    "sada_intake_rejected_total",
    "Submissions rejected (counted once Kafka acknowledged the event).",
    ["door", "channel"],
)
REJECTION_REASONS = Counter(
    "sada_intake_rejection_reasons_total",
    "Reasons found in rejected submissions: each distinct code once per submission.",
    ["door", "channel", "code"],
)
HTTP_REQUESTS = Histogram(
    "sada_intake_http_request_duration_seconds",
    "HTTP requests served by intake, by route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

UNKNOWN = "unknown"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def count(result: Accepted | Rejected, *, door: Door, channels: Collection[str]) -> None:
    """Count one outcome whose event Kafka has acknowledged."""
    if isinstance(result, Accepted):
        submission = result.submission
        ACCEPTED.labels(door, submission.channel, submission.kind.value).inc()
        return
    channel = result.channel if result.channel in channels else UNKNOWN
    REJECTED.labels(door, channel).inc()
    for code in {reason.code for reason in result.reasons}:
        REJECTION_REASONS.labels(door, channel, code).inc()


class HttpMetrics:
    """ASGI middleware timing every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request; label it after routing, when the route template is known."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response starts is a server error

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(
                method if method in _METHODS else "OTHER", _route_of(scope), str(status)
            ).observe(time.perf_counter() - started)


def _route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
