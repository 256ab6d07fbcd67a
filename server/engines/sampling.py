"""How llama.cpp's engine turns a step's logits into tokens: raw logprobs (log-softmax before
temperature), the top-k alternatives, and a draw at the request's temperature within its top-p
nucleus from sample ``i``'s own random stream (``seed + i``).  The transformers engine applies
the same rules on its device (:mod:`server.engines.tensor_sampling`), so the same logits and
seed choose the same token on either.

This runs on llama.cpp's decoding thread for every row of every step, over the whole vocabulary
(151,936 tokens on Qwen2.5), so each pass over a row counts: the top-k and the draw look at a
row in groups of :data:`BLOCK` tokens (group maxima bound the top-k, block sums find the block
a draw lands in) instead of sorting or adding up token by token, and the nucleus sorts only the
tokens that can be in it.  The tokens chosen are the same up to float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from search.engine import GenerationRequest

Array = np.ndarray[Any, Any]
Ranked = tuple[tuple[int, float], ...]  # (token id, logprob), best first

BLOCK = 128  # tokens per group: 151,936 = 1,187 groups, few enough to rank or add up at once
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

    The row is cut into groups of :data:`BLOCK` tokens, strided (token ``t`` in group ``t mod
    groups``: the maxima are then one vectorised pass).  The ``k``-th largest group maximum is
    a floor under the row's ``k``-th largest logprob (``k`` groups each hold a token at least
    that likely), so the tokens at or above it are the top ``k`` and usually only a few more."""
    if k == 0:
        return None
    rows, width = logprobs.shape
    groups = width // BLOCK
    if k >= groups:
        return list(np.argsort(-logprobs, axis=-1)[:, :k])
    maxima = logprobs[:, : groups * BLOCK].reshape(rows, BLOCK, groups).max(axis=1)
    if groups * BLOCK < width:
        rest = logprobs[:, groups * BLOCK :].max(axis=-1, keepdims=True)
        maxima = np.concatenate([maxima, rest], axis=-1)
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
    of weight 0 is never drawn).  Block sums find its :data:`BLOCK`-token block first."""
    whole = len(weights) - len(weights) % BLOCK
    sums = weights[:whole].reshape(-1, BLOCK).sum(axis=-1, dtype=np.float64)
    bounds = np.cumsum(np.append(sums, weights[whole:].sum(dtype=np.float64)))
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
