"""Events a search yields, in order: ``Started``, then any mix of ``Expanded``,
``DraftDelta``, ``ReasoningDelta`` and ``AnswerDelta``, and last ``Finished`` with the
:class:`SearchResult`.
The server maps deltas to stream chunks and the rest to metrics.

Every event names the ``choice`` it belongs to: a request for ``n`` answers runs ``n`` choices
(:mod:`search.choices`), whose events arrive interleaved, each choice's in the order above."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from search.engine import FinishReason, TokenLogprob
from search.trace import TraceNode

# why a search ended (the response's search.ended_by; a sample's stop_reason is the stop
# string or token that ended it)
EndReason = Literal[
    "completed",
    "consensus",
    "max_tokens",
    "max_depth",
    "max_search_tokens",
    "max_seconds",
    "interrupted",
]


ChosenBy = Literal["vote", "consensus", "reward", "verifier"]


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a finished search reports: the chosen path and what it cost.

    ``path_reasoning_tokens`` are the chosen path's tokens before its answer (not usage's
    ``reasoning_tokens``, :attr:`hidden_reasoning_tokens`); ``generated_tokens`` every
    token the engine generated for the search (discarded branches and rollouts included);
    ``cached_tokens`` the prompt tokens the search's first engine call took from the engine's
    prefix cache.  ``chosen_by`` says how a sampling method chose among its samples: ``vote``
    (self-consistency elected a final answer), ``consensus`` (free-text answers, by
    :mod:`search.consensus`) or ``reward`` (best-of-n; self-consistency when no sample stated
    an answer), ``verifier`` where a verifier's P(True) stood in for the reward; for MCTS,
    how it chose its last step among whole answers (the same rules), ``None`` when the visit
    count did; ``None`` for ``none`` and ``beam``.  ``logprobs`` are
    the path's tokens' own (``None`` for a token the search wrote, such as a reflection
    prompt), one per token id.
    """

    method: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    ended_by: EndReason
    prompt_tokens: int
    path_reasoning_tokens: int
    iterations: int
    nodes: int
    generated_tokens: int
    reward: float
    tree: tuple[TraceNode, ...] = ()
    cached_tokens: int = 0
    chosen_by: ChosenBy | None = None
    logprobs: tuple[TokenLogprob | None, ...] = ()

    @property
    def content_tokens(self) -> int:
        """Tokens of the returned path's answer (what follows its reasoning)."""
        return len(self.token_ids) - self.path_reasoning_tokens

    @property
    def completion_tokens(self) -> int:
        """What the client is billed for, as OpenAI bills its reasoning models: every token
        generated for the search, the discarded branches being its hidden reasoning (at least
        the returned path, which may hold a reflection prompt the search wrote itself)."""
        return max(self.generated_tokens, len(self.token_ids))

    @property
    def hidden_reasoning_tokens(self) -> int:
        """``completion_tokens`` less the answer's: OpenAI's ``reasoning_tokens``."""
        return self.completion_tokens - self.content_tokens


@dataclass(frozen=True, slots=True)
class Started:
    """The search has begun on a prompt of ``prompt_tokens`` tokens."""

    method: str
    prompt_tokens: int
    choice: int = 0


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
    choice: int = 0


@dataclass(frozen=True, slots=True)
class DraftDelta:
    """Text appended to a draft: a sample the search shows while it decodes (only when
    ``SearchParams.drafts``), which it may or may not choose in the end."""

    text: str
    choice: int = 0


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Text appended to the committed reasoning."""

    text: str
    choice: int = 0


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """Text appended to the answer (``content``)."""

    text: str
    choice: int = 0


@dataclass(frozen=True, slots=True)
class Finished:
    """The search is over; ``result`` describes the returned path."""

    result: SearchResult
    choice: int = 0


SearchEvent = Started | Expanded | DraftDelta | ReasoningDelta | AnswerDelta | Finished
