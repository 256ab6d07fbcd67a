"""Sampling methods under a token budget: waves of whole answers, and cut samples that vote only
when nothing else ended (scripted engine: the arithmetic of the waves)."""

from __future__ import annotations

import asyncio

import pytest

from search import AnswerDelta, Finished, SearchParams, run_search
from search.events import SearchEvent, SearchResult
from search.methods.sampling import WHOLE_ANSWER_TOKENS, next_wave
from tests.scripted import CharTokenizer, ScriptedEngine, scored

PROMPT = tuple(CharTokenizer().encode("Q? "))


def run(engine: ScriptedEngine, **overrides: object) -> tuple[str, SearchResult]:
    options: dict[str, object] = {"prompt_token_ids": PROMPT, "seed": 3}
    options.update(overrides)

    async def collect() -> list[SearchEvent]:
        return [e async for e in run_search(SearchParams(**options), engine)]  # type: ignore[arg-type]

    events = asyncio.run(collect())
    assert isinstance(events[-1], Finished)
    return "".join(e.text for e in events if isinstance(e, AnswerDelta)), events[-1].result


@pytest.mark.parametrize(
    ("samples", "remaining", "max_tokens", "longest", "wave"),
    [
        (4, 16384, 32000, None, 4),  # the default budget: one wave of every sample
        (4, 512, 512, None, 1),  # max_tokens 512: one whole answer first, not four cut ones
        (4, 2048, 2048, None, 2),  # room for two answers of WHOLE_ANSWER_TOKENS
        (3, 300, 512, 100, 3),  # three more answers as long as the longest fit
        (3, 250, 512, 100, 2),
        (3, 99, 512, 100, 0),  # not even one: stop
        (4, 0, 512, None, 0),  # nothing left to spend
        (4, 5, 512, None, 1),  # nothing known yet: try one with what is left
        (0, 16384, 10, None, 0),  # every sample drawn, though none ended: stop
    ],
)
def test_a_wave_draws_as_many_whole_answers_as_fit(
    samples: int, remaining: int, max_tokens: int, longest: int | None, wave: int
) -> None:
    assert next_wave(samples, remaining, max_tokens, longest) == wave


def test_a_tight_budget_buys_whole_answers_in_waves() -> None:
    """``max_tokens`` 60 for 4 samples: not four samples cut at 15 tokens, but a whole answer,
    then as many more as the rest fits; every token stays within the bound."""
    answer = "so 7 is it"  # 10 characters and the end-of-text token: 11 tokens
    engine = ScriptedEngine([scored(answer, 0.8) for _ in range(8)])
    text, result = run(engine, method="self_consistency", max_tokens=60, max_search_tokens=60)
    assert text == answer and result.finish_reason == "stop"
    # first a wave of one with the whole budget, then 49 tokens left: 4 answers of 11 would fit,
    # 3 samples are left
    assert [(r.n, r.max_tokens) for r in engine.requests] == [(1, 60), (3, 16)]
    assert result.iterations == 4 and result.generated_tokens == 4 * 11 <= 60


def test_without_a_bound_every_sample_is_one_engine_call() -> None:
    engine = ScriptedEngine([scored("so 7", 0.8) for _ in range(4)])
    run(engine, method="self_consistency", max_tokens=32000, max_search_tokens=16384)
    assert [(r.n, r.max_tokens) for r in engine.requests] == [(4, 4096)]
    assert WHOLE_ANSWER_TOKENS <= 16384 // 4


def test_a_cut_sample_votes_only_when_nothing_else_ended() -> None:
    # two cut samples agree on 9 (their last number), one whole answer says 7: 7 wins
    cut = scored("so 9 and 9", 0.9, eos=False)
    engine = ScriptedEngine([cut, cut, scored("so 7", 0.5)])
    text, result = run(engine, method="self_consistency", samples=3, max_tokens=10)
    assert text == "so 7" and result.finish_reason == "stop"
    # none ended: the cut samples vote among themselves
    engine = ScriptedEngine([cut, scored("so 8 and 8", 0.4, eos=False)])
    text, result = run(engine, method="self_consistency", samples=2, max_tokens=10)
    assert text == "so 9 and 9"
    assert (result.finish_reason, result.ended_by) == ("length", "max_tokens")


def test_a_sample_cut_by_the_search_budget_says_so() -> None:
    engine = ScriptedEngine([scored("x" * 40, 0.8)])
    _, result = run(engine, method="best_of_n", max_tokens=512, max_search_tokens=20)
    assert (result.finish_reason, result.ended_by) == ("length", "max_search_tokens")
    assert result.generated_tokens == 20


def test_samples_that_lose_confidence_stop_and_do_not_vote() -> None:
    """DeepConf online on an engine that cannot stop a sample (as vLLM or an upstream): two
    warm-up samples drawn whole set the bar between their lowest windows (``halt_keep`` 0.5);
    the three later ones, less confident from their first window, are cut there by the same
    rule and state no answer, so the warm-up's 7 wins where 9 would have won 3 to 2."""
    later = [scored("so 9 is it", 0.3) for _ in range(3)]
    engine = ScriptedEngine([scored("so 7 is it", 0.9), scored("so 7 is it", 0.8), *later])
    options = {"samples": 5, "warmup": 2, "halt_keep": 0.5, "window": 4}
    text, result = run(engine, method="self_consistency", **options)
    assert text == "so 7 is it" and result.finish_reason == "stop"
    assert [(r.n, r.halt is None) for r in engine.requests] == [(2, True), (3, False)]
    samples = [node for node in result.tree if node.parent is not None]
    halted = [node.tokens for node in samples if not node.terminal]
    assert len(samples) == 5 and halted == [4, 4, 4]  # the first window fell short
    assert result.iterations == 5 and result.generated_tokens == 5 * 11  # it generated them
    # unhalted, the later samples outvote the warm-up
    engine = ScriptedEngine([scored("so 7 is it", 0.9), scored("so 7 is it", 0.8), *later])
    text, _ = run(engine, method="self_consistency", samples=5)
    assert text == "so 9 is it"
