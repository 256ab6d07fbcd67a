"""``reasoning_effort`` (chat) and ``reasoning.effort`` (Responses) choose a search preset,
through the official client on a live server: the level's method and samples, overridden by the
model alias and by the request's own ``search`` fields.

A token budget buys whole answers (as many samples as fit it), so these requests leave the
answer unbounded, stop each sample at its first space and bound the search by a whole answer's
worth of tokens per sample: every sample of the preset is then drawn, and quickly."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from search.methods.sampling import WHOLE_ANSWER_TOKENS
from search.params import SearchParams
from search.presets import PRESETS, preset

QUESTION: list[Any] = [{"role": "user", "content": "What is 17*23?"}]
ROOMY = {"max_search_tokens": 8 * WHOLE_ANSWER_TOKENS}  # room for every sample of `medium`


def searched(
    client: openai.OpenAI, model: str, search: dict[str, Any] | None = None, **asked: Any
) -> dict[str, Any]:
    r = client.chat.completions.create(
        model=model,
        messages=QUESTION,
        stop=[" ", "\n"],
        seed=3,
        extra_body={"search": {**ROOMY, **(search or {})}},
        **asked,
    )
    assert r.choices[0].message.content is not None
    info: dict[str, Any] = (r.model_extra or {})["search"]
    return info


@pytest.mark.parametrize(("effort", "samples"), [("low", 4), ("medium", 8)])
def test_an_effort_level_runs_its_preset(
    client: openai.OpenAI, model_name: str, effort: str, samples: int
) -> None:
    info = searched(client, model_name, reasoning_effort=effort)
    assert info["method"] == "self_consistency"
    assert info["nodes"] == 1 + samples  # the root and one node per sampled answer


def test_effort_none_is_plain_generation(client: openai.OpenAI, model_name: str) -> None:
    assert searched(client, model_name, reasoning_effort="none")["method"] == "none"


def test_the_alias_and_the_search_object_override_the_preset(
    client: openai.OpenAI, model_name: str
) -> None:
    aliased = searched(client, f"{model_name}:none", reasoning_effort="high")
    assert aliased["method"] == "none"
    asked = searched(client, model_name, {"samples": 2}, reasoning_effort="low")
    assert (asked["method"], asked["nodes"]) == ("self_consistency", 3)


def test_responses_effort_means_the_same(client: openai.OpenAI, model_name: str) -> None:
    r = client.responses.create(
        model=model_name,
        input="What is 17*23?",
        reasoning={"effort": "low"},
        extra_body={"search": {"max_search_tokens": 4 * WHOLE_ANSWER_TOKENS}},
    )
    info = (r.model_extra or {})["search"]
    assert (info["method"], info["nodes"]) == ("self_consistency", 5)


def test_an_unknown_effort_is_a_400_naming_it(client: openai.OpenAI, model_name: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=model_name,
            messages=QUESTION,
            reasoning_effort="extreme",  # type: ignore[arg-type]
        )
    assert caught.value.body["param"] == "reasoning_effort"  # type: ignore[index]


@pytest.mark.parametrize("effort", list(PRESETS))
def test_every_preset_is_a_valid_search(effort: str) -> None:
    params = SearchParams(prompt_token_ids=(1,), **preset(effort))  # type: ignore[arg-type]
    assert params.method in ("none", "self_consistency")


def test_each_level_spends_at_least_the_one_before() -> None:
    samples = [dict(PRESETS[e]).get("samples", 1) for e in PRESETS]
    assert samples == sorted(samples)
    assert preset(None) == {}
