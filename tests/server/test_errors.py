"""Bad input gets an OpenAI-shaped error with the right status, and the server keeps serving
(and stays healthy: what the client asked wrongly never counts against the engine)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from search.methods.sampling import WHOLE_ANSWER_TOKENS
from server.engines.llamacpp.engine import LlamaCppEngine
from server.model_source import resolve
from tests.conftest import TEST_MODEL, TINY_SEARCH, LiveServer

MESSAGES = [{"role": "user", "content": "Hi"}]
HUGE = "hello world " * 625_000  # 7.5 MB: under the 8 MiB body limit, seconds to tokenize
USER_HUGE = {"role": "user", "content": HUGE}


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
        ({"voting": "ranked"}, "search.voting"),
        ({"keep": 0}, "search.keep"),
        ({"keep": 1.5}, "search.keep"),
        ({"window": 0}, "search.window"),
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


@pytest.mark.parametrize(
    ("route", "fields", "status", "param"),
    [
        (
            "chat/completions",
            {"messages": [{"role": "user", "content": "\udcff"}]},
            400,
            "messages",
        ),
        (
            "chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a\ud800"}]}]},
            400,
            "messages",
        ),
        ("completions", {"prompt": "\udcff"}, 400, "prompt"),
        ("chat/completions", {"model": "\udcff", "messages": MESSAGES}, 404, "model"),
    ],
)
def test_a_lone_surrogate_is_the_clients_error_and_the_server_keeps_serving(
    http: httpx.Client,
    model_name: str,
    route: str,
    fields: dict[str, Any],
    status: int,
    param: str,
) -> None:
    """JSON's ``\\u`` escapes can spell half a surrogate pair, which is no Unicode text: the
    tokenizer cannot read it and UTF-8 cannot encode it, so it must not reach either."""
    raw = json.dumps({"model": model_name, "max_tokens": 2, **fields}).encode()
    assert b"\\ud" in raw  # valid JSON: the escape, as any client sends it
    r = http.post(f"/v1/{route}", content=raw, headers={"content-type": "application/json"})
    assert_error(r, status, param)
    assert http.get("/health").status_code == 200
    chat = {
        "model": model_name,
        "messages": MESSAGES,
        "max_tokens": 2,
        "search": {"method": "none"},
    }
    assert http.post("/v1/chat/completions", json=chat).status_code == 200


@pytest.mark.parametrize(
    ("route", "tokenize", "fields", "param"),
    [
        ("chat/completions", "apply_chat_template", {"messages": [USER_HUGE]}, "messages"),
        ("completions", "encode", {"prompt": HUGE}, "max_tokens"),
    ],
)
def test_while_a_huge_request_is_tokenized_the_server_answers_others(
    server: LiveServer,
    engine: LlamaCppEngine,
    model_name: str,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    tokenize: str,
    fields: dict[str, Any],
    param: str,
) -> None:
    """7.5 MB of text takes seconds to tokenize; meanwhile ``/health`` (and every stream) is
    answered.  The tokenizer is held until ``/health`` has answered, so on the event loop it
    would wait for an answer that cannot come."""
    tokenizing, health_answered = threading.Event(), threading.Event()
    answered_first: list[bool] = []
    real = getattr(engine.tokenizer, tokenize)

    def held(*args: Any) -> Any:
        tokenizing.set()
        answered_first.append(health_answered.wait(60))
        return real(*args)

    monkeypatch.setattr(engine.tokenizer, tokenize, held)
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=server.url, timeout=300) as http:
        rejected = pool.submit(http.post, f"/v1/{route}", json={"model": model_name, **fields})
        assert tokenizing.wait(120), "the huge request was never tokenized"
        assert httpx.get(f"{server.url}/health", timeout=120).status_code == 200
        health_answered.set()
        response = rejected.result()
    assert answered_first == [True]
    assert "maximum context length" in assert_error(response, 400, param)["message"]


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


@pytest.mark.parametrize("samples", [65, 200])
def test_more_samples_than_an_engine_runs_is_a_400_and_health_stays(
    http: httpx.Client, model_name: str, samples: int
) -> None:
    search = {"method": "best_of_n", "samples": samples}
    for _ in range(4):
        r = http.post(
            "/v1/chat/completions",
            json={"model": model_name, "messages": MESSAGES, "max_tokens": 4, "search": search},
        )
        assert_error(r, 400, "search.samples")
    assert http.get("/health").status_code == 200


@pytest.fixture(scope="module")
def four_sequences() -> Iterator[LiveServer]:
    """A server on an engine that runs 4 sequences at once, below what the schema accepts."""
    engine = LlamaCppEngine(
        resolve(TEST_MODEL), kv_cache_tokens=1024, prefix_cache_tokens=0, max_sequences=4
    )
    with LiveServer(engine) as live:
        yield live
    engine.close()


@pytest.mark.parametrize(
    ("search", "param"),
    [
        ({"method": "best_of_n", "samples": 5}, "search.samples"),
        ({**TINY_SEARCH, "branching": 5}, "search.branching"),
    ],
)
def test_an_engine_refusal_names_the_chat_field_that_asked(
    four_sequences: LiveServer, model_name: str, search: dict[str, Any], param: str
) -> None:
    """Refused by the engine (not the schema): a 400 naming the field, streamed or not, and
    ``/health`` stays 200."""
    # a budget with room for 5 whole answers, so that all 5 samples are asked for at once
    body = {"model": model_name, "messages": MESSAGES, "stop": [" ", "\n"]}
    search = {**search, "max_search_tokens": 5 * WHOLE_ANSWER_TOKENS}
    with httpx.Client(base_url=four_sequences.url, timeout=120) as http:
        for _ in range(3):
            r = http.post("/v1/chat/completions", json={**body, "search": search})
            assert "sequences" in assert_error(r, 400, param)["message"]
        stream = {**body, "search": search, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=stream) as r:
            frames = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        assert frames[-1] == "[DONE]"
        error = json.loads(frames[-2])["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
        completion = {"model": model_name, "prompt": "Hi", "max_tokens": 2, "n": 5}
        assert_error(http.post("/v1/completions", json=completion), 400, "n")
        assert http.get("/health").status_code == 200
