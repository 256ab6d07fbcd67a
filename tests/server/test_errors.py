"""Bad input gets an OpenAI-shaped error with the right status, and the server keeps serving."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TINY_SEARCH

MESSAGES = [{"role": "user", "content": "Hi"}]


def assert_error(response: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param
    return dict(error)


def test_malformed_json(http: httpx.Client) -> None:
    r = http.post(
        "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert_error(r, 400, None)


def test_missing_messages(http: httpx.Client, model_name: str) -> None:
    assert_error(http.post("/v1/chat/completions", json={"model": model_name}), 400, "messages")


def test_unknown_model_is_404(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json={"model": "gpt-9", "messages": MESSAGES})
    error = assert_error(r, 404, "model")
    assert error["code"] == "model_not_found"


def test_unknown_alias_is_404(http: httpx.Client, model_name: str) -> None:
    r = http.post(
        "/v1/chat/completions", json={"model": f"{model_name}:magic", "messages": MESSAGES}
    )
    assert_error(r, 404, "model")


@pytest.mark.parametrize(
    ("search", "param"),
    [
        ({"method": "tree_of_thoughts"}, "search.method"),
        ({"reward": "vibes"}, "search.reward"),
        ({"samples": 0}, "search.samples"),
        ({"iterations": -1}, "search.iterations"),
        ({"branching": 0}, "search.branching"),
        ({"iterations": 10**9}, "search.iterations"),
        ({"max_search_tokens": 10**12}, "search.max_search_tokens"),
        ({"granularity": "paragraph"}, "search.granularity"),
        ({"max_seconds": -5}, "search.max_seconds"),
        (
            {"granularity": "mini_step", "step_tokens": 64, "rollout_tokens": 8},
            "search.rollout_tokens",
        ),
        ({"iterationz": 3}, "search.iterationz"),
    ],
)
def test_bad_search_options_name_the_field(
    http: httpx.Client, model_name: str, search: dict[str, Any], param: str
) -> None:
    r = http.post(
        "/v1/chat/completions", json={"model": model_name, "messages": MESSAGES, "search": search}
    )
    assert_error(r, 400, param)


def test_alias_and_body_must_agree(http: httpx.Client, model_name: str) -> None:
    r = http.post(
        "/v1/chat/completions",
        json={
            "model": f"{model_name}:none",
            "messages": MESSAGES,
            "search": {"method": "mcts"},
        },
    )
    assert_error(r, 400, "search.method")


def test_negative_max_tokens_and_bad_temperature(http: httpx.Client, model_name: str) -> None:
    base = {"model": model_name, "messages": MESSAGES}
    assert_error(
        http.post("/v1/chat/completions", json={**base, "max_tokens": -1}), 400, "max_tokens"
    )
    assert_error(
        http.post("/v1/chat/completions", json={**base, "temperature": 9}), 400, "temperature"
    )


def test_prompt_longer_than_the_context(http: httpx.Client, model_name: str) -> None:
    long = [{"role": "user", "content": "word " * 9000}]
    r = http.post("/v1/chat/completions", json={"model": model_name, "messages": long})
    error = assert_error(r, 400, "messages")
    assert "maximum context length is 8192" in error["message"]


def test_unknown_route_is_openai_shaped(http: httpx.Client) -> None:
    assert_error(http.get("/v1/nothing"), 404, None)


def test_server_keeps_serving_after_errors(http: httpx.Client, model_name: str) -> None:
    http.post(
        "/v1/chat/completions", content=b"garbage", headers={"content-type": "application/json"}
    )
    r = http.post(
        "/v1/chat/completions",
        json={
            "model": model_name,
            "messages": MESSAGES,
            "max_tokens": 8,
            "search": TINY_SEARCH,
        },
    )
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] is not None
