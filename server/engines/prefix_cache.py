"""A bounded LRU of finished sequences, keyed by the tokens their KV cache holds.

A new prompt starts from the entry sharing its longest prefix, so a search that re-reads its
tree's paths only computes what is new.  The value is whatever the engine keeps the KV in: a
llama.cpp sequence id, or a transformers tensor pair per layer.

Entries are indexed by the hashes of their prefixes in blocks of :data:`BLOCK` tokens (as vLLM
hashes its KV blocks), so a lookup walks the prompt's blocks instead of comparing it with every
entry: with a few hundred entries of a GPU's batch, the scan took ~10 ms per prompt on the
engine's one scheduler thread.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from itertools import count
from typing import Generic, TypeVar

T = TypeVar("T")
BLOCK = 16  # tokens per indexed block: a shared prefix shorter than this is found by a scan


class PrefixCache(Generic[T]):
    """Entries ``tokens -> value``, least recently used first, at most ``max_tokens`` in all."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.tokens = 0
        self._entries: OrderedDict[int, tuple[tuple[int, ...], T]] = OrderedDict()
        self._blocks: dict[int, set[int]] = {}  # a prefix's hash -> the entries holding it
        self._keys = count()

    def __len__(self) -> int:
        return len(self._entries)

    def longest_prefix(self, prompt: Sequence[int]) -> tuple[T | None, int]:
        """The entry sharing the longest prefix with ``prompt`` and that prefix's length
        (``None, 0`` when none shares a token); the entry becomes the most recently used."""
        prompt = tuple(prompt)
        candidates: Iterable[int] = self._entries.keys()
        shared = 0
        for depth, digest in enumerate(_block_hashes(prompt), start=1):
            holders = self._blocks.get(digest)
            if not holders:
                break
            candidates, shared = holders, depth * BLOCK
        found = self._longest(prompt, candidates, shared)
        if found is None:  # a hash collision: compare with every entry
            found = self._longest(prompt, self._entries.keys(), 0)
        assert found is not None  # nothing is assumed shared: no collision to find
        best, best_len = found
        if best < 0:
            return None, 0
        self._entries.move_to_end(best)
        return self._entries[best][1], best_len

    def add(self, tokens: tuple[int, ...], value: T) -> list[T]:
        """Keep ``value`` (holding ``tokens``); return the values evicted to stay in bounds."""
        key = next(self._keys)
        self._entries[key] = (tokens, value)
        for digest in _block_hashes(tokens):
            self._blocks.setdefault(digest, set()).add(key)
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
                for digest in _block_hashes(tokens):
                    holders = self._blocks[digest]
                    holders.discard(key)
                    if not holders:
                        del self._blocks[digest]
                self.tokens -= len(tokens)
                return value
        return None

    def _longest(
        self, prompt: tuple[int, ...], keys: Iterable[int], shared: int
    ) -> tuple[int, int] | None:
        """The key among ``keys`` sharing the longest prefix with ``prompt`` (-1 when none
        shares a token) and its length, each entry assumed to share the first ``shared``
        tokens; ``None`` when one does not (its block hashes collided with the prompt's)."""
        best, best_len = -1, 0
        for key in sorted(keys):
            tokens = self._entries[key][0]
            if tokens[:shared] != prompt[:shared]:
                return None
            n = shared + common_prefix(tokens[shared:], prompt[shared:])
            if n > best_len:
                best, best_len = key, n
        return best, best_len


def _block_hashes(tokens: tuple[int, ...]) -> list[int]:
    """The hash of each whole block's prefix: ``tokens[:BLOCK]``, ``tokens[:2 * BLOCK]``, ...
    (chained, so the list costs one pass)."""
    digests, digest = [], 0
    for start in range(0, len(tokens) - BLOCK + 1, BLOCK):
        digest = hash((digest, tokens[start : start + BLOCK]))
        digests.append(digest)
    return digests


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
