"""A client that goes away cancels its search and frees the engine."""

from __future__ import annotations

import asyncio

import httpx

from server.engines import ServingEngine
from tests.conftest import LiveServer
from tests.waiting import PATIENCE, metric, until, wait_for

LONG_SEARCH = {
    "method": "mcts",
    "granularity": "mini_step",
    "step_tokens": 32,
    "iterations": 50,
    "branching": 4,
    "rollout_tokens": 512,
}
BODY = {"messages": [{"role": "user", "content": "Write a long story about a lighthouse."}]}
CANCELLED = 'ponder_requests_total{method="mcts",status="499"}'  # a search its client left


def busy(engine: ServingEngine) -> bool:
    return engine.stats.requests_in_flight > 0


def wait_until_cancelled(server: LiveServer, engine: ServingEngine, before: float) -> None:
    """The server counts the search as cancelled (not finished), then the engine is idle."""
    wait_for(lambda: metric(server.url, CANCELLED) == before + 1, "the search to be cancelled")
    wait_for(lambda: not busy(engine), "the engine to let go of the search")


def test_streaming_disconnect_cancels_the_search(
    server: LiveServer, engine: ServingEngine, model_name: str
) -> None:
    body = {**BODY, "model": model_name, "stream": True, "search": LONG_SEARCH}
    before = metric(server.url, CANCELLED)
    with (
        httpx.Client(base_url=server.url, timeout=PATIENCE) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()  # kept alive: dropping the iterator closes the response
        assert next(lines).startswith("data: ")  # the role chunk: the search is running
        wait_for(lambda: busy(engine), "the search to reach the engine")
    wait_until_cancelled(server, engine, before)


def test_non_streaming_disconnect_cancels_the_search(
    server: LiveServer, engine: ServingEngine, model_name: str
) -> None:
    body = {**BODY, "model": model_name, "search": LONG_SEARCH}
    before = metric(server.url, CANCELLED)

    async def leave_midway() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=PATIENCE) as c:
            call = asyncio.ensure_future(c.post("/v1/chat/completions", json=body))
            await until(lambda: busy(engine), "the search to reach the engine")
            assert not call.done(), "the long search answered before its client left"
            call.cancel()  # the client goes: its connection is closed
            await asyncio.gather(call, return_exceptions=True)

    asyncio.run(leave_midway())
    wait_until_cancelled(server, engine, before)
