"""A llama.cpp KV cache too small for every call in flight: the newest call is preempted and
recomputed once an older one finishes, so every call completes; a call too big for the whole
cache fails alone, with a clear message, and the engine goes on serving."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from search.engine import Completion, GenerationRequest
from server.engines.llamacpp_engine import LlamaCppEngine
from server.model_source import resolve
from tests.engines.test_contract import TOLERANCE, assert_same_greedy

CELLS = 256


@pytest.fixture(scope="module")
def small() -> Iterator[LlamaCppEngine]:
    """An engine whose KV cache holds one call of the size below, not two."""
    engine = LlamaCppEngine(resolve(None), kv_cache_tokens=CELLS, prefix_cache_tokens=0)
    yield engine
    engine.close()


def story(engine: LlamaCppEngine, n: int, max_tokens: int) -> GenerationRequest:
    """``n`` samples of a long story: prompt cells shared, each sample's tokens its own."""
    text = "Write a very long story about a lighthouse keeper and the sea."
    prompt = tuple(engine.tokenizer.apply_chat_template([{"role": "user", "content": text}]))
    return GenerationRequest(prompt, max_tokens=max_tokens, n=n, temperature=0)


def test_calls_that_do_not_fit_together_all_complete(small: LlamaCppEngine) -> None:
    request = story(small, n=2, max_tokens=80)
    [alone] = asyncio.run(small.generate([request]))
    assert sum(len(c.token_ids) for c in alone) > CELLS // 2  # two of these cannot fit at once

    async def three_at_once() -> list[list[list[Completion]]]:
        return list(await asyncio.gather(*(small.generate([request]) for _ in range(3))))

    before = small.stats.preemptions
    results = asyncio.run(three_at_once())
    assert small.stats.preemptions > before
    for [completions] in results:  # what each would have got alone (see the contract's TOLERANCE)
        assert len(completions) == 2
        for completion in completions:
            assert_same_greedy(completion, alone[0], TOLERANCE["llamacpp"])
    assert small.health() is None and small.stats.requests_in_flight == 0


def test_a_call_too_big_for_the_cache_fails_alone(small: LlamaCppEngine) -> None:
    with pytest.raises(ValueError, match="--kv-cache-tokens"):
        asyncio.run(small.generate([story(small, n=4, max_tokens=400)]))
    [[after]] = asyncio.run(small.generate([story(small, n=1, max_tokens=4)]))
    assert len(after.token_ids) == 4
