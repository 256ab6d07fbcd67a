"""Agent frameworks nobody here wrote, unchanged, against a live server on the default model:
the OpenAI Agents SDK runs a two-turn task with one function tool, and LangChain's
``ChatOpenAI.bind_tools`` gets the call back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI

from bench.server import live_server
from server.catalogue import DEFAULT

pytestmark = pytest.mark.real_model

QUESTION = "What's the weather like in Paris?"
REPORT = '{"temperature_c": 31, "sky": "clear"}'  # tools commonly answer in JSON


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with live_server(None) as base:
        yield f"{base}/v1"


def test_an_agents_sdk_agent_calls_its_tool_and_answers_with_the_result(base_url: str) -> None:
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
        model=OpenAIChatCompletionsModel(
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
