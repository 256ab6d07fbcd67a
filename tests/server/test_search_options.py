"""The request's ``search`` object is generated from search's one declaration of each knob:
the schema a live server publishes offers exactly the registries' names, and each knob's
default, bounds and description come from ``SearchParams``."""

import re
from pathlib import Path
from typing import Any, get_args

import httpx

from search.methods import METHODS
from search.methods.sampling import WHOLE_ANSWER_TOKENS
from search.options import OPTIONS
from search.params import Granularity, SearchParams
from search.reward import REWARDS
from server.openai.protocol import SearchOptions, ServerSearchOptions
from tests.conftest import LiveServer

KNOBS_PAGE = Path(__file__).parents[2] / "docs" / "search-knobs.md"


def published(server: LiveServer) -> dict[str, Any]:
    """The ``search`` object's properties in the live server's ``/openapi.json``."""
    schema = httpx.get(f"{server.url}/openapi.json").json()
    properties: dict[str, Any] = schema["components"]["schemas"]["SearchOptions"]["properties"]
    return properties


def test_the_schema_offers_exactly_the_registries_names(server: LiveServer) -> None:
    properties = published(server)
    assert properties["method"]["enum"] == list(METHODS)
    assert properties["reward"]["enum"] == list(REWARDS)
    assert properties["granularity"]["enum"] == list(get_args(Granularity))


def test_every_knob_is_published_with_its_default_bounds_and_description(
    server: LiveServer,
) -> None:
    properties = published(server)
    assert set(properties) == {o.name for o in OPTIONS} | set(ServerSearchOptions.model_fields)
    for option in OPTIONS:
        published_option = properties[option.name]
        assert published_option["description"] == option.description
        assert published_option.get("default") == option.default, option.name
    assert properties["iterations"]["maximum"] == 10_000
    assert properties["max_seconds"]["anyOf"][0]["exclusiveMinimum"] == 0
    assert all(p.get("description") for p in properties.values())


def test_a_request_that_sets_nothing_searches_with_search_params_defaults() -> None:
    options = SearchOptions().model_dump(include={o.name for o in OPTIONS})
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
