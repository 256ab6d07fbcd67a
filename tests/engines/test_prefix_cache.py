"""The prefix cache's bookkeeping: longest shared prefix, least recently used out first, and
the token bound."""

from __future__ import annotations

import random

import pytest

from server.engines import prefix_cache
from server.engines.prefix_cache import BLOCK, PrefixCache, common_prefix


def test_common_prefix() -> None:
    assert common_prefix((1, 2, 3, 4), (1, 2, 9)) == 2
    assert common_prefix((1, 2), (1, 2, 3)) == 2
    assert common_prefix((5,), (1,)) == 0
    assert common_prefix((), (1, 2)) == 0


def test_the_longest_shared_prefix_wins_and_becomes_recent() -> None:
    cache: PrefixCache[str] = PrefixCache(max_tokens=100)
    cache.add((1, 2, 3), "short")
    cache.add((1, 2, 3, 4, 5), "long")
    cache.add((7, 8), "other")
    assert cache.longest_prefix((1, 2, 3, 4, 6)) == ("long", 4)
    assert cache.longest_prefix((9,)) == (None, 0)
    # "short" is now the least recently used: it leaves first
    assert cache.pop_oldest() == "short"
    assert cache.pop_oldest(keep="other") == "long"


def test_adding_past_the_bound_evicts_the_oldest() -> None:
    cache: PrefixCache[int] = PrefixCache(max_tokens=6)
    assert cache.add((1, 2, 3), 1) == []
    assert cache.add((4, 5, 6), 2) == []
    assert cache.add((7, 8), 3) == [1]
    assert (len(cache), cache.tokens) == (2, 5)
    off: PrefixCache[int] = PrefixCache(max_tokens=0)
    assert off.add((1,), 9) == [9] and len(off) == 0


def test_the_block_index_finds_what_a_scan_of_every_entry_finds() -> None:
    """Prompts sharing whole blocks, part of a block, or nothing, with entries evicted on the way:
    the indexed lookup's length is always the longest prefix any live entry shares."""
    rng = random.Random(0)
    system = tuple(rng.randrange(50) for _ in range(2 * BLOCK + 5))
    cache: PrefixCache[int] = PrefixCache(max_tokens=3000)
    for i in range(200):
        head = system[: rng.randrange(len(system) + 1)]
        cache.add(head + tuple(rng.randrange(3) for _ in range(rng.randrange(1, 60))), i)
        prompt = system[: rng.randrange(len(system) + 1)] + tuple(
            rng.randrange(3) for _ in range(rng.randrange(0, 40))
        )
        live = [tokens for tokens, _ in cache._entries.values()]
        value, length = cache.longest_prefix(prompt)
        assert length == max(common_prefix(tokens, prompt) for tokens in live)
        assert (value is None) == (length == 0)
    assert len(cache) < 200  # the bound evicted some, and their blocks left the index
    indexed = {key for holders in cache._blocks.values() for key in holders}
    assert indexed <= set(cache._entries)


def test_a_hash_collision_falls_back_to_comparing_every_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache: PrefixCache[str] = PrefixCache(max_tokens=1000)
    # every block hashes alike: the index says both entries hold the prompt's first block
    monkeypatch.setattr(prefix_cache, "_block_hashes", lambda tokens: [0] * (len(tokens) // BLOCK))
    cache.add(tuple(range(BLOCK + 4)), "counting")
    cache.add(tuple(range(100, 100 + BLOCK + 4)), "from 100")
    assert cache.longest_prefix(tuple(range(100, 100 + BLOCK + 1))) == ("from 100", BLOCK + 1)
