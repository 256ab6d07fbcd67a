"""Structured outputs and forced tool calls against a live server, through the official openai
client: every method's answer is what the schema allows (chat and Responses), a forced call
names an offered function with arguments its schema allows, and a schema the grammar cannot
enforce is a 400 naming the field."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from tests.engines.test_constraints import SCHEMA  # every value bounded: a short answer

FORMAT = {"type": "json_schema", "json_schema": {"name": "pick", "schema": SCHEMA, "strict": True}}
ASK: Any = [{"role": "user", "content": "Pick a colour and a number."}]
SEARCHES = {
    "none": {"method": "none"},
    "self_consistency": {"method": "self_consistency", "samples": 3},
    "best_of_n": {"method": "best_of_n", "samples": 3},
    "beam": {"method": "beam", "granularity": "mini_step", "step_tokens": 6, "beam_width": 2},
    "mcts": {
        "method": "mcts",
        "granularity": "mini_step",
        "step_tokens": 6,
        "iterations": 2,
        "branching": 2,
        "rollout_tokens": 48,
    },
}
LOOKUP: Any = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"shelf": {"type": "integer", "minimum": 1, "maximum": 5}},
            "required": ["shelf"],
            "additionalProperties": False,
        },
    },
}
ORDER: Any = {
    "type": "function",
    "function": {
        "name": "order",
        "parameters": {
            "type": "object",
            "properties": {"item": {"enum": ["tea", "cake"]}},
            "required": ["item"],
            "additionalProperties": False,
        },
    },
}


@pytest.mark.parametrize("method", list(SEARCHES))
def test_every_method_answers_with_what_the_schema_allows(
    client: openai.OpenAI, model_name: str, method: str
) -> None:
    r = client.chat.completions.create(
        model=model_name,
        messages=ASK,
        max_tokens=400,  # a budget the whole search fits: one cut short answers "length"
        seed=4,
        response_format=FORMAT,  # type: ignore[arg-type]
        extra_body={"search": SEARCHES[method]},
    )
    choice = r.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content is not None
    jsonschema.validate(json.loads(choice.message.content), SCHEMA)
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    # the whole answer is content: no reasoning is shown, and none hidden beyond the
    # search's discarded branches (what a method with one path generates is all answer)
    assert not getattr(choice.message, "reasoning_content", None)
    if method == "none":
        assert r.usage.completion_tokens_details.reasoning_tokens == 0


def test_a_streamed_structured_answer_is_json_too(client: openai.OpenAI, model_name: str) -> None:
    stream = client.chat.completions.create(
        model=model_name,
        messages=ASK,
        max_tokens=96,
        seed=4,
        stream=True,
        response_format=FORMAT,  # type: ignore[arg-type]
        extra_body={"search": SEARCHES["self_consistency"]},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        ("required", {"lookup", "order"}),
        ({"type": "function", "function": {"name": "order"}}, {"order"}),
    ],
)
def test_a_forced_call_names_an_offered_function_with_arguments_its_schema_allows(
    client: openai.OpenAI, model_name: str, choice: Any, names: set[str]
) -> None:
    """Several calls only where the request allows them itself (unset: one)."""
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (LOOKUP, ORDER)}
    for parallel in (True, False, None):
        allowed: dict[str, Any] = {} if parallel is None else {"parallel_tool_calls": parallel}
        r = client.chat.completions.create(
            model=model_name,
            messages=[{"role": "user", "content": "I am hungry."}],
            max_tokens=96,
            seed=2,
            tools=[LOOKUP, ORDER],
            tool_choice=choice,
            extra_body={"search": {"method": "none"}},
            **allowed,
        )
        answer = r.choices[0]
        assert answer.finish_reason == "tool_calls"
        calls = answer.message.tool_calls or []
        assert calls and (parallel is True or len(calls) == 1)
        for call in calls:
            assert call.type == "function" and call.function.name in names
            jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "strict": True,
                        "schema": {"type": "object", "properties": {"a": {"not": {}}}},
                    },
                }
            },
            "response_format.json_schema.schema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}},
            "response_format.json_schema.name",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 3}}},
            "response_format.json_schema.schema",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        (
            {"response_format": FORMAT, "extra_body": {"search": {"reflection": True}}},
            "search.reflection",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "objekt"}},
                    }
                ],
                "tool_choice": "required",
            },
            "tools[0].function.parameters",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ],
                "tool_choice": "required",
            },
            "tools[0].function.parameters",
        ),
        ({"tools": [LOOKUP] * 129}, "tools"),
    ],
)
def test_a_constraint_the_server_cannot_enforce_is_a_400_naming_it(
    client: openai.OpenAI, model_name: str, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model_name, messages=ASK, max_tokens=8, **fields)
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert client.models.list().data  # and the server serves on


def test_a_clients_own_grammar_options_are_not_taken(
    client: openai.OpenAI, model_name: str
) -> None:
    """``x-guidance`` is llguidance's options key: whatever a client puts there (found by the
    schema fuzz: a list, which broke the grammar's build), ponder's own options stand."""
    parameters = {**LOOKUP["function"]["parameters"], "x-guidance": []}
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    r = client.chat.completions.create(
        model=model_name,
        messages=ASK,
        max_tokens=48,
        tools=[tool],
        tool_choice="required",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {**SCHEMA, "x-guidance": "loose"}},
        },
        extra_body={"search": {"method": "none"}},
    )
    assert r.choices[0].finish_reason == "tool_calls"


def test_without_strict_a_keyword_the_grammar_cannot_enforce_is_ignored(
    client: openai.OpenAI, model_name: str
) -> None:
    loose = {**SCHEMA, "properties": {**SCHEMA["properties"], "note": {"not": {"type": "null"}}}}
    r = client.chat.completions.create(
        model=model_name,
        messages=ASK,
        max_tokens=96,
        seed=1,
        response_format={"type": "json_schema", "json_schema": {"name": "loose", "schema": loose}},
        extra_body={"search": {"method": "none"}},
    )
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), SCHEMA)


def test_a_responses_text_format_holds_the_answer_to_its_schema(
    client: openai.OpenAI, model_name: str
) -> None:
    text: Any = {"format": {"type": "json_schema", "name": "pick", "schema": SCHEMA}}
    r = client.responses.create(
        model=model_name,
        input="Pick a colour and a number.",
        max_output_tokens=400,
        text=text,
        extra_body={"search": SEARCHES["best_of_n"]},
    )
    assert r.status == "completed"
    jsonschema.validate(json.loads(r.output_text), SCHEMA)
    text["format"]["schema"] = {"type": "object", "properties": {"a": {"not": {}}}}
    text["format"]["strict"] = True
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=model_name, input="Hi", text=text)
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["param"] == "text.format.schema"


def test_a_responses_function_call_is_a_function_call_item_streamed_or_not(
    client: openai.OpenAI, model_name: str
) -> None:
    """Responses' function tools sit flat; the call comes back as a ``function_call`` item
    (added, its arguments, done) and no message; its output item answers it next turn."""
    tools: Any = [{"type": "function", **t["function"]} for t in (LOOKUP, ORDER)]
    asked: dict[str, Any] = {
        "model": model_name,
        "input": "I am hungry.",
        "max_output_tokens": 96,
        "tools": tools,
        "tool_choice": {"type": "function", "name": "order"},
        "extra_body": {"search": {"method": "none"}, "seed": 2},
    }
    r = client.responses.create(**asked)
    assert r.status == "completed"
    calls = [item for item in r.output if item.type == "function_call"]
    assert calls and not [item for item in r.output if item.type == "message"]
    for call in calls:
        assert call.name == "order" and call.call_id.startswith("call_")
        jsonschema.validate(json.loads(call.arguments), ORDER["function"]["parameters"])
    events = list(client.responses.create(**asked, stream=True))
    kinds = [e.type for e in events]
    added = kinds.index("response.output_item.added", kinds.index("response.in_progress"))
    call_events = [k for k in kinds[added:] if "function_call" in k or "output_item" in k]
    assert call_events[:4] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    answered = client.responses.create(
        model=model_name,
        input=[
            {"role": "user", "content": "I am hungry."},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": calls[0].name,
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "ordered"},
        ],
        max_output_tokens=24,
        tools=tools,
        extra_body={"search": {"method": "none"}},
    )
    assert answered.output and answered.usage is not None and r.usage is not None
    assert answered.usage.input_tokens > r.usage.input_tokens  # the call and output are read
