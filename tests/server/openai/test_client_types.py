"""Every body and event the server sends validates as the official client's own type
(``openai.types``), strictly: the server declares its wire models itself, so it needs no
``openai`` at run time and no release of the client (whose generated types change with each
one) can break it, while this test holds those models to the client the dev extra installs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai.types import Completion, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.conftest import TINY_SEARCH
from tests.server.openai.test_structured import ORDER  # a call the grammar bounds

# what a surface can send: an answer after a search's reasoning, and a forced tool call
ASKS: dict[str, dict[str, Any]] = {
    "reasoning": {"reasoning_format": "marco", "search": TINY_SEARCH},
    "tool call": {"search": {"method": "none"}},
}
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def sse(http: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The data frames of a streamed answer, parsed (chat's closing ``[DONE]`` left out)."""
    with http.stream("POST", path, json={**body, "stream": True}) as r:
        assert r.status_code == 200
        frames = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    return [json.loads(frame) for frame in frames if frame != "[DONE]"]


@pytest.mark.parametrize("ask", ASKS)
def test_chat_bodies_and_chunks_are_the_clients_types(
    http: httpx.Client, model_name: str, ask: str
) -> None:
    body: dict[str, Any] = {
        "model": model_name,
        "messages": [{"role": "user", "content": "I am hungry."}],
        "max_tokens": 64,
        "seed": 3,
        "logprobs": True,
        "top_logprobs": 2,
        **ASKS[ask],
    }
    if ask == "tool call":
        body |= {
            "tools": [ORDER],
            "tool_choice": {"type": "function", "function": {"name": "order"}},
        }
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    whole = ChatCompletion.model_validate(r.json())
    assert whole.choices and whole.usage is not None
    if ask == "tool call":
        assert whole.choices[0].message.tool_calls
    chunks = sse(http, "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}})
    assert chunks
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


@pytest.mark.parametrize("ask", ASKS)
def test_responses_bodies_and_events_are_the_clients_types(
    http: httpx.Client, model_name: str, ask: str
) -> None:
    body: dict[str, Any] = {
        "model": model_name,
        "input": "I am hungry.",
        "max_output_tokens": 64,
        "seed": 3,
        **ASKS[ask],
    }
    if ask == "tool call":
        body |= {
            "tools": [{"type": "function", **ORDER["function"]}],
            "tool_choice": {"type": "function", "name": "order"},
        }
    r = http.post("/v1/responses", json=body)
    assert r.status_code == 200, r.text
    whole = Response.model_validate(r.json())
    kinds = {item.type for item in whole.output}
    assert ("function_call" if ask == "tool call" else "reasoning") in kinds
    events = sse(http, "/v1/responses", body)
    assert events[-1]["type"] in ("response.completed", "response.incomplete")
    for event in events:
        EVENTS.validate_python(event)


def test_completions_and_the_model_list_are_the_clients_types(
    http: httpx.Client, model_name: str
) -> None:
    r = http.post(
        "/v1/completions",
        json={"model": model_name, "prompt": ["Hello", "Bye"], "max_tokens": 8, "logprobs": 2},
    )
    assert r.status_code == 200, r.text
    assert len(Completion.model_validate(r.json()).choices) == 2
    models = http.get("/v1/models")
    assert models.status_code == 200
    assert [Model.model_validate(card).id for card in models.json()["data"]]
