"""The HTTP side every service shares: the probes, `/metrics`, the contract and the lifespan.

Each service is one FastAPI app: the broker starts and stops with it, so one uvicorn process
serves the Kafka consumers, the metrics and any API of the service.

Probes (docs/probes.md): `/health/live` is the process and its consume loops (never a
dependency: a restart does not fix an outage), `/health/ready` (= `/health`) is the dependencies,
`/health/startup` is start-up finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse
from faststream.kafka import KafkaBroker
from faststream.specification import get_asyncapi_html
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from shared import contract, liveness
from shared.logging import get_logger

Check = Callable[[], Awaitable[bool]]
Hook = Callable[[], Awaitable[None]]

log = get_logger(__name__)

CHECK_TIMEOUT_SECONDS = 2.5
"""A dependency that has not answered by then counts as down (the probe's own timeout is 3 s)."""


def create_app(
    *,
    service: str,
    version: str,
    broker: KafkaBroker,
    checks: Mapping[str, Check] | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
    after_start: Sequence[Hook] = (),
    description: str = "",
    liveness_limit_seconds: float | None = None,
) -> FastAPI:
    """Return the service's FastAPI app, with the broker's life tied to the app's.

    `after_start` hooks run once the broker is up. At shutdown `on_stop` hooks run first, while
    the broker can still produce; then the broker stops (the batch in hand gets
    `KafkaSettings.graceful_seconds`); then `on_shutdown`. `liveness_limit_seconds` is how
    long a consume loop may go without polling before `/health/live` fails (default: the
    consumer's max.poll.interval).
    """
    started, stopping = asyncio.Event(), asyncio.Event()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stopping.clear()
        for hook in on_startup:
            await hook()
        await broker.start()
        for hook in after_start:
            await hook()
        started.set()
        log.info("service started", version=version)
        try:
            yield
        finally:
            started.clear()
            # The consumers stop on purpose now: liveness must not kill the graceful stop.
            stopping.set()
            for hook in on_stop:
                await hook()
            await broker.stop()
            for hook in on_shutdown:
                await hook()
            log.info("service stopped")

    app = FastAPI(
        title=f"Sada {service}", version=version, description=description, lifespan=lifespan
    )
    all_checks: dict[str, Check] = {"kafka": lambda: broker.ping(timeout=2.0), **(checks or {})}

    @app.get("/health", tags=["operations"], summary="Readiness: dependencies reachable")
    @app.get("/health/ready", tags=["operations"], summary="Readiness: dependencies reachable")
    async def health(response: Response) -> dict[str, object]:
        names = list(all_checks)
        results = await asyncio.gather(*(_bounded(all_checks[name]) for name in names))
        status = dict(zip(names, results, strict=True))
        healthy = all(results)
        response.status_code = 200 if healthy else 503
        return {"status": "ok" if healthy else "degraded", "service": service, "checks": status}

    @app.get("/health/live", tags=["operations"], summary="Liveness: consume loops polling")
    async def live(response: Response) -> dict[str, object]:
        if stopping.is_set():
            return {"status": "stopping", "service": service, "loops": {}}
        alive, loops = liveness.verdict(
            liveness.loop_states(broker, limit_seconds=liveness_limit_seconds)
        )
        response.status_code = 200 if alive else 503
        return {"status": "alive" if alive else "stalled", "service": service, "loops": loops}

    @app.get("/health/startup", tags=["operations"], summary="Start-up finished")
    async def startup(response: Response) -> dict[str, object]:
        done = started.is_set()
        response.status_code = 200 if done else 503
        return {"status": "started" if done else "starting", "service": service}

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # The Kafka contract (docs/asyncapi.yaml) from every service, beside FastAPI's `/docs`.
    @app.get("/asyncapi", include_in_schema=False)
    async def asyncapi_page() -> HTMLResponse:
        page = get_asyncapi_html(contract.document(version), try_it_out_path=None)
        return HTMLResponse(page)

    @app.get("/asyncapi.yaml", include_in_schema=False)
    async def asyncapi_yaml() -> Response:
        return Response(contract.document(version).to_yaml(), media_type="application/yaml")

    return app


async def _bounded(check: Check) -> bool:
    """Run `check`; a check that fails or does not answer in time counts as down."""
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception:
        return False


def serve(app: FastAPI, *, host: str, port: int) -> None:
    """Run `app` with uvicorn; logging is already configured by the service."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
