"""``n`` choices and usage with OpenAI's meaning, through the official client on a live server:
every choice its own answer and index, usage summed over all the tokens generated, and
``max_completion_tokens`` bounding the whole search."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import TINY_SEARCH, LiveServer

QUESTION: list[Any] = [{"role": "user", "content": "What is 17*23?"}]
THREE_SEEDED: dict[str, Any] = {
    "messages": QUESTION,
    "n": 3,
    "seed": 11,
    "max_completion_tokens": 48,
}
METHODS: dict[str, dict[str, object]] = {
    "none": {"method": "none", "step_tokens": 8},
    "mcts": TINY_SEARCH,
}


def streamed(
    client: openai.OpenAI, **asked: Any
) -> tuple[dict[int, str], dict[int, str], dict[int, dict[str, Any]], Any]:
    """Each choice's content, finish reason and search object, and the usage, of a stream."""
    content: dict[int, str] = {}
    finish: dict[int, str] = {}
    search: dict[int, dict[str, Any]] = {}
    usage = None
    stream = client.chat.completions.create(
        **asked, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            content[choice.index] = content.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
                search[choice.index] = (chunk.model_extra or {})["search"]
    return content, finish, search, usage


@pytest.mark.parametrize("method", METHODS)
def test_n_choices_each_with_its_own_answer_and_summed_usage(
    client: openai.OpenAI, server: LiveServer, model_name: str, engine: LlamaCppEngine, method: str
) -> None:
    asked = {**THREE_SEEDED, "model": model_name, "extra_body": {"search": METHODS[method]}}
    server.fresh(engine)  # the stream below starts from the same engine state
    r = client.chat.completions.create(**asked)
    assert [c.index for c in r.choices] == [0, 1, 2]
    answers = [c.message.content for c in r.choices]
    assert all(answers) and len(set(answers)) > 1  # each choice has a seed of its own
    searches = [(c.model_extra or {})["search"] for c in r.choices]
    assert all(s["method"] == method for s in searches)
    assert r.usage.completion_tokens == sum(s["generated_tokens"] for s in searches)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.completion_tokens <= 3 * 48  # each choice keeps to the bound
    server.fresh(engine)
    content, finish, search, usage = streamed(client, **asked)
    assert [content[i] for i in range(3)] == answers  # seeded: the same, streamed or not
    assert [finish[i] for i in range(3)] == [c.finish_reason for c in r.choices]
    assert [search[i]["generated_tokens"] for i in range(3)] == [
        s["generated_tokens"] for s in searches
    ]
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens


def test_n_above_the_servers_cap_is_refused_naming_it(
    client: openai.OpenAI, model_name: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model_name, messages=QUESTION, n=9)
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "n"
    assert "cap of 8" in error["message"] and error["code"] == "over_server_cap"


def test_max_completion_tokens_bounds_the_whole_search_and_still_answers(
    client: openai.OpenAI, model_name: str
) -> None:
    """Every token the search generates counts; the best path found within the bound comes
    back with content, the search saying which budget ended it.  A story asked for cannot end
    within the 40 tokens that two branches share, so the bound is what ends the search; whether
    the chosen path itself ended (``stop``) or was cut (``length``) is the model's."""
    r = client.chat.completions.create(
        model=model_name,
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        seed=3,
        max_completion_tokens=40,
        extra_body={"search": {**TINY_SEARCH, "iterations": 8}},
    )
    search = (r.model_extra or {})["search"]
    assert r.usage.completion_tokens == search["generated_tokens"] <= 40
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert search["ended_by"] == "max_search_tokens"
    content_tokens = r.usage.completion_tokens - r.usage.completion_tokens_details.reasoning_tokens
    assert 0 < content_tokens < r.usage.completion_tokens  # the rest was hidden reasoning


def test_a_repeated_prompt_is_reported_as_cached(client: openai.OpenAI, model_name: str) -> None:
    asked: dict[str, Any] = {
        "model": f"{model_name}:none",
        "messages": [{"role": "user", "content": "Name a colour of the sky at dusk."}],
        "max_tokens": 4,
    }
    first = client.chat.completions.create(**asked)
    again = client.chat.completions.create(**asked)
    assert first.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens_details is not None
    cached = again.usage.prompt_tokens_details.cached_tokens or 0
    assert first.usage.prompt_tokens - 1 <= cached <= first.usage.prompt_tokens
