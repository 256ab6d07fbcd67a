"""Rewards: how good a reasoning path is, from its tokens and their top-k logprobs.

Marco-o1's confidence of a generated token is the softmax of its logprob against the top-k
alternatives: ``c = exp(l) / sum_j exp(l_j)``.  When the chosen token is not among the top-k
(engines such as vLLM then return k+1 entries), it joins the denominator, so ``c`` stays in
``(0, 1]``.

A reward sees a path as a list of :class:`search.tree.Step` (token ids, logprobs,
confidences) and returns a score in ``[0, 1]``; :data:`REWARDS` maps request names to
implementations.  ``confidence`` is Marco-o1's mean token confidence; ``min_step`` scores a
path by its weakest step (the "min" aggregation of process reward models), so one shaky step
sinks an otherwise fluent path.  A process reward model plugs in behind the same
:class:`Reward` protocol.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from search.engine import TokenLogprob

if TYPE_CHECKING:
    from search.tree import Step


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


class Reward(Protocol):
    """Scores a path; higher is better, in ``[0, 1]``."""

    def __call__(self, path: Sequence[Step]) -> float:
        """Score of the path made of ``path``'s steps, in order."""
        ...


def confidence_reward(path: Sequence[Step]) -> float:
    """Marco-o1: the mean confidence of every generated token of the path."""
    return mean_confidence(c for step in path for c in step.confidences)


def min_step_reward(path: Sequence[Step]) -> float:
    """The weakest step's mean confidence (steps without generated tokens are skipped)."""
    scores = [mean_confidence(step.confidences) for step in path if step.confidences]
    return min(scores, default=0.0)


REWARDS: dict[str, Reward] = {"confidence": confidence_reward, "min_step": min_step_reward}
