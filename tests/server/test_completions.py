"""``/v1/completions``: plain generation in OpenAI's format, through the official client."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import openai
import pytest

from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import LiveServer
from tests.server.test_chat import metric


def test_text_prompt_with_logprobs(client: openai.OpenAI, model_name: str) -> None:
    r = client.completions.create(
        model=model_name, prompt="The capital of France is", max_tokens=6, logprobs=3, seed=1
    )
    [choice] = r.choices
    assert choice.text and choice.logprobs is not None
    tokens = len(choice.logprobs.tokens)
    # a token each, as many as usage counts: all six unless the model ended first
    assert tokens == len(choice.logprobs.token_logprobs) == r.usage.completion_tokens
    assert tokens == 6 if choice.finish_reason == "length" else 0 < tokens <= 6
    assert all(len(top) == 3 for top in choice.logprobs.top_logprobs)
    assert all(lp <= 0 for lp in choice.logprobs.token_logprobs)


def test_token_id_prompts_n_samples_and_token_ids_back(
    http: httpx.Client, model_name: str, engine: LlamaCppEngine
) -> None:
    ids = engine.tokenizer.encode("Once upon a time")
    r = http.post(
        "/v1/completions",
        json={
            "model": model_name,
            "prompt": [ids, ids[:2]],
            "n": 2,
            "max_tokens": 4,
            "logprobs": 2,
            "seed": 3,
            "return_tokens_as_token_ids": True,
        },
    )
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]  # prompt-major, as OpenAI numbers
    for choice in choices:
        tokens = choice["logprobs"]["tokens"]
        assert all(t.startswith("token_id:") for t in tokens)
        ids_back = [int(t.split(":")[1]) for t in tokens]
        assert engine.tokenizer.decode(ids_back) == choice["text"]


def test_stop_strings_are_cut_unless_asked_for(
    http: httpx.Client, model_name: str, engine: LlamaCppEngine
) -> None:
    """The stop string is one the greedy answer itself holds (which one depends on the CPU's
    rounding): stopped, the answer is the free one up to it, without it or with it as asked."""
    body = {"model": model_name, "prompt": "1, 2, 3, 4,", "max_tokens": 12, "temperature": 0}

    def complete(**change: object) -> dict[str, Any]:
        engine.reset_prefix_cache()  # each greedy run from the same engine state
        r = http.post("/v1/completions", json={**body, **change})
        assert r.status_code == 200, r.text
        choice: dict[str, Any] = r.json()["choices"][0]
        return choice

    free = complete()["text"]
    stop = free.strip()[-1]  # a character past the answer's first token
    before = free[: free.index(stop)]
    cut = complete(stop=[stop])
    assert (cut["text"], cut["finish_reason"], cut["stop_reason"]) == (before, "stop", stop)
    kept = complete(stop=[stop], include_stop_str_in_output=True)
    assert kept["text"] == before + stop


def streamed(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A streamed completion's chunks, as sent."""
    with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        frames = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    return [json.loads(frame) for frame in frames[:-1]]


def folded(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The choices a client rebuilds from the chunks (texts and logprobs joined, each
    choice's finish), and the usage."""
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.get("usage", usage)
        for c in chunk["choices"]:
            whole = choices.setdefault(c["index"], {"index": c["index"], "text": ""})
            whole["text"] += c["text"]
            for key in ("finish_reason", "stop_reason"):
                if key in c:
                    whole[key] = c[key]
            if "logprobs" in c:
                joined = whole.setdefault("logprobs", {k: [] for k in c["logprobs"]})
                for key, values in c["logprobs"].items():
                    joined[key] += values
    return [choices[i] for i in sorted(choices)], usage


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "Once upon a time", "logprobs": 2},
        {"prompt": ["Once upon a time", "1, 2, 3,"], "n": 2, "return_tokens_as_token_ids": True},
        {"prompt": "1, 2, 3, 4,", "stop": [" 7", "\n"], "logprobs": 0},
        {"prompt": "1, 2, 3, 4,", "stop": [" 7"], "include_stop_str_in_output": True},
    ],
)
def test_a_streamed_completion_adds_up_to_its_json(
    server: LiveServer, model_name: str, engine: LlamaCppEngine, change: dict[str, Any]
) -> None:
    """Chunk by chunk, each choice's tokens as they come and its text where no stop string
    can take it back; joined, they are the JSON answer of the same seeded request."""
    body = {"model": model_name, "max_tokens": 16, "seed": 5, "temperature": 0.9, **change}
    with httpx.Client(base_url=server.url, timeout=120) as http:
        server.fresh(engine)
        chunks = streamed(http, {**body, "stream_options": {"include_usage": True}})
        server.fresh(engine)
        r = http.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    whole = r.json()
    choices, usage = folded(chunks)
    assert usage == whole["usage"]
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("cmpl-")
    for rebuilt, answer in zip(choices, whole["choices"], strict=True):
        assert rebuilt == {k: v for k, v in answer.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"model": "nope"}, 404, None),
        ({"echo": True}, 400, "echo"),
        ({"max_tokens": 10**9}, 400, "max_tokens"),
        ({"prompt": []}, 400, None),
        ({"prompt": [1, -5]}, 400, "prompt"),
        ({"prompt": [[2], [10**7]]}, 400, "prompt"),
    ],
)
def test_bad_completion_requests(
    http: httpx.Client, model_name: str, change: dict[str, object], status: int, param: str | None
) -> None:
    body = {"model": model_name, "prompt": "Hi", "max_tokens": 2, **change}
    r = http.post("/v1/completions", json=body)
    assert r.status_code == status, r.text
    if param:
        assert r.json()["error"]["param"] == param


def test_a_seed_at_the_top_of_int64_is_served_and_reproducible(
    http: httpx.Client, model_name: str, engine: LlamaCppEngine
) -> None:
    """vLLM gives sample i the seed seed + i in an int64: ponder reduces client seeds modulo
    2**62 first, so the largest seed with the most samples neither fails nor kills an engine,
    and means the same as its remainder."""

    def sample(seed: int) -> list[str]:
        body = {"model": model_name, "prompt": "Once", "n": 4, "max_tokens": 4, "seed": seed}
        engine.reset_prefix_cache()  # both from the same engine state
        r = http.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        return [c["text"] for c in r.json()["choices"]]

    assert sample(2**63 - 1) == sample((2**63 - 1) % 2**62)
    assert http.get("/health").status_code == 200


def test_a_completion_is_counted_in_metrics_and_logged_like_a_chat(
    http: httpx.Client, model_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    served = 'ponder_requests_total{method="completions",status="200"}'
    durations = 'ponder_search_duration_seconds_count{method="completions"}'
    before = http.get("/metrics").text
    with caplog.at_level(logging.INFO, logger="server"):
        r = http.post(
            "/v1/completions",
            json={"model": model_name, "prompt": "Once upon a time", "max_tokens": 5, "seed": 2},
        )
    assert r.status_code == 200
    after = http.get("/metrics").text
    assert metric(after, served) == metric(before, served) + 1
    assert metric(after, durations) == metric(before, durations) + 1
    generated = r.json()["usage"]["completion_tokens"]
    for name in (
        "ponder_completion_tokens_total",
        'ponder_generated_tokens_total{phase="generation"}',
    ):
        assert metric(after, name) == metric(before, name) + generated
    assert "ponder_requests_in_flight 0.0" in after
    [line] = [rec for rec in caplog.records if getattr(rec, "response_id", None) == r.json()["id"]]
    assert (line.method, line.status, line.generated_tokens) == (  # type: ignore[attr-defined]
        "completions",
        200,
        generated,
    )
