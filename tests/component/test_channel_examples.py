"""The contract documents as the services serve them, and the README's curl example run.

The apps are built from the local defaults (as `python -m deploy.contracts` builds them) and
never started: httpx's ASGI transport runs no lifespan, so no broker or database connects.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from deploy import contracts
from shared import topics
from shared.events import SubmissionAccepted
from tests import channel_examples as examples


def _router() -> FastAPI:
    from services.router.app import build
    from services.router.settings import RouterSettings

    return build(RouterSettings())


def _notifier() -> FastAPI:
    from services.notifier.app import build
    from services.notifier.settings import NotifierSettings

    return build(NotifierSettings())


BUILDERS: dict[str, Callable[[], FastAPI]] = {
    **contracts.APIS,
    "router": _router,
    "notifier": _notifier,
}


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get(path)


@pytest.mark.parametrize("service", sorted(BUILDERS))
async def test_every_service_serves_the_committed_asyncapi_document(service: str) -> None:
    with contracts.local_defaults():
        app = BUILDERS[service]()
    document = await get(app, "/asyncapi.yaml")
    assert document.status_code == 200
    assert document.text == contracts.ASYNCAPI.read_text(encoding="utf-8")
    page = await get(app, "/asyncapi")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "AsyncApiStandalone.render" in page.text
    assert topics.SUBMISSIONS in page.text


@pytest.mark.parametrize("service", sorted(contracts.APIS))
async def test_the_doors_serve_the_committed_openapi_document_and_docs(service: str) -> None:
    with contracts.local_defaults():
        app = contracts.APIS[service]()
    served = await get(app, "/openapi.json")
    committed = json.loads(contracts.openapi_path(service).read_text(encoding="utf-8"))
    assert served.json() == committed
    docs = await get(app, "/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text


@pytest.fixture
async def intake() -> AsyncIterator[tuple[httpx.AsyncClient, list[SubmissionAccepted]]]:
    with contracts.local_defaults():  # the demo keys the README's example uses
        app = contracts.APIS["intake"]()
    broker: KafkaBroker = app.state.broker
    seen: list[SubmissionAccepted] = []

    @broker.subscriber(topics.ACCEPTED, group_id="test-capture")
    async def on_accepted(_body: object, msg: KafkaMessage) -> None:
        seen.append(SubmissionAccepted.model_validate_json(msg.body))

    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001")
    async with TestKafkaBroker(broker, connect_only=False), client:
        yield client, seen


async def test_the_curl_example_is_accepted_by_intake_with_the_answer_the_readme_shows(
    intake: tuple[httpx.AsyncClient, list[SubmissionAccepted]],
) -> None:
    client, seen = intake
    request = examples.curl()
    response = await client.request(
        request.method, request.path, headers=request.headers, content=request.body
    )
    assert response.status_code == 202, response.text
    assert response.json() == examples.http_answer()
    (event,) = seen
    assert event.submission_id == examples.http_answer()["submission_id"]
    assert event.payload.door == "http"
