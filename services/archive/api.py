"""The read-only audit API: submissions, a timeline, verify, export, and campaigns.

Each bearer token names a client with scopes (`clients.py`). Every read is answered only after
its `archive.accessed` event is stored (`access.py`): client, endpoint, submission, parameters.
Event contents (a timeline's events, the export's lines) carry personal data only for clients
with the `personal_data` scope; others get them redacted (`personal_data.py`). Listings and
verification carry no personal data at all, except a campaign's representative text, served
only with that scope.

Every query parameter is a typed value (an enum, an identifier matching a pattern, an aware
datetime, a bounded integer), so nothing a caller sends can become a MongoDB operator. Errors
never echo the caller's input, which might be personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, Field

from services.archive import audit, campaigns, reads, report_page, reports
from services.archive.access import Access, AccessLog, AccessLogUnavailableError
from services.archive.chain import BreakKind
from services.archive.clients import READ, ApiClient, ApiClients
from services.archive.envelope import PERSONAL
from services.archive.personal_data import redact
from services.archive.privacy import KeyVault
from services.archive.report_model import ConsultationReport, UnitReport
from services.archive.settings import ArchiveSettings
from services.archive.status import RecordType, Status
from services.archive.store import ArchiveStore, SnapshotQuery
from shared.consultations import Consultation
from shared.directory import Unit, load_units
from shared.models import Kind

IDENTIFIER = r"^[a-z0-9][a-z0-9_-]{0,63}$"
KEY = (
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[Ss][Aa][Dd][Aa]-[0-9A-Za-z]{4}-[0-9A-Za-z]{4})$"
)
CURSOR = r"^[A-Za-z0-9_-]{1,400}$"
LEGISLATION_REF = r"^[^\x00-\x1f\x7f]{1,64}$"

SubmissionKey = Annotated[
    str,
    Path(
        pattern=KEY,
        description="A submission id (UUID) or its reference (e.g. `SADA-7K3M-Q9XD`).",
        examples=["SADA-7K3M-Q9XD"],
    ),
]


class SubmissionView(BaseModel):
    """A submission's current state (its highest status so far)."""

    submission_id: str = Field(description="Submission id, or the Kafka position id of a receipt.")
    reference: str | None = Field(default=None, description="The human reference code.")
    record: RecordType = Field(description="submission, receipt or deadletter.")
    status: Status = Field(description="Current status; never moves backwards.")
    unit: str | None = Field(default=None, description="Unit it was routed to.")
    rule_id: str | None = Field(default=None, description="Routing rule that matched.")
    channel: str | None = None
    kind: str | None = None
    language: str | None = None
    receipt_id: str | None = Field(default=None, description="Chain id of the raw receipt.")
    created_at: datetime = Field(description="When the archive first saw it (listing order).")
    first_event_at: datetime | None = Field(default=None, description="Earliest event time.")
    status_at: datetime | None = Field(default=None, description="When the status was reached.")
    updated_at: datetime | None = Field(default=None, description="When the status was archived.")


class EventView(BaseModel):
    """One archived event, on its chain."""

    event_id: str
    submission_id: str = Field(description="The chain the event is on.")
    seq: int = Field(description="Position on the chain, from 0.")
    event_type: str
    topic: str
    partition: int
    offset: int
    occurred_at: datetime
    archived_at: datetime
    prev_hash: str
    hash: str
    event: dict[str, Any] | None = Field(
        description="The event as archived (raw receipts carry `raw` as a string)."
    )
    redacted: bool = Field(
        default=False,
        description="True when personal data in `event` was replaced by `[redacted]` (the "
        "client has no `personal_data` scope); `hash` is over the event as archived.",
    )


class SubmissionDetail(BaseModel):
    """A submission with its full event timeline (its raw receipt included)."""

    submission: SubmissionView
    timeline: list[EventView]


