"""The answer's logprobs in OpenAI's shape, through the official openai client: one entry per
answer token, spelling the answer, each with its alternatives; the same streamed (in the
finish chunk) as in the JSON; for a search, the kept path's answer tokens."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionTokenLogprob

from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import TINY_SEARCH, LiveServer

ASK: Any = [{"role": "user", "content": "Name three colours."}]


def spelled(tokens: list[ChatCompletionTokenLogprob]) -> str:
    return b"".join(bytes(t.bytes or []) for t in tokens).decode()


def check_entries(tokens: list[ChatCompletionTokenLogprob], top: int, greedy: bool) -> None:
    for token in tokens:
        assert token.logprob <= 0 and len(token.top_logprobs) == top
        values = [t.logprob for t in token.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert token.logprob <= values[0] + 1e-6  # the best alternative is at least as likely
        if greedy:
            assert token.token == token.top_logprobs[0].token


def test_plain_sampling_returns_each_answer_tokens_logprob_streamed_or_not(
    client: openai.OpenAI, model_name: str, server: LiveServer, engine: LlamaCppEngine
) -> None:
    asked: dict[str, Any] = {
        "model": model_name,
        "messages": ASK,
        "max_tokens": 12,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 3,
        "extra_body": {"search": {"method": "none"}},
    }
    server.fresh(engine)
    r = client.chat.completions.create(**asked)
    choice = r.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert spelled(tokens) == choice.message.content
    assert r.usage is not None
    # no end-of-sequence token has a logprob entry: one fewer when the model ended
    ended = choice.finish_reason == "stop"
    assert len(tokens) == r.usage.completion_tokens - ended
    check_entries(tokens, 3, greedy=True)
    server.fresh(engine)
    stream = client.chat.completions.create(**asked, stream=True)
    streamed = [
        t
        for c in stream
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content or []
    ]
    assert [(t.token, t.top_logprobs[0].token) for t in streamed] == [
        (t.token, t.top_logprobs[0].token) for t in tokens
    ]


def test_a_searched_answer_carries_its_kept_paths_answer_tokens(
    client: openai.OpenAI, model_name: str
) -> None:
    for search in (TINY_SEARCH, {"method": "self_consistency", "samples": 3}):
        r = client.chat.completions.create(
            model=model_name,
            messages=ASK,
            max_tokens=48,
            seed=3,
            logprobs=True,
            top_logprobs=2,
            extra_body={"search": search},
        )
        choice = r.choices[0]
        assert choice.logprobs is not None and choice.logprobs.content
        assert spelled(choice.logprobs.content).strip() == (choice.message.content or "").strip()
        check_entries(choice.logprobs.content, 2, greedy=False)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        (
            {"logprobs": True, "top_logprobs": 8, "extra_body": {"search": TINY_SEARCH}},
            "top_logprobs",
        ),
    ],
)
def test_logprobs_a_search_cannot_give_are_a_400_naming_the_field(
    client: openai.OpenAI, model_name: str, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model_name, messages=ASK, max_tokens=4, **fields)
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == param
    r = client.chat.completions.create(
        model=model_name,
        messages=ASK,
        max_tokens=4,
        logprobs=True,
        top_logprobs=8,
        extra_body={"search": {"method": "none"}},
    )
    assert r.choices[0].logprobs and all(
        len(t.top_logprobs) == 8 for t in r.choices[0].logprobs.content or []
    )
