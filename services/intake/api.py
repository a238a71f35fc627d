"""Intake's HTTP door: `POST /v1/submissions` for channels that cannot produce to Kafka.

The door answers only once the outcome is durable: 202 `{submission_id, reference}` after Kafka
acknowledged `submission.accepted` (acks=all), 422 with every reason after it acknowledged
`submission.rejected`. Before reading the body it checks the API key (401), the key's rate
limit (429 with `Retry-After`) and the declared size (413); it never reads more of a body than
the limit plus one chunk. A key submits only for its own channel (403). No answer echoes
submitted values.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from faststream.kafka import KafkaBroker
from limits import RateLimitItem
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, Field

from services.intake import metrics
from services.intake.apikeys import ApiKeys, hash_key
from services.intake.outcomes import Destinations, outcome_of
from services.intake.validation import Accepted, Rejected
from shared.consultations import Consultation
from shared.events import Producer
from shared.kafka import Outgoing, produce_all
from shared.logging import get_logger
from shared.models import MAX_MESSAGE_BYTES, RawSubmission, Reason
from shared.retry import is_transient

log = get_logger(__name__)

SUBMISSIONS_PATH = "/v1/submissions"
RETRY_AFTER_UNAVAILABLE = 5

_bearer = HTTPBearer(
    auto_error=False, description="`Authorization: Bearer <key>`: the channel's API key."
)
_api_key = APIKeyHeader(
    name="X-Api-Key", auto_error=False, description="The channel's API key (alternative header)."
)


class Receipt(BaseModel):
    """The answer to an accepted submission: what a citizen can quote."""

    submission_id: str = Field(description="UUIDv5; the same for a resubmission.")
    reference: str = Field(description="Short human code, e.g. SADA-7K3M-Q9XD.")


class Rejection(BaseModel):
    """The answer to a rejected submission: every problem found, no submitted value echoed."""

    rejected: Literal[True] = True
    submission_id: str = Field(description="The id the rejection is archived under.")
    reference: str = Field(description="The rejection's reference, for support requests.")
    reasons: tuple[Reason, ...] = Field(description="Every problem found.")


class Problem(BaseModel):
    """An error that is not about the submission's content."""

    detail: str


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


_SAMPLE = {
    "channel": "istitlaa",
    "channel_ref": "IST-2026-88121",
    "kind": "opinion",
    "legislation_ref": "MOJ-DRAFT-2026-003",
    "subject": "مشروع نظام الإثبات — المادة 12",
    "body": "أرى أن تمديد مدة تقديم البينة إلى ثلاثين يوماً يحقق العدالة للأطراف.",
    "submitted_at": "2026-11-25T10:00:00+03:00",
}


def router(
    *,
    broker: KafkaBroker,
    keys: ApiKeys,
    limiter: MovingWindowRateLimiter,
    rate: RateLimitItem,
    channels: Collection[str],
    consultations: Mapping[str, Consultation],
    producer: Producer,
    to: Destinations,
    publish_timeout: float,
) -> APIRouter:
    """Return the submissions route, wired to the broker, the keys and the rate limiter."""
    routes = APIRouter(tags=["submissions"])

    @routes.post(
        SUBMISSIONS_PATH,
        status_code=202,
        summary="Submit feedback (RawSubmission JSON)",
        response_model=Receipt,
        responses={
            401: {"model": Problem, "description": "Missing or unknown API key."},
            403: {"model": Problem, "description": "The key is not the channel's."},
            413: {"model": Problem, "description": f"Body over {MAX_MESSAGE_BYTES} bytes."},
            422: {"model": Rejection, "description": "Rejected; every reason listed."},
            429: {"model": Problem, "description": "Rate limit of the key; see Retry-After."},
            503: {"model": Problem, "description": "Kafka did not acknowledge; retry."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/RawSubmission"},
                        "example": _SAMPLE,
                    }
                },
            }
        },
    )
    async def submit(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Any:
        """Validate a submission; answer once Kafka acknowledged the accepted/rejected event."""
        key = bearer.credentials if bearer is not None else api_key
        channel = keys.channel_for(key) if key else None
        if key is None or channel is None:
            return _problem(401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
        retry_after = await _retry_after(limiter, rate, hash_key(key))
        if retry_after is not None:
            return _problem(429, "rate limit exceeded", {"Retry-After": str(retry_after)})
        raw = await read_limited(request, MAX_MESSAGE_BYTES)
        if raw is None:
            return _problem(413, f"the body is larger than {MAX_MESSAGE_BYTES} bytes")

        now = datetime.now(UTC)
        outcome = outcome_of(
            raw,
            channels=channels,
            consultations=consultations,
            now=now,
            door="http",
            source=None,
            producer=producer,
            to=to,
        )
        if _claimed_channel(outcome.result) not in (None, channel):
            return _problem(403, "this API key may only submit for its own channel")
        if not await _stored(broker, outcome.outgoing, publish_timeout):
            headers = {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
            return _problem(503, "the submission could not be stored; retry", headers)
        metrics.count(outcome.result, door="http", channels=channels)
        return _answer(outcome.result)

    return routes


async def _retry_after(
    limiter: MovingWindowRateLimiter, rate: RateLimitItem, key_id: str
) -> int | None:
    """Count a request against the key's window; return the seconds to wait when over it."""
    if await limiter.hit(rate, key_id):
        return None
    stats = await limiter.get_window_stats(rate, key_id)
    return max(1, math.ceil(stats.reset_time - time.time()))


def _claimed_channel(result: Accepted | Rejected) -> str | None:
    return result.submission.channel if isinstance(result, Accepted) else result.channel


async def _stored(broker: KafkaBroker, outgoing: Outgoing, within: float) -> bool:
    """Publish and wait for Kafka's ack; False when Kafka is unreachable or too slow."""
    try:
        async with asyncio.timeout(within):
            await produce_all(broker, [outgoing])
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("HTTP submission not acknowledged by Kafka", error=type(exc).__name__)
        return False
    return True


def _answer(result: Accepted | Rejected) -> Receipt | JSONResponse:
    if isinstance(result, Accepted):
        submission = result.submission
        return Receipt(submission_id=submission.submission_id, reference=submission.reference)
    log.info("submission rejected", submission_id=result.submission_id, channel=result.channel)
    rejection = Rejection(
        submission_id=result.submission_id, reference=result.reference, reasons=result.reasons
    )
    return JSONResponse(rejection.model_dump(mode="json"), status_code=422)


async def read_limited(request: Request, limit: int) -> bytes | None:
    """Return the body, or None as soon as it (declared or streamed) exceeds `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def document_request_body(app: FastAPI) -> None:
    """Add RawSubmission (and its parts) to the OpenAPI components the route refers to."""
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build_schema()
        raw = RawSubmission.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(raw.pop("$defs", {}))
        components["RawSubmission"] = raw
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
