"""Events a search yields, in order: ``Started``, then any mix of ``Expanded``,
``ReasoningDelta`` and ``AnswerDelta``, and last ``Finished``.  The server maps deltas to
stream chunks and the rest to metrics."""

from __future__ import annotations

from dataclasses import dataclass

from search.types import SearchResult


@dataclass(frozen=True, slots=True)
class Started:
    """The search has begun on a prompt of ``prompt_tokens`` tokens."""

    method: str
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Expanded:
    """One expansion (with its simulations) finished: where, what it cost, and the progress.

    ``action_tokens`` were generated for the new children, ``rollout_tokens`` beyond them;
    ``round`` counts committed steps plus one, ``iterations`` and ``nodes`` are totals so far,
    and ``best_reward`` is the best path reward found so far.
    """

    node_id: int
    depth: int
    children: int
    action_tokens: int
    rollout_tokens: int
    best_reward: float
    round: int
    iterations: int
    nodes: int


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Text appended to the committed reasoning."""

    text: str


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """Text appended to the answer (``content``)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The search is over; ``result`` describes the returned path."""

    result: SearchResult


SearchEvent = Started | Expanded | ReasoningDelta | AnswerDelta | Finished
