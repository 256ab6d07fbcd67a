"""Constrained decoding on the real test model, in the local engines and through an upstream
ponder (the grammar sent as vLLM's ``structured_outputs.grammar``): what a constrained request
generates is always what its grammar allows, and the logprobs stay the model's own."""

from __future__ import annotations

import json

import jsonschema
import llguidance
import pytest

from search.engine import Constraint, GenerationRequest, RequestRejected
from server.engines.base import ServingEngine
from tests.engines.test_contract import (
    TOLERANCE,
    empty_cache,
    generate,
    prompt,
    reference_logprobs,
)

# every value bounded: the grammar itself ends the text within a few tokens
SCHEMA = {
    "type": "object",
    "properties": {
        "colour": {"enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
        "sure": {"type": "boolean"},
    },
    "required": ["colour", "count", "sure"],
    "additionalProperties": False,
}
SEPARATORS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
JSON = Constraint(llguidance.LLMatcher.grammar_from_json_schema(SCHEMA, defaults=SEPARATORS))
ROOM = 40  # tokens: the longest text SCHEMA allows is about 20


@pytest.fixture(params=["llamacpp", "transformers"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


NAMES = {"llamacpp": "engine", "transformers": "transformers_engine", "upstream": "upstream_engine"}


@pytest.fixture
def local(kind: str, request: pytest.FixtureRequest) -> ServingEngine:
    engine: ServingEngine = request.getfixturevalue(NAMES[kind])
    return engine


@pytest.fixture(params=list(NAMES))
def constrains(request: pytest.FixtureRequest) -> ServingEngine:
    """Every engine that constrains its output here (vLLM's engine joins on a GPU)."""
    engine: ServingEngine = request.getfixturevalue(NAMES[request.param])
    return engine


def test_every_sample_is_what_the_schema_allows(constrains: ServingEngine) -> None:
    local = constrains
    ids = prompt(local, "Tell me a story about a cat.")
    request = GenerationRequest(ids, max_tokens=ROOM, n=6, temperature=1.5, seed=5, constraint=JSON)
    outs, [free] = generate(local, request, GenerationRequest(ids, max_tokens=8, seed=1))
    assert free.token_ids  # a free request of the same call is not held to the grammar
    for out in outs:
        assert out.finish_reason == "stop"
        assert out.stop_reason in local.tokenizer.eos_token_ids
        jsonschema.validate(json.loads(out.text), SCHEMA)


def test_greedy_constrained_decoding_is_reproducible(local: ServingEngine) -> None:
    ids = prompt(local, "Pick a colour.")
    request = GenerationRequest(ids, max_tokens=ROOM, temperature=0.0, constraint=JSON)
    [[first]], [[second]] = generate(local, request), generate(local, request)
    assert first.token_ids == second.token_ids
    jsonschema.validate(json.loads(first.text), SCHEMA)


def test_the_logprobs_are_the_models_own(local: ServingEngine, kind: str) -> None:
    """A forced token keeps the probability the model gave it, before the mask."""
    ids = prompt(local, "Say hello.")
    empty_cache(local)
    request = GenerationRequest(ids, max_tokens=ROOM, seed=2, logprobs=3, constraint=JSON)
    [[out]] = generate(local, request)
    reference = reference_logprobs(local, list(ids) + list(out.token_ids))
    for step, token in enumerate(out.logprobs):
        row = reference[len(ids) - 1 + step]
        assert token.logprob == pytest.approx(row[token.token_id], abs=TOLERANCE[kind])
        # the top-k is the model's too: its best is the row's best, allowed or not
        assert token.top[0][1] == pytest.approx(row.max(), abs=TOLERANCE[kind])


def test_a_path_already_in_the_prompt_is_continued_within_the_grammar(
    constrains: ServingEngine,
) -> None:
    """A search's path is part of the constrained text: the engine resumes the grammar after
    it, so path and continuation together are what the schema allows."""
    local = constrains
    head = '{"colour": "blue", "count": '
    done = tuple(local.tokenizer.encode(head))
    ids = prompt(local, "Pick a colour.") + done
    constraint = Constraint(JSON.grammar, done=done)
    [outs] = generate(
        local, GenerationRequest(ids, max_tokens=ROOM, n=3, seed=9, constraint=constraint)
    )
    for out in outs:
        whole = json.loads(head + out.text)
        jsonschema.validate(whole, SCHEMA)
        assert whole["colour"] == "blue"


def test_a_constraint_that_does_not_compile_is_the_callers_error(
    constrains: ServingEngine,
) -> None:
    local = constrains
    ids = prompt(local, "Hi.")
    for constraint in (
        Constraint("start: %json {not json"),
        Constraint(JSON.grammar, done=tuple(local.tokenizer.encode("[1, 2]"))),
    ):
        with pytest.raises(RequestRejected) as caught:
            generate(local, GenerationRequest(ids, max_tokens=4, constraint=constraint))
        assert caught.value.param == "constraint"
    assert local.health() is None
    [[out]] = generate(local, GenerationRequest(ids, max_tokens=4, seed=1))
    assert out.token_ids


def test_a_fleet_that_holds_a_call_from_its_start_refuses_to_continue_a_path(
    upstream_engine: ServingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vLLM fleet holds each call to the grammar from the call's first token: a call from a
    path's start is constrained, one continuing a constrained path is refused rather than
    restarted.  (No vLLM runs here: the ponder fleet is taken for one, as a card not owned by
    ponder would make the engine do.)"""
    monkeypatch.setattr(upstream_engine, "_resumes", False)
    ids = prompt(upstream_engine, "Pick a colour.")
    [[out]] = generate(
        upstream_engine, GenerationRequest(ids, max_tokens=ROOM, seed=3, constraint=JSON)
    )
    jsonschema.validate(json.loads(out.text), SCHEMA)
    done = tuple(upstream_engine.tokenizer.encode('{"colour": "red", '))
    continued = GenerationRequest(
        ids + done, max_tokens=ROOM, constraint=Constraint(JSON.grammar, done)
    )
    with pytest.raises(RequestRejected) as caught:
        generate(upstream_engine, continued)
    assert caught.value.param == "constraint"
    assert upstream_engine.health() is None
