"""The request's ``search`` object, written out in server/openai/search_options.py, against
the search's own declaration of each knob (``SearchParams``' ``option`` fields): the same
fields, defaults, bounds and registry names, every knob mapped to its parameter, and the schema
a live server publishes."""

import dataclasses
import re
from pathlib import Path
from typing import Any, get_args

import annotated_types
import httpx
import pytest

from search.methods import METHODS
from search.methods.sampling import WHOLE_ANSWER_TOKENS
from search.params import Granularity, SearchConfigError, SearchParams, Voting
from search.reward import REWARDS
from server.openai.search_options import Method, Reward, SearchOptions
from tests.conftest import LiveServer

KNOBS_PAGE = Path(__file__).parents[2] / "docs" / "search-knobs.md"
SERVER_ONLY = {"answer_markers", "return_tree", "progress", "verifier"}  # how it answers
KNOBS = {f.name: f for f in dataclasses.fields(SearchParams) if "bounds" in f.metadata}
BOUNDS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le"}


def published(server: LiveServer) -> dict[str, Any]:
    """The ``search`` object's properties in the live server's ``/openapi.json``."""
    schema = httpx.get(f"{server.url}/openapi.json").json()
    properties: dict[str, Any] = schema["components"]["schemas"]["SearchOptions"]["properties"]
    return properties


def test_the_choices_are_the_registries_names() -> None:
    assert get_args(Method) == tuple(METHODS)
    assert get_args(Reward) == tuple(REWARDS)
    fields = SearchOptions.model_fields
    assert fields["granularity"].annotation == Granularity
    assert fields["voting"].annotation == Voting


def test_every_knob_has_the_searchs_default_and_bounds() -> None:
    assert set(SearchOptions.model_fields) - SERVER_ONLY == set(KNOBS)
    for name, knob in KNOBS.items():
        field = SearchOptions.model_fields[name]
        assert field.default == knob.default, name
        bounds: dict[str, float] = {}
        for rule in field.metadata:
            if isinstance(rule, annotated_types.MinLen):
                bounds["min_length"] = rule.min_length
            else:
                kind = BOUNDS[type(rule)]
                bounds[kind] = getattr(rule, kind)
        assert bounds == knob.metadata["bounds"], name
        assert field.description and len(field.description) > 10, name


def test_every_knob_reaches_its_search_parameter() -> None:
    # a value other than the default for each knob, each within its bounds
    changed = {
        "method": "beam",
        "granularity": "mini_step",
        "step_tokens": 7,
        "step_separator": "\n",
        "iterations": 5,
        "branching": 3,
        "exploration": 0.5,
        "max_depth": 9,
        "rollout_tokens": 99,
        "max_search_tokens": 999,
        "max_seconds": 12.5,
        "reflection": True,
        "reflection_threshold": 0.25,
        "max_reflections": 2,
        "reward": "tail",
        "window": 16,
        "samples": 6,
        "voting": "filtered",
        "keep": 0.75,
        "halt_keep": 0.9,
        "warmup": 3,
        "beam_width": 3,
        "parallel": 2,
        "vote": True,
        "consensus": 0.8,
    }
    assert set(changed) == set(KNOBS)
    assert all(changed[name] != knob.default for name, knob in KNOBS.items())
    params = SearchOptions(**changed).search_params(
        prompt_token_ids=(1, 2),
        max_tokens=50,
        max_search_tokens=999,
        answer_markers=("Answer:",),
        starts_in_reasoning=False,
        drafts=True,
        temperature=0.5,
        top_p=0.9,
        seed=4,
        stop=("x",),
        logprobs=5,
        constraint=None,
        verifier=None,
    )
    assert {name: getattr(params, name) for name in KNOBS} == changed
    assert (params.max_tokens, params.answer_markers, params.seed) == (50, ("Answer:",), 4)


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("iterations", 0),
        ("keep", 0.0),
        ("halt_keep", 1.5),
        ("warmup", 0),
        ("max_seconds", -1.0),
        ("step_separator", ""),
        ("parallel", 65),
    ],
)
def test_a_search_built_in_process_checks_the_same_bounds(knob: str, value: object) -> None:
    with pytest.raises(SearchConfigError) as refused:
        SearchParams(prompt_token_ids=(1,), **{knob: value})  # type: ignore[arg-type]
    assert refused.value.param == knob
    with pytest.raises(ValueError, match=knob):
        SearchOptions(**{knob: value})


def test_every_knob_is_published_with_its_default_bounds_and_description(
    server: LiveServer,
) -> None:
    properties = published(server)
    assert set(properties) == set(SearchOptions.model_fields)
    for name, field in SearchOptions.model_fields.items():
        assert properties[name]["description"] == field.description
        assert properties[name].get("default") == field.default, name
    assert properties["iterations"]["maximum"] == 10_000
    assert properties["max_seconds"]["anyOf"][0]["exclusiveMinimum"] == 0


def test_a_request_that_sets_nothing_searches_with_search_params_defaults() -> None:
    options = SearchOptions().model_dump(include=set(KNOBS))
    prompt = (1, 2, 3)
    assert SearchParams(prompt_token_ids=prompt, **options) == SearchParams(prompt)


def test_the_docs_document_every_knob() -> None:
    table = KNOBS_PAGE.read_text()
    documented = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    assert sorted(documented) == sorted(SearchOptions.model_fields)


def test_a_request_that_names_no_method_gets_self_consistency(
    server: LiveServer, model_name: str
) -> None:
    # the method measured best per token on the default model (docs/accuracy.md, "What the
    # defaults are and why"): 4 whole answers and their majority, as many as the budget has room for
    messages = [{"role": "user", "content": "Hi"}]
    roomy = {"stop": [" ", "\n"], "search": {"max_search_tokens": 4 * WHOLE_ANSWER_TOKENS}}
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": model_name, "messages": messages, **roomy},
        timeout=600,
    )
    assert r.status_code == 200, r.text
    search = r.json()["search"]
    assert (search["method"], search["iterations"]) == ("self_consistency", 4)
    assert r.json()["usage"]["completion_tokens"] <= 4 * WHOLE_ANSWER_TOKENS
    tight = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": model_name, "messages": messages, "max_tokens": 8},
        timeout=600,
    )
    assert tight.status_code == 200, tight.text
    assert 1 <= tight.json()["search"]["iterations"] <= 4  # whole answers that fit in 8
    assert tight.json()["usage"]["completion_tokens"] <= 8  # max_tokens bounds every sample
