"""What a client sends the way OpenAI clients do: fields ponder cannot honour get a 400 naming
them (never an answer that silently ignored them); the harmless rest is accepted."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import TINY_SEARCH

MESSAGES: list[Any] = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("param", "fields"),
    [
        ("frequency_penalty", {"frequency_penalty": 0.5}),
        ("presence_penalty", {"presence_penalty": -1.0}),
        ("logit_bias", {"logit_bias": {"15": -100}}),
        ("modalities", {"modalities": ["text", "audio"]}),
        ("prediction", {"prediction": {"type": "content", "content": "Hi"}}),
    ],
)
def test_a_field_ponder_cannot_honour_is_refused_by_name(
    client: openai.OpenAI, model_name: str, param: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model_name, messages=MESSAGES, **fields)
    assert refused.value.status_code == 400
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param
    assert error["type"] == "invalid_request_error" and param in error["message"]


def test_harmless_fields_and_earlier_reasoning_are_accepted(
    client: openai.OpenAI, model_name: str
) -> None:
    """An assistant turn carrying its reasoning (as clients send it back), no tools with
    tool_choice none, text response_format, metadata, store false, parallel_tool_calls, and
    the answer-changing fields at their neutral values (as some clients always send them)."""
    messages: list[Any] = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "greet back"},
        {"role": "user", "content": "Name a colour."},
    ]
    r = client.chat.completions.create(
        model=model_name,
        messages=messages,
        max_tokens=8,
        tool_choice="none",
        response_format={"type": "text"},
        metadata={"team": "tests"},
        store=False,
        user="tester",
        parallel_tool_calls=False,
        frequency_penalty=0,
        presence_penalty=0,
        logit_bias={},
        modalities=["text"],
        service_tier="auto",
        extra_body={"search": TINY_SEARCH},
    )
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.completion_tokens > 0
    messages[1] = {"role": "assistant", "content": "Hello!"}
    without = client.chat.completions.create(
        model=model_name, messages=messages, max_tokens=8, extra_body={"search": TINY_SEARCH}
    )
    assert without.usage is not None  # the earlier reasoning is left out of the prompt
    assert without.usage.prompt_tokens == r.usage.prompt_tokens
