"""The Responses API through the official openai client against a live server: the same
search as chat, its answer as a reasoning item then a message, chat's usage under the
Responses API's names, the standard stream events, and a 400 for what a stateless server
cannot do."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseReasoningItem

from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import TINY_SEARCH, LiveServer

QUESTION = "What is 17*23?"
INSTRUCTIONS = "Answer briefly."
ASKED: dict[str, Any] = {"input": QUESTION, "instructions": INSTRUCTIONS, "max_output_tokens": 24}
SEARCH: dict[str, Any] = {"seed": 5, "search": TINY_SEARCH}


def reasoning_of(response: Response) -> str:
    """The text of the response's reasoning item, checked to come first and be whole."""
    item = response.output[0]
    assert isinstance(item, ResponseReasoningItem)
    assert item.summary == [] and item.status == "completed"
    assert item.content is not None and [c.type for c in item.content] == ["reasoning_text"]
    return item.content[0].text


def test_create_answers_with_reasoning_then_message_and_chat_usage(
    client: openai.OpenAI,
    server: LiveServer,
    http: httpx.Client,
    model_name: str,
    engine: LlamaCppEngine,
) -> None:
    server.fresh(engine)  # both runs start from the same engine state
    r = client.responses.create(
        model=f"{model_name}:mcts",
        reasoning={"effort": "high", "summary": "auto"},
        extra_body=SEARCH,
        **ASKED,
    )
    server.fresh(engine)
    chat = client.chat.completions.create(
        model=f"{model_name}:mcts",
        messages=[
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": QUESTION},
        ],
        max_completion_tokens=24,
        reasoning_effort="high",
        extra_body=SEARCH,
    )
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.model == f"{model_name}:mcts" and r.instructions == INSTRUCTIONS
    assert r.reasoning is not None and r.reasoning.effort == "high"
    assert [item.type for item in r.output] == ["reasoning", "message"]
    message = chat.choices[0].message
    assert reasoning_of(r) == (message.model_extra or {})["reasoning_content"]
    assert r.output_text == message.content and r.output_text
    finish = chat.choices[0].finish_reason
    assert r.status == ("incomplete" if finish == "length" else "completed")
    assert r.usage is not None and chat.usage is not None
    assert r.usage.input_tokens == chat.usage.prompt_tokens
    assert r.usage.output_tokens == chat.usage.completion_tokens
    assert r.usage.total_tokens == chat.usage.total_tokens
    reasoning = chat.usage.completion_tokens_details
    assert reasoning is not None
    assert r.usage.output_tokens_details.reasoning_tokens == reasoning.reasoning_tokens
    assert r.usage.input_tokens_details.cached_tokens >= 0
    assert (r.model_extra or {})["search"]["method"] == "mcts"
    # the search's tree is kept under the response's id
    trace = http.get(f"/v1/traces/{r.id}")
    assert trace.status_code == 200 and trace.json()["question"] == QUESTION


def test_a_budget_cut_is_incomplete(client: openai.OpenAI, model_name: str) -> None:
    r = client.responses.create(
        model=model_name, input=QUESTION, max_output_tokens=4, extra_body=SEARCH
    )
    assert r.status == "incomplete"
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage is not None and r.usage.output_tokens <= 4
    assert (r.model_extra or {})["search"]["ended_by"]


def test_stream_sends_the_standard_events_in_order(
    client: openai.OpenAI, server: LiveServer, model_name: str, engine: LlamaCppEngine
) -> None:
    server.fresh(engine)
    with client.responses.stream(model=model_name, extra_body=SEARCH, **ASKED) as stream:
        events = list(stream)
    server.fresh(engine)
    whole = client.responses.create(model=model_name, extra_body=SEARCH, **ASKED)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    last = "response.incomplete" if whole.status == "incomplete" else "response.completed"
    reasoning = kinds.index("response.reasoning_text.delta")
    assert kinds[:reasoning] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    answer = kinds.index("response.output_text.delta")
    assert kinds[reasoning:answer] == [
        *["response.reasoning_text.delta"] * kinds.count("response.reasoning_text.delta"),
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[answer:] == [
        *["response.output_text.delta"] * kinds.count("response.output_text.delta"),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        last,
    ]
    deltas = {"reasoning": "", "answer": ""}
    for event in events:
        if event.type == "response.reasoning_text.delta":
            deltas["reasoning"] += event.delta
        elif event.type == "response.output_text.delta":
            deltas["answer"] += event.delta
    final = events[-1]
    assert final.type == last
    streamed = final.response
    assert deltas == {"reasoning": reasoning_of(streamed), "answer": streamed.output_text}
    assert streamed.id == events[0].response.id
    # the JSON answer is the stream's last response
    assert reasoning_of(whole) == reasoning_of(streamed)
    assert whole.output_text == streamed.output_text
    assert whole.usage == streamed.usage and whole.status == streamed.status


def test_a_finished_stream_gives_the_final_response(client: openai.OpenAI, model_name: str) -> None:
    """A plain answer (no search, so no reasoning) that ends by itself: response.completed,
    which the client's stream helper turns into its final response."""
    with client.responses.stream(
        model=f"{model_name}:none",
        input="Reply with one word: yes or no. Is the sky blue?",
        max_output_tokens=64,
        temperature=0,
    ) as stream:
        answer = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.status == "completed" and final.incomplete_details is None
    assert [item.type for item in final.output] == ["message"]
    assert final.output_text == answer and answer


def test_earlier_reasoning_items_are_left_out_of_the_prompt(
    client: openai.OpenAI, model_name: str
) -> None:
    turns: list[Any] = [
        {"role": "user", "content": "Hi"},
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "The user greets me; greet back."}],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": []}],
        },
        {"role": "user", "content": [{"type": "input_text", "text": "Name a colour."}]},
    ]
    asked: dict[str, Any] = {"model": model_name, "max_output_tokens": 8, "extra_body": SEARCH}
    with_reasoning = client.responses.create(input=turns, **asked)
    without = client.responses.create(input=[turns[0], *turns[2:]], **asked)
    assert with_reasoning.usage is not None and without.usage is not None
    assert with_reasoning.usage.input_tokens == without.usage.input_tokens


TOOL = {"type": "function", "name": "add", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    ("param", "fields"),
    [
        ("previous_response_id", {"previous_response_id": "resp_1"}),
        ("store", {"store": True}),
        ("conversation", {"conversation": "conv_1"}),
        ("background", {"background": True}),
        ("tools[0].type", {"tools": [{"type": "web_search"}]}),
        ("tools[0].name", {"tools": [{**TOOL, "name": "no spaces allowed"}]}),
        ("tool_choice", {"tool_choice": "required"}),
        ("tool_choice", {"tool_choice": "sometimes"}),
        ("top_logprobs", {"top_logprobs": 2}),
        ("reasoning.effort", {"reasoning": {"effort": "extreme"}}),
        ("input.0", {"input": [{"type": "computer_call_output", "call_id": "c", "output": ""}]}),
        ("input", {"input": [{"type": "reasoning", "summary": []}]}),
    ],
)
def test_what_a_stateless_search_cannot_do_is_refused_by_name(
    client: openai.OpenAI, model_name: str, param: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=model_name, **{"input": "Hi", **fields})
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param
    assert error["type"] == "invalid_request_error" and param.split(".")[0] in error["message"]


def test_errors_name_the_responses_fields(client: openai.OpenAI, model_name: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=model_name, input="Hi", max_output_tokens=10**7)
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["param"] == "max_output_tokens"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="Hi")
