"""Structured outputs over the upstream engine: ponder's ``/v1/completions`` takes vLLM's
``structured_outputs.grammar`` (what the upstream engine sends), and a chat request to a ponder
whose engine is a fleet of ponders is held to its schema by every method, MCTS and beam
included (the fleet resumes the grammar inside a constrained path)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from server.engines.upstream_engine import UpstreamEngine
from tests.conftest import LiveServer
from tests.engines.test_constraints import JSON, SCHEMA
from tests.server.openai.test_structured import ASK, FORMAT, SEARCHES


def test_completions_hold_every_sample_to_a_grammar(http: httpx.Client, model_name: str) -> None:
    r = http.post(
        "/v1/completions",
        json={
            "model": model_name,
            "prompt": ["Pick a colour:", "A number:"],
            "max_tokens": 40,
            "n": 2,
            "seed": 4,
            "structured_outputs": {"grammar": JSON.grammar},
        },
    )
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert len(choices) == 4
    for choice in choices:
        jsonschema.validate(json.loads(choice["text"]), SCHEMA)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"structured_outputs": {"grammar": "start: %json {not json"}},
            "structured_outputs.grammar",
        ),
        # vLLM's other kinds: ponder takes only the grammar, and says so
        ({"structured_outputs": {"json": SCHEMA}}, "structured_outputs.grammar"),
        ({"constraint_done": 1}, "constraint_done"),
        (
            {"structured_outputs": {"grammar": JSON.grammar}, "constraint_done": 99},
            "constraint_done",
        ),
    ],
)
def test_completions_name_what_they_cannot_constrain(
    http: httpx.Client, model_name: str, extra: dict[str, Any], param: str
) -> None:
    body = {"model": model_name, "prompt": "Hi", "max_tokens": 4, **extra}
    r = http.post("/v1/completions", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert http.get("/health").status_code == 200


@pytest.fixture(scope="module")
def fleet_client(upstream_engine: UpstreamEngine) -> Iterator[openai.OpenAI]:
    with (
        LiveServer(upstream_engine) as front,
        openai.OpenAI(base_url=f"{front.url}/v1", api_key="none", max_retries=0) as client,
    ):
        yield client


@pytest.mark.parametrize("method", list(SEARCHES))
def test_every_method_over_a_fleet_answers_what_the_schema_allows(
    fleet_client: openai.OpenAI, upstream_engine: UpstreamEngine, method: str
) -> None:
    r = fleet_client.chat.completions.create(
        model=upstream_engine.model_name,
        messages=ASK,
        max_tokens=160,
        seed=3,
        response_format=FORMAT,  # type: ignore[arg-type]
        extra_body={"search": SEARCHES[method]},
    )
    answer = r.choices[0].message.content
    assert answer is not None
    jsonschema.validate(json.loads(answer), SCHEMA)
