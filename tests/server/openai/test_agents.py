"""Agent frameworks nobody here wrote, unchanged, against a live server on the default model:
the OpenAI Agents SDK runs a two-turn task with one function tool and returns a typed output,
LangChain's ``ChatOpenAI.bind_tools`` gets the call back and ``with_structured_output`` a typed
answer (by JSON schema and by a forced call), and the openai client's ``parse()`` a pydantic
object."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel

from server.catalogue import DEFAULT
from server.local import live_server

pytestmark = pytest.mark.real_model

QUESTION = "What's the weather like in Paris?"
REPORT = '{"temperature_c": 31, "sky": "clear"}'  # tools commonly answer in JSON
CAPITAL = "What is the capital of France?"
MODELS: Any = {"chat_completions": OpenAIChatCompletionsModel, "responses": OpenAIResponsesModel}


class City(BaseModel):
    """A typed answer, as agents declare them."""

    name: str
    country: str


def is_city(answer: object) -> bool:
    """A typed answer with both fields written (what the 0.5B writes in them is its own
    business: forced into a call, it has named France as the capital of France)."""
    return isinstance(answer, City) and bool(answer.name.strip() and answer.country.strip())


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with live_server(None) as base:
        yield f"{base}/v1"


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_an_agents_sdk_agent_calls_its_tool_and_answers_with_the_result(
    base_url: str, api: str
) -> None:
    """Over chat completions and over the Responses API (the SDK's default model)."""
    set_tracing_disabled(True)  # the SDK would upload traces to OpenAI
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        asked.append(city)
        return REPORT

    agent = Agent(
        name="weather",
        instructions="Answer with the help of your tools.",
        tools=[get_weather],
        model=MODELS[api](
            model=DEFAULT, openai_client=AsyncOpenAI(base_url=base_url, api_key="none")
        ),
        model_settings=ModelSettings(
            temperature=0, max_tokens=200, extra_body={"search": {"method": "none"}}
        ),
    )
    result = Runner.run_sync(agent, QUESTION, max_turns=3)
    assert [city.lower() for city in asked] == ["paris"]
    assert "31" in str(result.final_output)


def test_langchain_bind_tools_gets_the_call(base_url: str) -> None:
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return REPORT

    chat = ChatOpenAI(
        model=DEFAULT, base_url=base_url, api_key="none", temperature=0, max_tokens=200
    )
    message = chat.bind_tools([get_weather]).invoke(QUESTION)
    assert [(c["name"], c["args"]["city"].lower()) for c in message.tool_calls] == [
        ("get_weather", "paris")
    ]


def test_the_openai_clients_parse_returns_the_pydantic_object(base_url: str) -> None:
    with OpenAI(base_url=base_url, api_key="none") as client:
        r = client.chat.completions.parse(
            model=DEFAULT,
            messages=[{"role": "user", "content": CAPITAL}],
            response_format=City,
            temperature=0,
            max_tokens=100,
        )
    assert r.choices[0].finish_reason == "stop"
    assert is_city(r.choices[0].message.parsed)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output_gets_the_typed_answer(base_url: str, method: str) -> None:
    """By ``response_format`` (``json_schema``) and by a call forced with a named
    ``tool_choice`` (``function_calling``)."""
    chat = ChatOpenAI(
        model=DEFAULT, base_url=base_url, api_key="none", temperature=0, max_tokens=100
    )
    assert is_city(chat.with_structured_output(City, method=method).invoke(CAPITAL))


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_an_agents_sdk_agent_returns_its_output_type(base_url: str, api: str) -> None:
    set_tracing_disabled(True)
    agent = Agent(
        name="geography",
        instructions="Answer the question.",
        output_type=City,
        model=MODELS[api](
            model=DEFAULT, openai_client=AsyncOpenAI(base_url=base_url, api_key="none")
        ),
        model_settings=ModelSettings(temperature=0, max_tokens=100),
    )
    assert is_city(Runner.run_sync(agent, CAPITAL, max_turns=1).final_output)
