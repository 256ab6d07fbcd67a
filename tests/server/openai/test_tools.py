"""Tool calls through the official openai client against a live server on the default model
(Qwen2.5-Coder-0.5B, whose chat template has a tools section): a call, streamed as OpenAI
streams one and equal to the unstreamed, and the second turn that reads its result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from server.catalogue import DEFAULT
from server.local import live_server

pytestmark = pytest.mark.real_model

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK: Any = [{"role": "user", "content": "What's the weather like in Paris?"}]


@pytest.fixture(scope="module")
def tools_client() -> Iterator[openai.OpenAI]:
    # no prefix cache: llama.cpp's attention rounds differently once earlier sequences share
    # its KV cache, so only requests that each start from an empty one must agree
    with (
        live_server(None, ["--prefix-cache-tokens", "0"]) as base,
        openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0) as client,
    ):
        yield client


@pytest.mark.parametrize("method", ["none", "self_consistency"])
def test_a_weather_question_calls_the_weather_tool_streamed_or_not(
    tools_client: openai.OpenAI, method: str
) -> None:
    asked: dict[str, Any] = {
        "model": DEFAULT,
        "messages": ASK,
        "tools": [WEATHER],
        "temperature": 0,
        "max_tokens": 400,
        "extra_body": {"search": {"method": method}},
    }
    r = tools_client.chat.completions.create(**asked)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert "paris" in json.loads(call.function.arguments)["city"].lower()

    calls: dict[int, dict[str, Any]] = {}
    finish, content = None, ""
    for chunk in tools_client.chat.completions.create(**asked, stream=True):
        if not chunk.choices:
            continue
        delta, finish = chunk.choices[0].delta, chunk.choices[0].finish_reason or finish
        content += delta.content or ""
        for piece in delta.tool_calls or []:
            assert piece.function is not None
            calls[piece.index] = {
                "name": piece.function.name,
                "arguments": piece.function.arguments,
            }
    assert finish == "tool_calls" and content == (choice.message.content or "")
    assert list(calls.values()) == [{"name": "get_weather", "arguments": call.function.arguments}]


def test_the_second_turn_reads_the_tool_result(tools_client: openai.OpenAI) -> None:
    asked: Any = {
        "model": DEFAULT,
        "tools": [WEATHER],
        "temperature": 0,
        "extra_body": {"search": {"method": "none"}},
    }
    first = tools_client.chat.completions.create(messages=ASK, max_tokens=200, **asked)
    message = first.choices[0].message
    assert message.tool_calls
    history: Any = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [c.model_dump() for c in message.tool_calls],
        },
        {
            "role": "tool",
            "tool_call_id": message.tool_calls[0].id,
            "content": '{"temperature_c": 31, "sky": "clear"}',
        },
    ]
    second = tools_client.chat.completions.create(messages=history, max_tokens=120, **asked)
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls
    assert first.usage and second.usage and second.usage.prompt_tokens > first.usage.prompt_tokens
    assert "31" in second.choices[0].message.content  # it read the result


def test_tool_input_the_server_cannot_honour_is_a_400_naming_it(
    tools_client: openai.OpenAI,
) -> None:
    bad_history: Any = [
        *ASK,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{city"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    for fields, param in (
        ({"messages": bad_history, "tools": [WEATHER]}, "messages"),
        (
            {
                "messages": ASK,
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            },
            "tool_choice",
        ),
        ({"messages": ASK, "tool_choice": "auto"}, "tool_choice"),
        # a tool result answering no call, with an unknown id or none
        (
            {"messages": [*ASK, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]},
            "messages",
        ),
        ({"messages": [*ASK, {"role": "tool", "content": "x"}]}, "messages"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            tools_client.chat.completions.create(model=DEFAULT, max_tokens=8, **fields)
        assert isinstance(refused.value.body, dict) and refused.value.body["param"] == param
    assert tools_client.models.list().data  # and the server serves on
