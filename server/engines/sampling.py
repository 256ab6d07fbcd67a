"""How the local engines turn a step's logits into tokens, written once for llama.cpp and
transformers: raw logprobs (log-softmax before temperature), the top-k alternatives, and a
draw at the request's temperature within its top-p nucleus from sample ``i``'s own random
stream (``seed + i``).  Both engines hand their logits over as a float32 numpy array, so the
same logits and seed choose the same token on either."""

from __future__ import annotations

from typing import Any

import numpy as np

from search.engine import GenerationRequest

Array = np.ndarray[Any, Any]
Ranked = tuple[tuple[int, float], ...]  # (token id, logprob), best first


def generator(spec: GenerationRequest, index: int) -> np.random.Generator | None:
    """Sample ``index``'s random stream (``seed + index``; fresh entropy when unseeded);
    ``None`` when the request decodes greedily."""
    if spec.greedy:
        return None
    return np.random.default_rng(None if spec.seed is None else spec.seed + index)


def log_softmax(logits: Array) -> Array:
    """Each row's raw logprobs (no temperature: rewards must not depend on it)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    result: Array = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def top_candidates(logprobs: Array, k: int) -> Array | None:
    """The ids of each row's ``k`` most likely tokens, in no order (``None`` when ``k`` is 0):
    one ``argpartition`` for the whole step, ranked per row by :func:`ranked`."""
    if k == 0:
        return None
    if k >= logprobs.shape[-1]:
        every: Array = np.argsort(-logprobs, axis=-1)
        return every
    candidates: Array = np.argpartition(-logprobs, k, axis=-1)[..., :k]
    return candidates


def ranked(logprobs: Array, candidates: Array | None, k: int) -> Ranked:
    """One row's top ``k`` ``(token id, logprob)`` pairs, best first."""
    if candidates is None or k == 0:
        return ()
    ids = sorted(candidates.tolist(), key=lambda t: -logprobs[t])[:k]
    return tuple((t, float(logprobs[t])) for t in ids)


def nucleus(weights: Array, top_p: float) -> Array:
    """``weights`` (unnormalised probabilities) with every token outside the top-p nucleus
    zeroed: a token stays while the mass of the more likely tokens before it is at most
    ``top_p`` of the whole (so the most likely token always stays)."""
    if top_p >= 1.0:
        return weights
    order = np.argsort(-weights)
    kept = weights[order]
    cumulative = np.cumsum(kept)
    keep = cumulative - kept <= top_p * cumulative[-1]
    result = np.zeros_like(weights)
    result[order[keep]] = kept[keep]
    return result


def choose(spec: GenerationRequest, logprobs: Array, rng: np.random.Generator | None) -> int:
    """The next token from one row of raw logprobs: the most likely one without ``rng``, else
    a draw at ``spec.temperature`` within its ``spec.top_p`` nucleus."""
    if rng is None:
        return int(logprobs.argmax())
    weights = nucleus(np.exp((logprobs - logprobs.max()) / spec.temperature), spec.top_p)
    cumulative = np.cumsum(weights, dtype=np.float64)
    return int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
