"""A llama.cpp KV cache too small for every call in flight: the newest call is preempted and
recomputed once an older one finishes, so every call completes; a call too big for the whole
cache is refused alone, with a clear message (a 400 over HTTP), and the engine goes on serving
and stays healthy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from search.engine import Completion, GenerationRequest, RequestRejected
from server.engines.llamacpp.engine import LlamaCppEngine
from server.model_source import resolve
from tests.conftest import TEST_MODEL, LiveServer
from tests.engines.test_contract import TOLERANCE, assert_same_greedy

CELLS = 256


@pytest.fixture(scope="module")
def small() -> Iterator[LlamaCppEngine]:
    """An engine whose KV cache holds one call of the size below, not two."""
    engine = LlamaCppEngine(resolve(TEST_MODEL), kv_cache_tokens=CELLS, prefix_cache_tokens=0)
    yield engine
    engine.close()


STORY = "Write a very long story about a lighthouse keeper and the sea."


def story(engine: LlamaCppEngine, n: int, max_tokens: int) -> GenerationRequest:
    """``n`` samples of a long story: prompt cells shared, each sample's tokens its own."""
    prompt = tuple(engine.tokenizer.apply_chat_template([{"role": "user", "content": STORY}]))
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


def test_a_call_too_big_for_the_cache_is_refused_alone(small: LlamaCppEngine) -> None:
    with pytest.raises(RequestRejected, match="--kv-cache-tokens") as refused:
        asyncio.run(small.generate([story(small, n=4, max_tokens=400)]))
    assert refused.value.param == "max_tokens"
    [[after]] = asyncio.run(small.generate([story(small, n=1, max_tokens=4)]))
    assert len(after.token_ids) == 4


def test_over_http_a_call_too_big_for_the_cache_is_a_400_and_health_stays(
    small: LlamaCppEngine,
) -> None:
    """Asked again and again, streamed or not, on either route: a 400 naming ``max_tokens``
    each time (an error frame once the stream has begun), and ``/health`` stays 200."""
    chat: dict[str, Any] = {
        "model": small.model_name,
        "messages": [{"role": "user", "content": STORY}],
        "temperature": 0,
        # 180 tokens for each of four greedy samples of the story: more than the 256 cells
        "search": {"method": "best_of_n", "samples": 4, "max_search_tokens": 720},
    }
    prompt = story(small, n=1, max_tokens=1).prompt_token_ids
    completion = {"model": small.model_name, "prompt": list(prompt), "max_tokens": 180, "n": 4}
    with LiveServer(small) as live, httpx.Client(base_url=live.url, timeout=120) as http:
        for _ in range(2):
            for path, body in (("/v1/chat/completions", chat), ("/v1/completions", completion)):
                r = http.post(path, json=body)
                assert r.status_code == 400, r.text
                error = r.json()["error"]
                assert error["type"] == "invalid_request_error"
                assert error["param"] == "max_tokens"
                assert "--kv-cache-tokens" in error["message"]
        with http.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as r:
            frames = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        assert frames[-1] == "[DONE]"
        error = json.loads(frames[-2])["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", "max_tokens")
        assert http.get("/health").status_code == 200
    assert small.health() is None and small.stats.requests_in_flight == 0
