"""Reading tool calls out of a model's text (the Hermes syntax and the bare object a small
model writes instead), and the fallback prompt of a template without a tools section."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from server.engines.base import ServingEngine
from server.openai.tool_calls import (
    Parsed,
    answer_calls,
    fallback_system_prompt,
    parse_hermes,
    renders_tools,
    with_tools,
)

NAMES = frozenset({"get_weather", "add"})
TINY_NONE = {"method": "none"}
WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


@pytest.mark.parametrize(
    "text",
    [
        f"<tool_call>\n{WEATHER}\n</tool_call>",
        WEATHER,  # the tags dropped, as the 0.5B does
        f"```json\n{WEATHER}\n```",
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',  # arguments as text
        f"<tool_call>\n{WEATHER}",  # cut before the closing tag
    ],
)
def test_a_call_is_read_in_every_spelling(text: str) -> None:
    parsed = parse_hermes(text, NAMES)
    assert parsed.content is None and [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [
        ("get_weather", {"city": "Paris"})
    ]


def test_several_calls_and_the_text_around_them() -> None:
    text = (
        f"Let me look.\n<tool_call>\n{WEATHER}\n</tool_call>\n"
        '<tool_call>\n{"name": "add", "arguments": {"b": 2, "a": 1}}\n</tool_call>'
    )
    parsed = parse_hermes(text, NAMES)
    assert parsed.content == "Let me look."
    assert [(c.name, c.arguments) for c in parsed.calls] == [
        ("get_weather", '{"city": "Paris"}'),
        ("add", '{"a": 1, "b": 2}'),  # canonical: keys sorted
    ]
    content, calls = answer_calls(text, NAMES, parallel=False)
    assert content == "Let me look." and calls is not None and len(calls) == 1
    assert calls[0].id.startswith("call_") and calls[0].function.name == "get_weather"


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Paris is mild.",
        '{"name": "delete_everything", "arguments": {}}',  # not an offered tool
        '{"name": "get_weather", "arguments": [1, 2]}',  # arguments not an object
        "<tool_call>{not json}</tool_call>",
        '[{"name": "get_weather", "arguments": {}}, "and prose"]',
        'I would call {"name": "get_weather", "arguments": {"city": "Paris"}} now',
    ],
)
def test_text_that_does_not_parse_stays_text(text: str) -> None:
    assert parse_hermes(text, NAMES).calls == ()
    assert answer_calls(text, NAMES, parallel=True) == (text, None)


def test_a_template_without_tools_gets_them_in_the_system_message() -> None:
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    assert renders_tools("{% if tools %}{{ tools | tojson }}{% endif %}")
    own = [{"role": "user", "content": "1+2?"}]
    assert with_tools(own, tools, "{% if tools %}x{% endif %}") == (own, tools)
    messages, rendered = with_tools(own, tools, "{{ messages }}")
    assert rendered is None and messages[0] == {
        "role": "system",
        "content": fallback_system_prompt(tools),
    }
    system = [{"role": "system", "content": "Be brief."}, *own]
    merged, _ = with_tools(system, tools, "{{ messages }}")
    assert (
        merged[0]["content"].startswith("Be brief.\n\n") and "<tool_call>" in merged[0]["content"]
    )
    assert json.dumps(tools[0]) in fallback_system_prompt(tools)


def test_a_model_whose_template_has_no_tools_section_is_offered_them_in_its_system_message(
    client: openai.OpenAI, model_name: str, engine: ServingEngine
) -> None:
    """The suite's model (SmolLM2-135M) has no tools section: the fallback prompt carries them,
    and the prompt grows by exactly that system message."""
    assert not renders_tools(engine.tokenizer.chat_template)
    tool: Any = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    asked: Any = {
        "model": model_name,
        "max_tokens": 8,
        "extra_body": {"search": {"method": "none"}},
    }
    plain = client.chat.completions.create(messages=[{"role": "user", "content": "1+2?"}], **asked)
    offered = client.chat.completions.create(
        messages=[{"role": "user", "content": "1+2?"}], tools=[tool], **asked
    )
    system = [
        {"role": "system", "content": fallback_system_prompt([tool])},
        {"role": "user", "content": "1+2?"},
    ]
    expected = len(engine.tokenizer.apply_chat_template(system))
    assert plain.usage and offered.usage and offered.usage.prompt_tokens == expected
    assert expected > plain.usage.prompt_tokens
    assert offered.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_a_bare_call_followed_by_more_json_is_the_call_alone() -> None:
    junk = '{"name": "get_weather_args", "type": "object"}'  # what the 0.5B wrote after one
    parsed = parse_hermes(f"{WEATHER}\n{junk}", NAMES)
    assert [c.name for c in parsed.calls] == ["get_weather"] and parsed.content is None


def test_a_bare_call_already_answered_is_an_echo_and_the_rest_is_the_answer() -> None:
    """Handed a tool's result, the 0.5B writes its call again, then the result."""
    (weather,) = parse_hermes(WEATHER, NAMES).calls
    echoed = f'{WEATHER}\n{{"temperature_c": 31}}'
    assert parse_hermes(echoed, NAMES, frozenset({weather})) == Parsed('{"temperature_c": 31}', ())
    assert parse_hermes(echoed, NAMES).calls == (weather,)  # not answered yet: a call
    tagged = f"<tool_call>{WEATHER}</tool_call>"  # the tags say it is meant: a call again
    assert parse_hermes(tagged, NAMES, frozenset({weather})).calls == (weather,)
