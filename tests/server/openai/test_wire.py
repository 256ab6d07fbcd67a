"""A streamed and a JSON answer of the same seeded request carry the same fields and values."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import TINY_SEARCH, LiveServer

QUESTION = [{"role": "user", "content": "What is 17*23?"}]
REQUESTS: dict[str, dict[str, Any]] = {
    # a plain answer: no reasoning, so neither answer may carry a reasoning field
    "plain": {"reasoning_format": "plain", "search": {"method": "none"}},
    # a search in the marco format: reasoning, then the answer
    "reasoning": {"reasoning_format": "marco", "search": TINY_SEARCH},
}


def streamed(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks of a streamed answer, as sent."""
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        frames = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    return [json.loads(frame) for frame in frames[:-1]]


def folded(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON answer a client rebuilds from the chunks: deltas joined into one message, the
    finishing choice's fields, the usage and the ``search`` object."""
    message: dict[str, Any] = {}
    choice: dict[str, Any] = {}
    answer: dict[str, Any] = {}
    for chunk in chunks:
        for key in ("usage", "search"):
            if key in chunk:
                answer[key] = chunk[key]
        for c in chunk["choices"]:
            choice.update({k: v for k, v in c.items() if k != "delta"})
            for key, text in c["delta"].items():
                message[key] = text if key == "role" else message.get(key, "") + text
    return {**answer, "choices": [{**choice, "message": message}]}


@pytest.mark.parametrize("kind", REQUESTS)
def test_streamed_and_json_answers_have_the_same_fields(
    server: LiveServer, model_name: str, engine: LlamaCppEngine, kind: str
) -> None:
    body = {
        "model": model_name,
        "messages": QUESTION,
        "seed": 11,
        "temperature": 0.8,
        "max_tokens": 64,  # the whole search's tokens: room for reasoning before the answer
        **REQUESTS[kind],
    }
    with httpx.Client(base_url=server.url, timeout=300) as http:
        server.fresh(engine)  # both runs start from the same engine state
        chunks = streamed(http, {**body, "stream": True, "stream_options": {"include_usage": True}})
        server.fresh(engine)
        r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    whole = r.json()
    rebuilt = folded(chunks)
    assert rebuilt["choices"] == whole["choices"]
    assert rebuilt["usage"] == whole["usage"]
    assert rebuilt["search"] == whole["search"]
    for chunk in chunks:
        assert {k: chunk[k] for k in ("id", "model", "created")} == {
            "id": chunks[0]["id"],
            "model": whole["model"],
            "created": chunks[0]["created"],
        }
    message = whole["choices"][0]["message"]
    if kind == "plain":
        assert set(message) == {"role", "content"}
    else:
        assert message["reasoning"] == message["reasoning_content"] != ""
