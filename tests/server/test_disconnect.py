"""A client that goes away cancels its search and frees the engine."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from server.args import ServerArgs
from server.engines.base import ServingEngine
from tests.conftest import LiveServer

LONG_SEARCH = {
    "method": "mcts",
    "granularity": "mini_step",
    "step_tokens": 32,
    "iterations": 50,
    "branching": 4,
    "rollout_tokens": 512,
}
BODY = {"messages": [{"role": "user", "content": "Write a long story about a lighthouse."}]}


def wait_until_idle(engine: ServingEngine, seconds: float) -> float:
    started = time.monotonic()
    while engine.stats.requests_in_flight and time.monotonic() - started < seconds:
        time.sleep(0.02)
    return time.monotonic() - started


def wait_until_busy(engine: ServingEngine) -> None:
    deadline = time.monotonic() + 30
    while not engine.stats.requests_in_flight:
        assert time.monotonic() < deadline, "the search never reached the engine"
        time.sleep(0.02)


KEY = "disconnect-key"


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


def test_streaming_disconnect_cancels_the_search(
    live: tuple[str, dict[str, str]], engine: ServingEngine, model_name: str
) -> None:
    base, headers = live
    url = f"{base}/v1/chat/completions"
    body = {**BODY, "model": model_name, "stream": True, "search": LONG_SEARCH}
    with (
        httpx.Client(timeout=60, headers=headers) as c,
        c.stream("POST", url, json=body) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()  # kept alive: dropping the iterator closes the response
        assert next(lines).startswith("data: ")  # the role chunk: the search is running
        wait_until_busy(engine)
    # well before the long search could have ended (minutes), its engine calls are gone
    wait_until_idle(engine, 60)
    assert engine.stats.requests_in_flight == 0


def test_non_streaming_disconnect_cancels_the_search(
    live: tuple[str, dict[str, str]], engine: ServingEngine, model_name: str
) -> None:
    base, headers = live
    url = f"{base}/v1/chat/completions"
    body = {**BODY, "model": model_name, "search": LONG_SEARCH}
    with httpx.Client(timeout=2, headers=headers) as c:
        try:
            c.post(url, json=body)
        except httpx.ReadTimeout:
            pass
        else:
            raise AssertionError("the long search answered within 2 s")
    # well before the long search could have ended (minutes), its engine calls are gone
    wait_until_idle(engine, 60)
    assert engine.stats.requests_in_flight == 0
