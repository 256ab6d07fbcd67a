"""Events a search yields, in order: ``Started``, then any mix of ``Expanded``,
``ReasoningDelta`` and ``AnswerDelta``, and last ``Finished`` with the :class:`SearchResult`.
The server maps deltas to stream chunks and the rest to metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from search.engine import FinishReason
from search.trace import TraceNode

# why a search ended (the response's search.stop_reason)
StopReason = Literal[
    "completed",
    "consensus",
    "max_tokens",
    "max_depth",
    "max_search_tokens",
    "max_seconds",
    "interrupted",
]


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a finished search reports: the chosen path and what it cost."""

    method: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    stop_reason: StopReason
    prompt_tokens: int
    reasoning_tokens: int
    iterations: int
    nodes: int
    generated_tokens: int
    reward: float
    tree: tuple[TraceNode, ...] = ()

    @property
    def completion_tokens(self) -> int:
        """Tokens of the returned path (what the client is billed for)."""
        return len(self.token_ids)


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
