"""Admission control: bounded concurrency, a bounded queue, 429 with Retry-After beyond it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from server.args import ServerArgs
from server.engines.base import ServingEngine
from tests.conftest import LiveServer
from tests.server.test_disconnect import BODY, LONG_SEARCH
from tests.waiting import PATIENCE, metric, until, wait_for


@pytest.fixture(scope="module")
def narrow(engine: ServingEngine) -> Iterator[str]:
    args = ServerArgs(max_concurrent_searches=1, max_queued_searches=1)
    with LiveServer(engine, args) as live:
        yield live.url


def test_a_full_queue_answers_429_and_slots_come_back(
    narrow: str, model_name: str, engine: ServingEngine
) -> None:
    body = {**BODY, "model": model_name, "stream": True, "search": LONG_SEARCH}

    def gauge(name: str) -> float:
        return metric(narrow, name)

    async def scenario() -> tuple[int, str | None, int]:
        async with httpx.AsyncClient(base_url=narrow, timeout=PATIENCE) as client:
            running = asyncio.create_task(_hold(client, body))  # takes the one slot
            await until(lambda: gauge("ponder_requests_in_flight") == 1, "the running search")
            queued = asyncio.create_task(_hold(client, body))  # waits in the one queue place
            await until(lambda: gauge("ponder_requests_queued") == 1, "the waiting search")
            refused = await client.post("/v1/chat/completions", json=body)
            running.cancel()
            queued.cancel()
            await asyncio.gather(running, queued, return_exceptions=True)
            return (
                refused.status_code,
                refused.headers.get("retry-after"),
                refused.json()["error"]["type"] == "rate_limit_error",
            )

    status, retry_after, typed = asyncio.run(scenario())
    assert (status, retry_after, typed) == (429, "1", True)
    wait_for(lambda: engine.stats.requests_in_flight == 0, "the engine to be idle")
    wait_for(lambda: metric(narrow, "ponder_requests_in_flight") == 0, "the slot to come back")
    assert metric(narrow, 'ponder_rejected_total{reason="queue_full"}') == 1
    assert metric(narrow, "ponder_queue_seconds_count") >= 1
    # both slots were given back: a new request runs at once
    r = httpx.post(
        f"{narrow}/v1/chat/completions",
        timeout=PATIENCE,
        json={
            "model": model_name,
            "messages": BODY["messages"],
            "max_tokens": 4,
            "search": {"method": "none"},
        },
    )
    assert r.status_code == 200


async def _hold(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for _ in response.aiter_lines():
            pass
