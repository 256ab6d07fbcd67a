"""A client that goes away cancels its search and frees the engine."""

from __future__ import annotations

import time

import httpx

from server.engines.base import ServingEngine

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


def test_streaming_disconnect_cancels_the_search(
    server: object, engine: ServingEngine, model_name: str
) -> None:
    url = f"{server.url}/v1/chat/completions"  # type: ignore[attr-defined]
    body = {**BODY, "model": model_name, "stream": True, "search": LONG_SEARCH}
    with httpx.Client(timeout=60) as c, c.stream("POST", url, json=body) as r:
        assert r.status_code == 200
        lines = r.iter_lines()  # kept alive: dropping the iterator closes the response
        assert next(lines).startswith("data: ")  # the role chunk: the search is running
        wait_until_busy(engine)
    assert wait_until_idle(engine, 5) < 1.5
    assert engine.stats.requests_in_flight == 0


def test_non_streaming_disconnect_cancels_the_search(
    server: object, engine: ServingEngine, model_name: str
) -> None:
    url = f"{server.url}/v1/chat/completions"  # type: ignore[attr-defined]
    body = {**BODY, "model": model_name, "search": LONG_SEARCH}
    with httpx.Client(timeout=2) as c:
        try:
            c.post(url, json=body)
        except httpx.ReadTimeout:
            pass
        else:
            raise AssertionError("the long search answered within 2 s")
    assert wait_until_idle(engine, 5) < 1.5
    assert engine.stats.requests_in_flight == 0
