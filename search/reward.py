"""Rewards: how good a reasoning path is, from its tokens and their top-k logprobs.

Marco-o1's confidence of a generated token is the softmax of its logprob against the top-k
alternatives: ``c = exp(l) / sum_j exp(l_j)``.  When the chosen token is not among the top-k
(engines such as vLLM then return k+1 entries), it joins the denominator, so ``c`` stays in
``(0, 1]``.

A reward sees a path as a list of :class:`search.tree.Step` (token ids, logprobs,
confidences) and returns a score in ``[0, 1]``; :data:`REWARDS` maps request names to
factories of implementations (each given the request's ``window``).  ``confidence`` is
Marco-o1's mean token confidence; ``min_step`` scores a path by its weakest step (the "min"
aggregation of process reward models), so one shaky step sinks an otherwise fluent path.  A
process reward model plugs in behind the same :class:`Reward` protocol.

The DeepConf signals (Fu et al. 2025, "Deep Think with Confidence") use another token
confidence: ``C = -mean(top-k logprobs)``, large where the model's alternatives are far below
its choice.  A path's ``C`` values are averaged over sliding windows of ``window`` tokens (its
"groups"; a path shorter than a window is one group), and the path is scored by its lowest
group (``lowest_group``: one lost stretch sinks it), the mean of its lowest tenth of groups
(``bottom_groups``), its last ``window`` tokens (``tail``: where the answer is stated) or all
its tokens (``deepconf``).  ``C`` has no upper bound, so a score is mapped to ``[0, 1)`` by
``C / (1 + C)``, which keeps every order (and so every AUROC and every choice of the best).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
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


def deepconf_confidence(token: TokenLogprob) -> float:
    """DeepConf's token confidence: minus the mean of the top-k logprobs (the chosen token's
    own when no alternatives were returned)."""
    logprobs = [lp for _, lp in token.top] or [token.logprob]
    return -sum(logprobs) / len(logprobs)


def group_confidences(values: Sequence[float], window: int) -> list[float]:
    """The means of every run of ``window`` consecutive values (one, of all, when there are
    fewer); none for no values."""
    if len(values) <= window:
        return [sum(values) / len(values)] if values else []
    total = sum(values[:window])
    means = [total / window]
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        means.append(total / window)
    return means


def bounded(confidence: float) -> float:
    """``C`` mapped onto ``[0, 1)``, order kept."""
    return confidence / (1.0 + confidence) if confidence > 0 else 0.0


def _deepconf_values(path: Sequence[Step]) -> list[float]:
    return [deepconf_confidence(token) for step in path for token in step.logprobs]


def deepconf_reward(path: Sequence[Step]) -> float:
    """The mean DeepConf confidence of every generated token of the path."""
    values = _deepconf_values(path)
    return bounded(sum(values) / len(values)) if values else 0.0


def lowest_group_reward(path: Sequence[Step], window: int) -> float:
    """The path's least confident window of ``window`` tokens."""
    return bounded(min(group_confidences(_deepconf_values(path), window), default=0.0))


def bottom_groups_reward(path: Sequence[Step], window: int) -> float:
    """The mean of the path's least confident tenth of windows (at least one)."""
    groups = sorted(group_confidences(_deepconf_values(path), window))
    lowest = groups[: max(1, len(groups) // 10)]
    return bounded(sum(lowest) / len(lowest)) if lowest else 0.0


def tail_reward(path: Sequence[Step], window: int) -> float:
    """The mean confidence of the path's last ``window`` generated tokens."""
    values = _deepconf_values(path)[-window:]
    return bounded(sum(values) / len(values)) if values else 0.0


def _windowless(reward: Reward) -> Callable[[int], Reward]:
    return lambda window: reward


def _windowed(reward: Callable[[Sequence[Step], int], float]) -> Callable[[int], Reward]:
    return lambda window: lambda path: reward(path, window)


WINDOWED = frozenset({"lowest_group", "bottom_groups", "tail"})  # the rewards `window` sizes

REWARDS: dict[str, Callable[[int], Reward]] = {
    "confidence": _windowless(confidence_reward),
    "min_step": _windowless(min_step_reward),
    "deepconf": _windowless(deepconf_reward),
    "lowest_group": _windowed(lowest_group_reward),
    "bottom_groups": _windowed(bottom_groups_reward),
    "tail": _windowed(tail_reward),
}
