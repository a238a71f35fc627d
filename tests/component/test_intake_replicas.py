"""The HTTP door's rate limit holds across intake replicas: each admits its share of the limit.

Two intake apps (two replicas, each with its own in-memory counter and TestKafkaBroker) behind
an imagined round-robin balancer: together they admit exactly the limit, not the limit twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import orjson
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.intake.apikeys import hash_key
from services.intake.app import build
from services.intake.settings import IntakeSettings

KEY = "replica-test-key-1"
SUBMISSION = orjson.dumps(
    {
        "channel": "istitlaa",
        "channel_ref": "IST-R-1",
        "kind": "opinion",
        "body": "رأي في المادة الثالثة.",
        "submitted_at": "2026-11-25T10:00:00+03:00",
    }
)


async def _replicas(count: int, **settings: object) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            app = build(
                IntakeSettings(
                    environment="test",
                    api_keys={"istitlaa": (hash_key(KEY),)},
                    **settings,  # type: ignore[arg-type]
                )
            )
            broker: KafkaBroker = app.state.broker
            await stack.enter_async_context(TestKafkaBroker(broker))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://intake")
            clients.append(await stack.enter_async_context(client))
        yield clients


async def _round_robin(clients: list[httpx.AsyncClient], requests: int) -> Counter[int]:
    codes: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {KEY}"}
    for i in range(requests):
        answer = await clients[i % len(clients)].post(
            "/v1/submissions", content=SUBMISSION, headers=headers
        )
        codes[answer.status_code] += 1
    return codes


@pytest.mark.parametrize(("replicas", "admitted"), [(2, 10), (1, 20)])
async def test_two_replicas_admit_the_limit_together_only_when_told_they_are_two(
    replicas: int, admitted: int
) -> None:
    async for clients in _replicas(2, rate_limit="10/minute", replicas=replicas):
        codes = await _round_robin(clients, 40)
        assert codes == {202: admitted, 429: 40 - admitted}
