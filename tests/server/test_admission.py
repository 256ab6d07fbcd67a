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


@pytest.fixture(scope="module")
def two_slots(engine: ServingEngine) -> Iterator[str]:
    args = ServerArgs(max_concurrent_searches=2, max_queued_searches=1)
    with LiveServer(engine, args) as live:
        yield live.url


def test_a_completion_takes_a_slot_per_sequence(
    two_slots: str, model_name: str, engine: ServingEngine
) -> None:
    search = {**BODY, "model": model_name, "stream": True, "search": LONG_SEARCH}
    completion = {"model": model_name, "prompt": ["The sea is", "A cat"], "max_tokens": 4}

    def gauge(name: str) -> float:
        return metric(two_slots, name)

    async def scenario() -> int:
        async with httpx.AsyncClient(base_url=two_slots, timeout=PATIENCE) as client:
            running = asyncio.create_task(_hold(client, search))  # one slot of two
            await until(lambda: gauge("ponder_requests_in_flight") == 1, "the running search")
            # two prompts are two sequences: they wait for the slot the search holds
            waiting = asyncio.create_task(client.post("/v1/completions", json=completion))
            await until(lambda: gauge("ponder_requests_queued") == 1, "the waiting completion")
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            return (await waiting).status_code

    assert asyncio.run(scenario()) == 200
    wait_for(lambda: metric(two_slots, "ponder_requests_in_flight") == 0, "the slots to come back")
