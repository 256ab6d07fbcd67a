"""How the local engines turn a step's logits into tokens, written once for llama.cpp and
transformers: raw logprobs (log-softmax before temperature), the top-k alternatives, and a
draw at the request's temperature within its top-p nucleus from sample ``i``'s own random
stream (``seed + i``).  Both engines hand their logits over as a float32 numpy array, so the
same logits and seed choose the same token on either.

This runs on llama.cpp's decoding thread once per row and step, over the whole vocabulary
(151,936 tokens on Qwen2.5), so each pass counts: the top-k and the draw look at the row in
blocks of :data:`BLOCK` tokens (block maxima bound the top-k, block sums find the block a draw
lands in) instead of sorting or summing token by token; the results are the same up to float
rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from search.engine import GenerationRequest

Array = np.ndarray[Any, Any]
Ranked = tuple[tuple[int, float], ...]  # (token id, logprob), best first

BLOCK = 128  # tokens per block: 151,936 = 1,187 blocks, few enough to rank or sum at once
NUCLEUS_FLOOR = 1e-3  # the nucleus is sought among tokens this likely against the best, then lower


def generator(spec: GenerationRequest, index: int) -> np.random.Generator | None:
    """Sample ``index``'s random stream (``seed + index``; fresh entropy when unseeded);
    ``None`` when the request decodes greedily."""
    if spec.greedy:
        return None
    return np.random.default_rng(None if spec.seed is None else spec.seed + index)


def log_softmax(logits: Array) -> Array:
    """Each row's raw logprobs (no temperature: rewards must not depend on it)."""
    result: Array = logits - logits.max(axis=-1, keepdims=True)
    result -= np.log(np.exp(result).sum(axis=-1, keepdims=True))
    return result


def top_candidates(logprobs: Array, k: int) -> list[Array] | None:
    """For each row, the ids of a few tokens that include its ``k`` most likely ones, in
    vocabulary order (``None`` when ``k`` is 0), ranked per row by :func:`ranked`.

    The ``k``-th largest of the row's block maxima is a floor under its ``k``-th largest
    logprob (``k`` blocks each hold a token at least that likely), so the tokens at or above
    it are the top ``k`` and usually only a few more."""
    if k == 0:
        return None
    if k >= logprobs.shape[-1] // BLOCK:
        return list(np.argsort(-logprobs, axis=-1)[:, :k])
    maxima = _blocks(logprobs, np.maximum)
    floors = -np.partition(-maxima, k - 1, axis=-1)[:, k - 1]
    return [np.flatnonzero(row >= floor) for row, floor in zip(logprobs, floors, strict=True)]


def ranked(logprobs: Array, candidates: Array | None, k: int) -> Ranked:
    """One row's top ``k`` ``(token id, logprob)`` pairs, best first."""
    if candidates is None or k == 0:
        return ()
    best = candidates[np.argsort(-logprobs[candidates], kind="stable")[:k]]
    return tuple(zip(best.tolist(), logprobs[best].tolist(), strict=True))


def nucleus(weights: Array, top_p: float) -> Array:
    """The ids (ascending) of the tokens in the top-p nucleus of ``weights`` (unnormalised
    probabilities): a token stays while the mass of the more likely tokens before it is at
    most ``top_p`` of the whole (so the most likely token always stays).

    Only tokens above a floor are sorted: the floor drops until their mass passes ``top_p``
    of the whole, and then every token below it is out.  Masses add up in float64."""
    if top_p >= 1.0:
        return np.arange(len(weights))
    bound = top_p * weights.sum(dtype=np.float64)
    floor = float(weights.max()) * NUCLEUS_FLOOR
    while floor > 0 and weights[weights >= floor].sum(dtype=np.float64) <= bound:
        floor *= NUCLEUS_FLOOR
    ids = np.flatnonzero(weights >= floor)
    order = ids[np.argsort(-weights[ids])]
    kept = weights[order]
    return np.sort(order[np.cumsum(kept, dtype=np.float64) - kept <= bound])


def choose(spec: GenerationRequest, logprobs: Array, rng: np.random.Generator | None) -> int:
    """The next token from one row of raw logprobs: the most likely one without ``rng``, else
    a draw at ``spec.temperature`` within its ``spec.top_p`` nucleus."""
    if rng is None:
        return int(logprobs.argmax())
    weights = logprobs - logprobs.max()
    weights /= spec.temperature
    np.exp(weights, out=weights)
    if spec.top_p >= 1.0:
        return draw(weights, rng.random())
    ids = nucleus(weights, spec.top_p)
    return int(ids[draw(weights[ids], rng.random())])


def draw(weights: Array, uniform: float) -> int:
    """The token where ``uniform`` (in [0, 1)) of the whole mass of ``weights`` falls,
    counting in vocabulary order: the one whose share of the running sum covers it (a token
    of weight 0 is never drawn)."""
    bounds = np.cumsum(_blocks(weights[np.newaxis], np.add, np.float64)[0])
    target = uniform * bounds[-1]
    # rounding may bring the target up to the whole: then the last block with any weight
    block = int(min(np.searchsorted(bounds, target, "right"), np.searchsorted(bounds, bounds[-1])))
    start = block * BLOCK
    inside = weights[start : start + BLOCK]
    running = np.cumsum(inside, dtype=np.float64)
    pick = int(np.searchsorted(running, target - (bounds[block - 1] if block else 0.0), "right"))
    if pick == len(inside):  # past the block's end by rounding: its last token of any weight
        pick = int(np.flatnonzero(inside)[-1])
    return start + pick


def _blocks(rows: Array, combine: np.ufunc, dtype: type[np.floating[Any]] | None = None) -> Array:
    """Each row's :data:`BLOCK`-token blocks reduced with ``combine`` (``np.maximum``,
    ``np.add``) in ``dtype``; a last, shorter block when the width is not a multiple."""
    width = rows.shape[-1]
    whole = width - width % BLOCK
    blocks = rows[:, :whole].reshape(len(rows), -1, BLOCK)
    reduced: Array = combine.reduce(blocks, axis=-1, dtype=dtype)
    if whole == width:
        return reduced
    rest = combine.reduce(rows[:, whole:], axis=-1, dtype=dtype, keepdims=True)
    return np.concatenate([reduced, rest], axis=-1)
