"""The prefix cache's bookkeeping: longest shared prefix, least recently used out first, and
the token bound."""

from __future__ import annotations

from server.engines.prefix_cache import PrefixCache, common_prefix


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