class SubmissionPage(BaseModel):
    """One page of a listing."""

    items: list[SubmissionView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class CampaignMember(BaseModel):
    """A member of a campaign, by its identifiers."""

    submission_id: str
    reference: str = Field(description="The human reference code.")


class Representative(CampaignMember):
    """The member that stands for a campaign: its first (docs/campaigns.md).

    Its text is the one every near-identical member was compared with.
    """

    subject: str | None = Field(
        default=None, description="Its subject as submitted; only with `personal_data`."
    )
    body: str | None = Field(
        default=None, description="Its text as submitted; only with `personal_data`."
    )
    redacted: bool = Field(
        description="True when the client has no `personal_data` scope: the text is left out "
        "and the reference stands for it."
    )


class CampaignView(BaseModel):
    """A campaign: near-identical submissions of one scope, as the archive has heard of it."""

    campaign_id: str = Field(description="UUIDv5 of the scope and the first member's id.")
    scope: str = Field(description="`legislation:<ref>`, else `unit:<unit>`.")
    legislation_ref: str | None = Field(default=None, description="The draft law, if any.")
    unit: str | None = Field(default=None, description="The unit (of a `unit:` scope).")
    size: int = Field(
        description="Members, the first included: the largest size a member's grouped event "
        "reported (each reports the size when it joined)."
    )
    first_member: CampaignMember = Field(description="The member that founded the campaign.")
    representative: Representative
    created_at: datetime | None = Field(
        default=None, description="When the archive first heard of the campaign."
    )
    last_seen_at: datetime | None = Field(
        default=None, description="When the latest member known was grouped."
    )


class CampaignPage(BaseModel):
    """One page of campaigns, largest first."""

    items: list[CampaignView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class ConsultationView(BaseModel):
    """A legislative project: registered, or a `legislation_ref` submissions carried."""

    ref: str = Field(description="The `legislation_ref`, e.g. MOJ-DRAFT-2026-003.")
    title_ar: str = Field(description="Arabic title (the ref when unregistered).")
    title_en: str = Field(description="English title (the ref when unregistered).")
    registered: bool = Field(description="Whether the registry of consultations has it.")
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    total: int = Field(description="Accepted submissions counted on it.")
    late: int = Field(description="Of which sent after `closes_at`.")
    unregistered: int = Field(description="Of which intake marked unregistered.")
    report: str = Field(description="Path of its summary of views.")


class ConsultationList(BaseModel):
    """Every registered project and every other ref seen, by ref."""

    items: list[ConsultationView]


Format = Literal["json", "html"]


class BreakView(BaseModel):
    """One broken link of a chain."""

    submission_id: str
    seq: int = Field(description="The position where the chain breaks.")
    kind: BreakKind
    detail: str
    event_id: str | None = None


class VerifyView(BaseModel):
    """The verification of one submission's chain."""

    submission_id: str
    ok: bool
    events: int
    breaks: list[BreakView]


def install(
    app: FastAPI,
    store: ArchiveStore,
    settings: ArchiveSettings,
    *,
    clients: ApiClients,
    accesses: AccessLog,
    registry: Mapping[str, Consultation] | None = None,
    units: Mapping[str, Unit] | None = None,
    keys: KeyVault | None = None,
) -> None:
    """Add the audit API and an input-free validation error handler to `app`.

    `registry` (the consultations) and `units` default to the configured files; `keys` opens
    sealed personal data for clients with the `personal_data` scope (docs/privacy.md).
    """
    app.state.token_guard = TokenGuard(clients)
    app.include_router(_router(store, settings, accesses, keys))
    app.include_router(
        _report_router(
            store,
            Accesses(accesses),
            reports.load_registry(settings.consultations_path) if registry is None else registry,
            load_units() if units is None else units,
        )
    )
    app.add_exception_handler(RequestValidationError, _validation_error)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": problems}, status_code=422)


BEARER = HTTPBearer(auto_error=False, description="An archive API token.")


class TokenGuard:
    """Lets a request through only with the token of a client that has the `read` scope."""

    def __init__(self, clients: ApiClients) -> None:
        self._clients = clients

    def caller(self, credentials: HTTPAuthorizationCredentials | None) -> ApiClient:
        """Return the caller; raise 401 without a known token, 403 without the `read` scope."""
        client = self._clients.identify(credentials.credentials) if credentials else None
        if client is None:
            raise HTTPException(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        if READ not in client.scopes:
            raise HTTPException(403, "this client has no read scope")
        return client


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> ApiClient:
    guard: TokenGuard = request.app.state.token_guard
    return guard.caller(credentials)


Caller = Annotated[ApiClient, Depends(_caller)]
"""The authenticated client of a request (the dependency every route of the API takes)."""


class Accesses:
    """Records each read through the access log; a read that cannot be recorded is a 503."""

    def __init__(self, log: AccessLog) -> None:
        self._log = log

    async def record(
        self,
        client: ApiClient,
        endpoint: str,
        *,
        status: int = 200,
        personal_data: bool = False,
        submission_id: str | None = None,
        query: Mapping[str, object] | None = None,
    ) -> None:
        """Store the access event of this read, or raise 503 (nothing is served unrecorded)."""
        access = Access(
            client=client.name,
            endpoint=endpoint,
            status=status,
            personal_data=personal_data,
            submission_id=submission_id,
            query=_query(query or {}),
        )
        try:
            await self._log.record(access)
        except AccessLogUnavailableError:
            raise HTTPException(
                503, "the read could not be recorded; retry", headers={"Retry-After": "5"}
            ) from None


def _query(values: Mapping[str, object]) -> dict[str, str]:
    """Return the given (validated) parameters as text; unset ones are left out."""
    text = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            text[name] = value.isoformat()
        else:
            text[name] = str(value.value if isinstance(value, Enum) else value)
    return text


def _router(
    store: ArchiveStore, settings: ArchiveSettings, log: AccessLog, keys: KeyVault | None
) -> APIRouter:
    accesses = Accesses(log)
    router = APIRouter(
        prefix="/v1",
        tags=["audit"],
        responses={
            401: {"description": "Missing or unknown bearer token."},
            403: {"description": "The client has no `read` scope."},
            503: {"description": "The read could not be recorded in the access log; retry."},
        },
    )

    @router.get("/submissions", summary="List submissions", response_model=SubmissionPage)
    async def list_submissions(
        client: Caller,
        record: RecordType = RecordType.SUBMISSION,
        status: Status | None = None,
        unit: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
        channel: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
        kind: Kind | None = None,
        since: Annotated[AwareDatetime | None, Query(description="created_at ≥ since")] = None,
        until: Annotated[AwareDatetime | None, Query(description="created_at < until")] = None,
        order: Literal["asc", "desc"] = "desc",
        limit: Annotated[int, Query(ge=1, le=reads.MAX_LIMIT)] = 50,
        cursor: Annotated[str | None, Query(pattern=CURSOR)] = None,
    ) -> SubmissionPage:
        """Submissions by their current state, filtered, in `created_at` order, by cursor.

        Holds no personal data (identifiers, statuses, units, channels, kinds, times).
        """
        try:
            after = reads.decode_cursor(cursor) if cursor else None
        except reads.BadCursorError:
            raise HTTPException(422, "cursor is not valid") from None
        query = SnapshotQuery(
            record=record,
            status=status,
            unit=unit,
            channel=channel,
            kind=kind.value if kind else None,
            since=since,
            until=until,
            descending=order == "desc",
        )
        page = await reads.list_submissions(store, query, after, limit)
        given: dict[str, object] = dict(
            record=record, status=status, unit=unit, channel=channel, kind=kind, since=since
        )
        given |= {"until": until, "order": order, "limit": limit, "cursor": cursor}
        await accesses.record(client, "/v1/submissions", query=given)
        return SubmissionPage(
            items=[_view(doc) for doc in page.items],
            next_cursor=reads.encode_cursor(page.next) if page.next else None,
        )

    @router.get("/submissions/{key}", summary="A submission and its timeline")
    async def get_submission(key: SubmissionKey, client: Caller) -> SubmissionDetail:
        """Return the submission's current state and every archived event about it, oldest first.

        Personal data in the events only for a client with the `personal_data` scope.
        """
        found = await reads.find_submission(store, _normal(key))
        await accesses.record(
            client,
            "/v1/submissions/{key}",
            status=200 if found else 404,
            personal_data=client.personal_data and found is not None,
            submission_id=found.chain_id if found else _normal(key),
        )
        if found is None:
            raise HTTPException(404, "no such submission")
        clear = (
            await keys.reveal(found.timeline) if keys is not None and client.personal_data else {}
        )
        timeline = [
            _event(doc, personal_data=client.personal_data, clear=clear.get(doc["_id"]))
            for doc in found.timeline
        ]
        return SubmissionDetail(submission=_view(found.state), timeline=timeline)

    @router.get("/submissions/{key}/verify", summary="Verify a submission's hash chain")
    async def verify_submission(key: SubmissionKey, client: Caller) -> VerifyView:
        """Recompute the submission's chain and list every broken link."""
        chain = _normal(key)
        if chain.startswith("SADA-"):
            chain = await store.chain_for_reference(chain) or ""
        report = await audit.verify_submission(store, chain) if chain else None
        await accesses.record(
            client,
            "/v1/submissions/{key}/verify",
            status=200 if report else 404,
            submission_id=chain or _normal(key),
        )
        if report is None:
            raise HTTPException(404, "no such submission")
        return _verify_view(report)

    @router.get(
        "/export",
        summary="Export events as JSON Lines",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-ndjson": {}}}},
    )
    async def export(
        client: Caller,
        since: Annotated[AwareDatetime, Query(description="archived_at ≥ since")],
        until: Annotated[
            AwareDatetime | None, Query(description="archived_at < until (default: now)")
        ] = None,
    ) -> StreamingResponse:
        """Every event archived in [since, until), oldest first, one JSON object per line.

        Each line's `event` is the exact text hashed: SHA-256(prev_hash + event) == hash; its
        personal data is sealed there (`[encrypted]` values and a `personal` ciphertext,
        docs/privacy.md). A client with the `personal_data` scope also gets `clear`: the event
        opened (`[erased]` where its key was destroyed). For a client without that scope, lines
        whose event holds personal data carry it redacted (`redacted: true`): their hash is
        checked by `/verify`, not by the reader.
        """
        end = until or datetime.now(UTC)
        if end <= since:
            raise HTTPException(422, "until must be after since")
        await accesses.record(
            client,
            "/v1/export",
            personal_data=client.personal_data,
            query={"since": since, "until": end},
        )
        lines = reads.export_lines(
            store,
            since,
            end,
            settings.export_page_size,
            personal_data=client.personal_data,
            keys=keys,
        )
        return StreamingResponse(lines, media_type="application/x-ndjson")

    @router.get(
        "/campaigns", summary="Campaigns of a draft law or a unit", response_model=CampaignPage
    )
    async def list_campaigns(
        client: Caller,
        legislation_ref: Annotated[
            str | None,
            Query(
                pattern=LEGISLATION_REF,
                description="The draft law's reference: its campaigns (scope "
                "`legislation:<ref>`). Give this or `unit`.",
                examples=["MOJ-DRAFT-2026-003"],
            ),
        ] = None,
        unit: Annotated[
            str | None,
            Query(
                pattern=IDENTIFIER,
                description="A unit: its campaigns of submissions without a `legislation_ref` "
                "(scope `unit:<unit>`). Give this or `legislation_ref`.",
                examples=["voice_of_customer"],
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=reads.MAX_LIMIT)] = 50,
        cursor: Annotated[str | None, Query(pattern=CURSOR)] = None,
    ) -> CampaignPage:
        """Campaigns of near-identical submissions in one scope, largest first (then by id).

        Each has its size, its first member and a representative: the first member, whose
        subject and body are included only for a client with the `personal_data` scope (others
        get its reference, `redacted: true`). A campaign's size is what its members' grouped
        events reported, so it may grow between two pages: a page is a consistent read, the
        listing as a whole is not a snapshot.
        """
        if (legislation_ref is None) == (unit is None):
            raise HTTPException(422, "give either legislation_ref or unit")
        try:
            after = campaigns.decode_cursor(cursor) if cursor else None
        except campaigns.BadCursorError:
            raise HTTPException(422, "cursor is not valid") from None
        page = await reads.list_campaigns(
            store,
            campaigns.scope_of(legislation_ref, unit),
            after,
            limit,
            personal_data=client.personal_data,
            keys=keys,
        )
        given: dict[str, object] = dict(
            legislation_ref=legislation_ref, unit=unit, limit=limit, cursor=cursor
        )
        await accesses.record(
            client, "/v1/campaigns", personal_data=client.personal_data, query=given
        )
        return CampaignPage(
            items=[
                _campaign(doc, page.texts, personal_data=client.personal_data) for doc in page.items
            ],
            next_cursor=campaigns.encode_cursor(page.next) if page.next else None,
        )

    return router


def _wants_html(request: Request, given: Format | None) -> bool:
    """Return whether to answer HTML: `format=html`, or a browser's `Accept: text/html`."""
    if given is not None:
        return given == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "JSON by default; HTML on request."}
}


def _report_router(
    store: ArchiveStore,
    accesses: Accesses,
    registry: Mapping[str, Consultation],
    units: Mapping[str, Unit],
) -> APIRouter:
    router = APIRouter(
        prefix="/v1",
        tags=["summary of views"],
        responses={
            401: {"description": "Missing or unknown bearer token."},
            403: {"description": "The client has no `read` scope."},
            503: {"description": "The read could not be recorded in the access log; retry."},
        },
    )

    @router.get("/consultations", summary="Legislative projects and their counts")
    async def list_consultations(client: Caller) -> ConsultationList:
        """Every project of the registry, and every other `legislation_ref` seen, with counts.

        From the report aggregates (one small read), never from the archive's events.
        """
        found = await reports.list_consultations(store, registry)
        await accesses.record(client, "/v1/consultations")
        return ConsultationList(
            items=[
                ConsultationView(
                    ref=c.ref,
                    title_ar=c.title_ar,
                    title_en=c.title_en,
                    registered=c.registered,
                    opens_at=c.opens_at,
                    closes_at=c.closes_at,
                    total=c.total,
                    late=c.late,
                    unregistered=c.unregistered,
                    report=f"/v1/consultations/{c.ref}/report",
                )
                for c in found
            ]
        )

    @router.get(
        "/consultations/{ref}/report",
        summary="The summary of views of a project",
        response_model=ConsultationReport,
        responses=REPORT_RESPONSES,
    )
    async def consultation_report(
        request: Request,
        client: Caller,
        ref: Annotated[str, Path(pattern=LEGISLATION_REF, examples=["MOJ-DRAFT-2026-003"])],
        format: Annotated[
            Format | None,
            Query(description="`json` (default) or `html`; else by the `Accept` header."),
        ] = None,
    ) -> Response:
        """Return a project's summary of views (JSON, or HTML on request).

        Totals, late and unregistered counts, by kind, channel and day, each question's
        answers, campaigns with a representative text and every distinct comment.
        Texts are the submitters' words; no name, e-mail or phone is ever included.
        """
        report = await reports.consultation_report(store, ref, registry, now=datetime.now(UTC))
        html = _wants_html(request, format)
        await accesses.record(
            client,
            "/v1/consultations/{ref}/report",
            status=200 if report else 404,
            query={"ref": ref, "format": "html" if html else "json"},
        )
        if report is None:
            raise HTTPException(404, "no such consultation")
        if html:
            return HTMLResponse(report_page.render_consultation(report))
        return Response(report.model_dump_json(), media_type="application/json")

    @router.get(
        "/units/{unit}/report",
        summary="A unit's volume and campaigns over a period",
        response_model=UnitReport,
        responses=REPORT_RESPONSES,
    )
    async def unit_report(
        request: Request,
        client: Caller,
        unit: Annotated[str, Path(pattern=IDENTIFIER, examples=["voice_of_customer"])],
        since: Annotated[
            date, Query(alias="from", description="First day (Asia/Riyadh), inclusive.")
        ],
        until: Annotated[date, Query(alias="to", description="Last day, inclusive.")],
        format: Annotated[
            Format | None,
            Query(description="`json` (default) or `html`; else by the `Accept` header."),
        ] = None,
    ) -> Response:
        """Return a unit's volume and largest campaigns over a period (JSON, or HTML).

        Volume per day by channel, kind and topic, and the largest campaigns of the period
        (at most 366 days).
        """
        if until < since or (until - since).days >= reports.MAX_DAYS:
            raise HTTPException(422, f"from must not be after to, at most {reports.MAX_DAYS} days")
        report = await reports.unit_report(
            store, unit, since, until, names=units, now=datetime.now(UTC)
        )
        html = _wants_html(request, format)
        await accesses.record(
            client,
            "/v1/units/{unit}/report",
            query={"unit": unit, "from": since, "to": until, "format": "html" if html else "json"},
        )
        if html:
            return HTMLResponse(report_page.render_unit(report))
        return Response(report.model_dump_json(), media_type="application/json")

    return router


def _campaign(
    doc: dict[str, Any], texts: Mapping[str, campaigns.Text], *, personal_data: bool
) -> CampaignView:
    first = CampaignMember(
        submission_id=str(doc.get("first_submission_id")),
        reference=str(doc.get("first_reference")),
    )
    text = texts.get(first.submission_id) if personal_data else None
    return CampaignView(
        campaign_id=doc["_id"],
        scope=doc.get("scope", ""),
        legislation_ref=doc.get("legislation_ref"),
        unit=doc.get("unit"),
        size=doc.get("size", 0),
        first_member=first,
        representative=Representative(
            **first.model_dump(),
            subject=text.subject if text else None,
            body=text.body if text else None,
            redacted=not personal_data,
        ),
        created_at=doc.get("created_at"),
        last_seen_at=doc.get("last_seen_at"),
    )


def _verify_view(report: audit.ChainReport) -> VerifyView:
    breaks = [
        BreakView(
            submission_id=b.submission_id,
            seq=b.seq,
            kind=b.kind,
            detail=b.detail,
            event_id=b.event_id,
        )
        for b in report.breaks
    ]
    return VerifyView(
        submission_id=report.submission_id, ok=report.ok, events=report.events, breaks=breaks
    )


def _normal(key: str) -> str:
    """Return `key` in stored form: references upper case, UUIDs lower case."""
    return key.upper() if key[:5].upper() == "SADA-" else key.lower()


def _view(doc: dict[str, Any]) -> SubmissionView:
    return SubmissionView(
        submission_id=doc["submission_id"],
        reference=doc.get("reference"),
        record=doc.get("record") or RecordType.SUBMISSION,
        status=doc["status"],
        unit=doc.get("unit"),
        rule_id=doc.get("rule_id"),
        channel=doc.get("channel"),
        kind=doc.get("kind"),
        language=doc.get("language"),
        receipt_id=doc.get("receipt_id"),
        created_at=doc["created_at"],
        first_event_at=doc.get("first_event_at"),
        status_at=doc.get("status_at"),
        updated_at=doc.get("archived_at"),
    )


def _event(
    doc: dict[str, Any], *, personal_data: bool, clear: dict[str, Any] | None = None
) -> EventView:
    """Return an event's view: `clear` (its sealed personal data opened) for a scoped client."""
    try:
        event = orjson.loads(doc.get("event") or "")
    except orjson.JSONDecodeError:
        event = None  # tampered beyond JSON: `verify` says so; the timeline still shows the rest
    redacted = False
    if personal_data and clear is not None:
        event = clear
    elif not personal_data:
        if isinstance(event, dict):
            event.pop(PERSONAL, None)  # the ciphertext: of no use without scope
        event, redacted = redact(event)
    return EventView(
        event_id=doc["_id"],
        submission_id=doc["submission_id"],
        seq=doc["seq"],
        event_type=doc.get("event_type", ""),
        topic=doc.get("topic", ""),
        partition=doc.get("partition", -1),
        offset=doc.get("offset", -1),
        occurred_at=doc["occurred_at"],
        archived_at=doc["archived_at"],
        prev_hash=doc.get("prev_hash", ""),
        hash=doc.get("hash", ""),
        event=event if isinstance(event, dict) else None,
        redacted=redacted,
    )
