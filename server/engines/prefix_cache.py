"""A bounded LRU of finished sequences, keyed by the tokens their KV cache holds.

A new prompt starts from the entry sharing its longest prefix, so a search that re-reads its
tree's paths only computes what is new.  The value is whatever the engine keeps the KV in: a
llama.cpp sequence id, or a transformers tensor pair per layer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from itertools import count
from typing import Generic, TypeVar

T = TypeVar("T")


class PrefixCache(Generic[T]):
    """Entries ``tokens -> value``, least recently used first, at most ``max_tokens`` in all."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.tokens = 0
        self._entries: OrderedDict[int, tuple[tuple[int, ...], T]] = OrderedDict()
        self._keys = count()

    def __len__(self) -> int:
        return len(self._entries)

    def longest_prefix(self, prompt: Sequence[int]) -> tuple[T | None, int]:
        """The entry sharing the longest prefix with ``prompt`` and that prefix's length
        (``None, 0`` when none shares a token); the entry becomes the most recently used."""
        best, best_len = -1, 0
        for key, (tokens, _) in self._entries.items():
            n = common_prefix(tokens, prompt)
            if n > best_len:
                best, best_len = key, n
        if best < 0:
            return None, 0
        self._entries.move_to_end(best)
        return self._entries[best][1], best_len

    def add(self, tokens: tuple[int, ...], value: T) -> list[T]:
        """Keep ``value`` (holding ``tokens``); return the values evicted to stay in bounds."""
        self._entries[next(self._keys)] = (tokens, value)
        self.tokens += len(tokens)
        evicted = []
        while self.tokens > self.max_tokens and (old := self.pop_oldest()) is not None:
            evicted.append(old)
        return evicted

    def pop_oldest(self, keep: T | None = None) -> T | None:
        """Forget the least recently used entry other than ``keep``; its value, or ``None``."""
        for key, (tokens, value) in self._entries.items():
            if keep is None or value != keep:
                del self._entries[key]
                self.tokens -= len(tokens)
                return value
        return None


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo
