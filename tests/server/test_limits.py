"""Server caps on search budgets (400 naming the field and the cap), the body size limit, and
schema caps that every engine serves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from search.methods.sampling import WHOLE_ANSWER_TOKENS
from server.args import ServerArgs
from server.caps import capped_defaults
from server.engines.base import ServingEngine
from server.openai.completions_protocol import CompletionRequest
from server.openai.protocol import SearchOptions
from tests.conftest import TINY_SEARCH, LiveServer
from tests.waiting import PATIENCE

MESSAGES = [{"role": "user", "content": "Tell me about the sea."}]


@pytest.fixture(scope="module")
def capped(engine: ServingEngine) -> Iterator[str]:
    args = ServerArgs(
        max_iterations=2,
        max_branching=2,
        max_search_tokens=5000,
        max_search_seconds=1.5,
        max_request_bytes=4096,
    )
    with LiveServer(engine, args) as live:
        yield live.url


@pytest.mark.parametrize(
    ("search", "param", "cap"),
    [
        ({"iterations": 3}, "search.iterations", "2"),
        ({"branching": 8}, "search.branching", "2"),
        ({"max_search_tokens": 5001}, "search.max_search_tokens", "5000"),
        ({"max_seconds": 60}, "search.max_seconds", "1.5"),
    ],
)
def test_budgets_over_a_cap_are_refused_by_name(
    capped: str, model_name: str, search: dict[str, object], param: str, cap: str
) -> None:
    r = httpx.post(
        f"{capped}/v1/chat/completions",
        json={
            "model": model_name,
            "messages": MESSAGES,
            "search": search,
        },
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and error["code"] == "over_server_cap"
    assert cap in error["message"]


def test_the_time_cap_is_the_default_deadline(capped: str, model_name: str) -> None:
    long = {**TINY_SEARCH, "rollout_tokens": 400, "step_tokens": 32}
    r = httpx.post(
        f"{capped}/v1/chat/completions",
        timeout=PATIENCE,
        json={
            "model": model_name,
            "messages": MESSAGES,
            "max_tokens": 400,
            "search": long,
        },
    )
    assert r.status_code == 200
    assert r.json()["search"]["ended_by"] == "max_seconds"  # the cap, which it never named


def test_a_body_over_the_limit_gets_413(capped: str, model_name: str) -> None:
    huge = [{"role": "user", "content": "x" * 10_000}]
    r = httpx.post(f"{capped}/v1/chat/completions", json={"model": model_name, "messages": huge})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    r = httpx.post(
        f"{capped}/v1/chat/completions",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    ok = httpx.post(
        f"{capped}/v1/chat/completions",
        json={
            "model": model_name,
            "messages": MESSAGES,
            "max_tokens": 4,
            "search": {"method": "none"},
        },
    )
    assert ok.status_code == 200


def test_the_server_defaults_are_brought_within_its_caps() -> None:
    args = ServerArgs(
        max_iterations=2, max_search_seconds=3, search_defaults=SearchOptions(iterations=9)
    )
    defaults = capped_defaults(args)
    assert (defaults.iterations, defaults.max_seconds, defaults.branching) == (2, 3, 2)


def test_a_deadline_returns_the_best_answer_so_far(client: openai.OpenAI, model_name: str) -> None:
    # a search no machine finishes, and a deadline long enough for a busy one to find a rollout
    # (on 2 cores under heavy load, the first expansion took 14 s)
    search = {"method": "mcts", "granularity": "mini_step", "step_tokens": 8, "rollout_tokens": 16}
    search["iterations"] = 10_000
    r = client.chat.completions.create(
        model=model_name,
        messages=MESSAGES,
        seed=1,
        extra_body={"search": search, "timeout": 30},  # no token bound: the deadline ends it
    )
    assert r.choices[0].finish_reason == "length"  # OpenAI's values only
    assert (r.model_extra or {})["search"]["ended_by"] == "max_seconds"
    assert r.choices[0].message.content  # the best rollout found before the deadline


def test_a_timeout_over_the_cap_is_refused(capped: str, model_name: str) -> None:
    r = httpx.post(
        f"{capped}/v1/chat/completions",
        json={
            "model": model_name,
            "messages": MESSAGES,
            "timeout": 5,
        },
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "timeout"


def schema_cap(model: type[BaseModel], field: str) -> int:
    """The largest value the request schema accepts for ``field``."""
    return int(model.model_json_schema()["properties"][field]["maximum"])


@pytest.fixture(scope="module", params=["llamacpp", "transformers", "upstream"])
def any_engine(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A server on each engine CI runs: its URL and model name."""
    fixture = {"llamacpp": "engine", "upstream": "upstream_engine"}.get(
        request.param, "transformers_engine"
    )
    engine: ServingEngine = request.getfixturevalue(fixture)
    with LiveServer(engine) as live:
        yield live.url, engine.model_name


# (the field as a client names it, the schema field, the rest of the search)
AT_THE_CAP = [
    ("search.samples", "samples", {"method": "best_of_n"}),
    (
        "search.branching",
        "branching",
        {"granularity": "mini_step", "step_tokens": 1, "rollout_tokens": 1, "iterations": 1},
    ),
    ("search.beam_width", "beam_width", {"method": "beam", "granularity": "mini_step"}),
]


@pytest.mark.parametrize(("param", "field", "search"), AT_THE_CAP)
def test_the_largest_search_value_the_schema_accepts_is_served(
    any_engine: tuple[str, str], param: str, field: str, search: dict[str, Any]
) -> None:
    url, model = any_engine
    cap = schema_cap(SearchOptions, field)
    body = {"model": model, "messages": MESSAGES, "max_tokens": 2, "search": search}
    if field == "samples":  # a budget with room for every whole answer: one wave of them all
        body = {"model": model, "messages": MESSAGES, "stop": [" ", "\n", ",", "."]}
        search = {**search, "max_search_tokens": cap * WHOLE_ANSWER_TOKENS}
    served = httpx.post(
        f"{url}/v1/chat/completions",
        json={**body, "search": {**search, field: cap}},
        timeout=300,
    )
    assert served.status_code == 200, served.text
    past = httpx.post(
        f"{url}/v1/chat/completions", json={**body, "search": {**search, field: cap + 1}}
    )
    assert past.status_code == 400 and past.json()["error"]["param"] == param


def test_the_largest_n_the_schema_accepts_is_served(any_engine: tuple[str, str]) -> None:
    url, model = any_engine
    cap = schema_cap(CompletionRequest, "n")
    body = {"model": model, "prompt": "The sea is", "max_tokens": 2}
    served = httpx.post(f"{url}/v1/completions", json={**body, "n": cap}, timeout=300)
    assert served.status_code == 200, served.text
    assert len(served.json()["choices"]) == cap
    past = httpx.post(f"{url}/v1/completions", json={**body, "n": cap + 1})
    assert past.status_code == 400 and past.json()["error"]["param"] == "n"
