"""``--adaptive-parallel`` (on by default): a search that has the engine to itself expands a
round's iterations together; one that shares it, or whose request chose, keeps its ``parallel``;
``--no-adaptive-parallel`` keeps every search sequential."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from server.args import ServerArgs
from server.cli import parse_args
from server.engines.base import ServingEngine
from tests.conftest import TINY_SEARCH, LiveServer

QUESTION = [{"role": "user", "content": "What is 17*23?"}]
WIDE = {**TINY_SEARCH, "iterations": 4}  # after the root's expansion, 3 iterations to share


@pytest.fixture(scope="module")
def adaptive(engine: ServingEngine) -> Iterator[openai.OpenAI]:
    with (
        LiveServer(engine, ServerArgs(adaptive_parallel=True)) as live,
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0) as client,
    ):
        yield client


def searched(client: openai.OpenAI, model: str, **request: Any) -> list[dict[str, Any]]:
    """The ``search`` object of every choice of one answer."""
    search = {**WIDE, **request.pop("search", {})}
    r = client.chat.completions.create(
        model=model, messages=QUESTION, max_tokens=64, extra_body={"search": search}, **request
    )
    top = (r.model_extra or {})["search"]  # choice 0's; with n > 1 each choice has its own
    return [(c.model_extra or {}).get("search", top) for c in r.choices]


def test_a_search_alone_expands_its_rounds_iterations_together(
    adaptive: openai.OpenAI, model_name: str
) -> None:
    (alone,) = searched(adaptive, model_name, seed=1)
    assert alone["parallel"] == WIDE["iterations"]
    assert alone["iterations"] >= WIDE["iterations"] and alone["nodes"] > 1 + WIDE["branching"]
    # at most 64 rows in one engine call: 16 iterations of 8 branches take 8 leaves at once
    (wide,) = searched(
        adaptive, model_name, search={"iterations": 16, "branching": 8, "max_search_tokens": 256}
    )
    assert wide["parallel"] == 8


def test_a_search_keeps_its_parallel_when_it_asks_shares_or_is_not_mcts(
    adaptive: openai.OpenAI, model_name: str
) -> None:
    assert searched(adaptive, model_name, search={"parallel": 1})[0]["parallel"] == 1
    assert [s["parallel"] for s in searched(adaptive, model_name, n=2)] == [1, 1]
    sampled = searched(adaptive, model_name, search={"method": "self_consistency"})
    assert sampled[0]["parallel"] == 1
    # a search that another one is running beside: the other is held open mid-stream
    held = adaptive.chat.completions.create(
        model=model_name,
        messages=QUESTION,
        stream=True,
        max_tokens=4096,
        extra_body={"search": {**WIDE, "iterations": 1000, "max_search_tokens": 100_000}},
    )
    with held:
        next(iter(held))  # the first chunk: that search has its slot and runs
        (beside,) = searched(adaptive, model_name, seed=2)
        assert beside["parallel"] == 1


def test_it_is_on_by_default_and_off_with_its_negation(
    engine: ServingEngine, model_name: str
) -> None:
    assert ServerArgs().adaptive_parallel
    off = parse_args(["serve", "--no-adaptive-parallel"])
    assert not off.adaptive_parallel
    with (
        LiveServer(engine, off) as live,
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0) as client,
    ):
        assert searched(client, model_name, seed=1)[0]["parallel"] == 1
