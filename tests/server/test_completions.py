"""``/v1/completions``: plain generation in OpenAI's format, through the official client."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import openai
import pytest

from server.engines.llamacpp.engine import LlamaCppEngine
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


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"model": "nope"}, 404, None),
        ({"echo": True}, 400, "echo"),
        ({"stream": True}, 400, "stream"),
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
