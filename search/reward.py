"""Marco-o1's confidence reward, computed from top-k logprobs.

The confidence of a generated token is the softmax of its logprob against the top-k
alternatives: ``c = exp(l) / sum_j exp(l_j)``.  When the chosen token is not among the top-k
(engines such as vLLM then return k+1 entries), it joins the denominator, so ``c`` stays in
``(0, 1]``.  The reward of a rollout is the mean confidence of its generated tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from search.engine import TokenLogprob


def token_confidence(token: TokenLogprob) -> float:
    """Probability of the chosen token renormalised over the top-k (plus itself if outside)."""
    logprobs = [lp for _, lp in token.top]
    if token.token_id not in {tid for tid, _ in token.top}:
        logprobs.append(token.logprob)
    if not logprobs:  # no alternatives were requested: the token competes with nothing
        return 1.0
    peak = max(logprobs)
    denominator = sum(math.exp(lp - peak) for lp in logprobs)
    return math.exp(token.logprob - peak) / denominator


def mean_confidence(confidences: Iterable[float]) -> float:
    """Mean of token confidences; 0.0 for an empty rollout (nothing was generated to trust)."""
    values = list(confidences)
    return sum(values) / len(values) if values else 0.0
