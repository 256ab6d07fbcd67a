"""A client that goes away cancels its search and frees the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.args import ServerArgs
from server.engines.base import ServingEngine
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
STORY = "Write a long story about a lighthouse."
BODY = {"messages": [{"role": "user", "content": STORY}]}
# each route that searches, with the body that asks it for the story
ROUTES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": BODY,
    "/v1/responses": {"input": STORY},
}
CANCELLED = 'ponder_requests_total{method="mcts",status="499"}'  # a search its client left
KEY = "disconnect-key"


def busy(engine: ServingEngine) -> bool:
    return engine.stats.requests_in_flight > 0


def wait_until_cancelled(url: str, engine: ServingEngine, before: float) -> None:
    """The server counts the search as cancelled (not finished), then the engine is idle."""
    wait_for(lambda: metric(url, CANCELLED) == before + 1, "the search to be cancelled")
    wait_for(lambda: not busy(engine), "the engine to let go of the search")


@pytest.fixture(scope="module")
def guarded(engine: ServingEngine) -> Iterator[LiveServer]:
    """A server that asks for an API key: its key check sits between the client and the route."""
    with LiveServer(engine, ServerArgs(api_keys=[KEY])) as live:
        yield live


@pytest.fixture(params=["open", "with_api_keys"])
def live(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """The URL of a server and the headers it needs: one without keys, one with."""
    if request.param == "open":
        return request.getfixturevalue("server").url, {}
    return request.getfixturevalue("guarded").url, {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("route", ROUTES)
def test_streaming_disconnect_cancels_the_search(
    live: tuple[str, dict[str, str]], engine: ServingEngine, model_name: str, route: str
) -> None:
    url, headers = live
    body = {**ROUTES[route], "model": model_name, "stream": True, "search": LONG_SEARCH}
    before = metric(url, CANCELLED)
    with (
        httpx.Client(base_url=url, timeout=PATIENCE, headers=headers) as c,
        c.stream("POST", route, json=body) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()  # kept alive: dropping the iterator closes the response
        assert next(lines)  # the first frame (chat's role chunk, response.created): it runs
        wait_for(lambda: busy(engine), "the search to reach the engine")
    wait_until_cancelled(url, engine, before)


@pytest.mark.parametrize("route", ROUTES)
def test_non_streaming_disconnect_cancels_the_search(
    live: tuple[str, dict[str, str]], engine: ServingEngine, model_name: str, route: str
) -> None:
    url, headers = live
    body = {**ROUTES[route], "model": model_name, "search": LONG_SEARCH}
    before = metric(url, CANCELLED)

    async def leave_midway() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=PATIENCE, headers=headers) as c:
            call = asyncio.ensure_future(c.post(route, json=body))
            await until(lambda: busy(engine), "the search to reach the engine")
            assert not call.done(), "the long search answered before its client left"
            call.cancel()  # the client goes: its connection is closed
            await asyncio.gather(call, return_exceptions=True)

    asyncio.run(leave_midway())
    wait_until_cancelled(url, engine, before)


def test_a_client_that_leaves_cancels_all_n_searches(
    server: LiveServer, engine: ServingEngine, model_name: str
) -> None:
    body = {**BODY, "model": model_name, "stream": True, "n": 3, "search": LONG_SEARCH}
    before = metric(server.url, CANCELLED)
    with (
        httpx.Client(base_url=server.url, timeout=PATIENCE) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
        in_flight = engine.stats
        wait_for(lambda: in_flight.requests_in_flight == 3, "all three searches to run")
    wait_until_cancelled(server.url, engine, before)
