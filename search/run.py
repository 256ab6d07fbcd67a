"""What every search method shares: its setup (the reward, the step cutter, the path writer, the
tree, the budget and the seeded rng) and its wrap-up (the ``Finished`` event and its result), so
that a method writes only its own loop."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from typing import ClassVar, Literal

from search.answer import PathWriter
from search.budget import Budget
from search.engine import Engine, FinishReason
from search.events import (
    ChosenBy,
    EndReason,
    Expanded,
    Finished,
    SearchEvent,
    SearchResult,
    Started,
)
from search.params import SearchParams
from search.reward import REWARDS
from search.steps import StepCutter
from search.trace import trace_tree
from search.tree import Node, Tree


class SearchRun(ABC):
    """One search of one request, created per request and never shared.  A method subclasses
    it and writes :meth:`search`, whose last event is :meth:`finished`'s."""

    implicit: ClassVar[Literal["last_step", "content"]] = "last_step"
    """Where the answer is when no marker says (see :class:`search.answer.PathWriter`)."""

    def __init__(
        self, params: SearchParams, engine: Engine, rng: random.Random, budget: Budget
    ) -> None:
        self.params = params
        self.engine = engine
        self.rng = rng
        self.budget = budget
        self.tree = Tree()
        self.iterations = 0
        self.chosen_by: ChosenBy | None = None  # a sampling method's rule (SearchResult's)
        self.reward = REWARDS[params.reward](params.window)
        self.cutter = StepCutter(params, engine.tokenizer)
        self.writer = PathWriter(engine.tokenizer, params, implicit=self.implicit)

    async def events(self) -> AsyncGenerator[SearchEvent, None]:
        """``Started``, then the method's events, the last of them ``Finished``."""
        yield Started(method=self.params.method, prompt_tokens=len(self.params.prompt_token_ids))
        async for event in self.search():
            yield event

    @abstractmethod
    def search(self) -> AsyncGenerator[SearchEvent, None]:
        """The method's loop: expansions and committed text, then :meth:`finished`."""

    def expanded(
        self,
        node: Node,
        *,
        action_tokens: int,
        rollout_tokens: int,
        best_reward: float,
        round_: int,
    ) -> Expanded:
        """The progress event for an expansion of ``node`` that has just been added."""
        return Expanded(
            node_id=node.id,
            depth=node.depth,
            children=len(node.children),
            action_tokens=action_tokens,
            rollout_tokens=rollout_tokens,
            best_reward=best_reward,
            round=round_,
            iterations=self.iterations,
            nodes=self.tree.size,
        )

    def finished(
        self,
        chosen: Node | None,
        *,
        finish_reason: FinishReason,
        ended_by: EndReason,
        reward: float,
        writer: PathWriter | None = None,
        generated: int | None = None,
        choice: int = 0,
    ) -> Finished:
        """The last event (of ``choice``): the path ``writer`` has written (the run's own by
        default), what it cost (``generated`` tokens: the whole budget's by default), and the
        tree traced down to ``chosen`` (``None`` for a method that grows no tree)."""
        params, writer = self.params, writer or self.writer
        return Finished(
            SearchResult(
                method=params.method,
                token_ids=tuple(writer.token_ids),
                finish_reason=finish_reason,
                ended_by=ended_by,
                prompt_tokens=len(params.prompt_token_ids),
                path_reasoning_tokens=writer.reasoning_tokens(),
                iterations=self.iterations,
                nodes=0 if chosen is None else self.tree.size,
                generated_tokens=self.budget.generated if generated is None else generated,
                reward=reward,
                tree=() if chosen is None else trace_tree(self.tree, chosen, self.engine.tokenizer),
                cached_tokens=self.budget.cached_tokens or 0,
                chosen_by=self.chosen_by,
                logprobs=tuple(writer.logprobs),
            ),
            choice=choice,
        )
