"""Reasoning-format profiles through the official openai client: the prompt the engine gets (seen
in ``usage.prompt_tokens``, against the engine's own chat template), the split of what the model
writes, and ``search.reasoning_format`` saying which profile ran."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from transformers import AutoTokenizer

from search.formats import (
    AUTO_FALLBACK,
    MARCO_O1_SYSTEM_PROMPT,
    PROFILES,
    THINK_SYSTEM_PROMPT,
    with_system_prompt,
)
from server.args import ServerArgs
from server.cli import parse_args
from server.engines.base import ServingEngine
from server.engines.hf_tokenizer import HFTokenizer
from server.model_source import resolve
from tests.conftest import TEST_MODEL, LiveServer

USER = [{"role": "user", "content": "What is 17*23?"}]
OWN_SYSTEM = {"role": "system", "content": "Answer in one word."}
PLAIN = {"method": "none", "step_tokens": 4}


def ask(
    client: openai.OpenAI,
    model: str,
    messages: list[Any],
    reasoning_format: str | None = None,
    max_tokens: int = 1,
) -> tuple[int, str, Any]:
    """A short plain generation: its prompt tokens, its profile, and its choice."""
    extra: dict[str, Any] = {"search": PLAIN}
    if reasoning_format is not None:
        extra["reasoning_format"] = reasoning_format
    r = client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0, extra_body=extra
    )
    assert r.usage is not None
    return r.usage.prompt_tokens, (r.model_extra or {})["search"]["reasoning_format"], r.choices[0]


def prompt_tokens(engine: ServingEngine, messages: list[dict[str, str]]) -> int:
    return len(engine.tokenizer.apply_chat_template(messages))


def with_system(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": text}, *USER]


def test_marco_puts_marco_o1s_system_prompt_first_and_plain_adds_none(
    client: openai.OpenAI, model_name: str, engine: ServingEngine
) -> None:
    marco = prompt_tokens(engine, with_system(MARCO_O1_SYSTEM_PROMPT))
    plain = prompt_tokens(engine, USER)
    assert marco != plain
    assert ask(client, model_name, USER, "marco")[:2] == (marco, "marco")
    assert ask(client, model_name, USER, "plain")[:2] == (plain, "plain")
    think = prompt_tokens(engine, with_system(THINK_SYSTEM_PROMPT))
    assert ask(client, model_name, USER, "think")[:2] == (think, "think")


def test_the_clients_system_or_developer_message_wins(
    client: openai.OpenAI, model_name: str, engine: ServingEngine
) -> None:
    own = prompt_tokens(engine, [OWN_SYSTEM, *USER])
    assert ask(client, model_name, [OWN_SYSTEM, *USER], "marco")[:2] == (own, "marco")
    developer = {**OWN_SYSTEM, "role": "developer"}
    assert ask(client, model_name, [developer, *USER], "think")[:2] == (own, "think")


def test_auto_on_a_template_that_does_not_think_is_the_fallback(
    client: openai.OpenAI, model_name: str, engine: ServingEngine
) -> None:
    fallback = prompt_tokens(engine, with_system_prompt(USER, PROFILES[AUTO_FALLBACK]))
    # the server's default is auto
    assert ask(client, model_name, USER)[:2] == (fallback, AUTO_FALLBACK)


def test_the_server_flag_applies_unless_the_request_names_a_format(
    engine: ServingEngine, model_name: str
) -> None:
    with (
        LiveServer(engine, ServerArgs(reasoning_format="marco")) as live,
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0) as client,
    ):
        marco = prompt_tokens(engine, with_system(MARCO_O1_SYSTEM_PROMPT))
        assert ask(client, model_name, USER)[:2] == (marco, "marco")
        assert ask(client, model_name, USER, "plain")[:2] == (prompt_tokens(engine, USER), "plain")
        stream = client.chat.completions.create(
            model=model_name,
            messages=USER,
            max_tokens=1,
            stream=True,
            extra_body={"search": PLAIN, "reasoning_format": "think"},
        )
        last = [chunk for chunk in stream if chunk.choices and chunk.choices[0].finish_reason]
        assert (last[0].model_extra or {})["search"]["reasoning_format"] == "think"


def test_the_flag_and_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_args(["serve"]).reasoning_format == "auto"
    assert parse_args(["serve", "--reasoning-format", "marco"]).reasoning_format == "marco"
    monkeypatch.setenv("PONDER_REASONING_FORMAT", "think")
    assert parse_args(["serve"]).reasoning_format == "think"


def test_an_unknown_format_is_a_400_naming_it(http: httpx.Client, model_name: str) -> None:
    body = {"model": model_name, "messages": USER, "reasoning_format": "o1"}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == "reasoning_format"
    assert "reasoning_format" in error["message"]


class ThinkingTemplate:
    """The session's engine serving the same weights under a chat template that opens a
    ``<think>`` block in its generation prompt, as R1-distilled models' templates do."""

    def __init__(self, engine: ServingEngine) -> None:
        self._engine = engine
        hf = AutoTokenizer.from_pretrained(resolve(TEST_MODEL).tokenizer_folder())
        hf.chat_template = hf.chat_template.replace(
            "'<|im_start|>assistant\n'", "'<|im_start|>assistant\n<think>\n'"
        )
        self.tokenizer = HFTokenizer(hf, engine.tokenizer.eos_token_ids)
        assert "<think>" in self.tokenizer.chat_template

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


@pytest.fixture(scope="module")
def thinking(engine: ServingEngine) -> Iterator[tuple[openai.OpenAI, ThinkingTemplate]]:
    wrapped = ThinkingTemplate(engine)
    with (
        LiveServer(wrapped) as live,  # type: ignore[arg-type]
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0) as client,
    ):
        yield client, wrapped


def test_on_a_thinking_template_auto_is_think_and_adds_no_prompt(
    thinking: tuple[openai.OpenAI, ThinkingTemplate], model_name: str
) -> None:
    client, wrapped = thinking
    own = len(wrapped.tokenizer.apply_chat_template(USER))
    tokens, profile, choice = ask(client, model_name, USER, max_tokens=4)
    assert (tokens, profile) == (own, "think")
    # the template opened the block: until </think>, all the model writes is reasoning
    assert (choice.message.model_extra or {})["reasoning_content"]
    assert not choice.message.content
    # plain, on the same prompt, keeps today's rule: text that opens with no tag is the answer
    tokens, profile, choice = ask(client, model_name, USER, "plain", max_tokens=4)
    assert (tokens, profile) == (own, "plain")
    assert choice.message.content


def test_the_requests_answer_markers_override_the_profiles(
    thinking: tuple[openai.OpenAI, ThinkingTemplate], model_name: str
) -> None:
    client, _ = thinking
    # an empty marker matches at the very start: all the model writes is the answer
    r = client.chat.completions.create(
        model=model_name,
        messages=USER,
        max_tokens=4,
        temperature=0,
        extra_body={"search": {**PLAIN, "answer_markers": [""]}},
    )
    assert (r.model_extra or {})["search"]["reasoning_format"] == "think"
    assert r.choices[0].message.content
    assert not (r.choices[0].message.model_extra or {}).get("reasoning_content")
