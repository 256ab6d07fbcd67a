"""Method ``beam``: step-level beam search scored by the path reward.

Each round expands every live beam by ``branching`` one-action continuations (all beams in one
engine call), scores each new partial path, and keeps the ``beam_width`` best among the new
paths and the beams that have already ended.  Steps that every surviving beam shares can no
longer change, so they stream as reasoning at once; the rest of the best beam follows at the
end.  In ``step`` granularity a continuation may run past the separator (up to
``step_tokens``); what follows the first step is dropped, so steps mean the same as in MCTS.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Iterator

from search.budget import Budget
from search.engine import Completion, Engine, GenerationRequest
from search.events import EndReason, Expanded, SearchEvent
from search.params import SearchParams
from search.policies import path_end
from search.run import SearchRun
from search.tree import Node, Step


class BeamRun(SearchRun):
    """Beam search over steps; its own state is the beams and the part of them committed."""

    def __init__(
        self, params: SearchParams, engine: Engine, rng: random.Random, budget: Budget
    ) -> None:
        super().__init__(params, engine, rng, budget)
        self.beams = [self.tree.root]
        self.committed = self.tree.root  # the deepest node every beam shares, already streamed
        self.best_reward = 0.0

    async def search(self) -> AsyncGenerator[SearchEvent, None]:
        """Rounds of one engine call for all live beams; shared steps stream as they settle."""
        params, budget = self.params, self.budget
        budget_out: EndReason | None = None
        while live := [b for b in self.beams if path_end(b, params) is None]:
            budget_out = budget.exhausted()
            per_sample = budget.remaining_tokens() // (len(live) * params.branching)
            if budget_out is not None or per_sample < 1:
                budget_out = budget_out or "max_search_tokens"
                break
            requests = [self._request(beam, per_sample) for beam in live]
            outputs = await budget.generate(self.engine, requests)
            if outputs is None:
                budget_out = budget.exhausted() or "max_seconds"
                break
            children: list[Node] = []
            for beam, completions in zip(live, outputs, strict=True):
                yield self._grow(beam, completions, children)
            pool = [b for b in self.beams if path_end(b, params) is not None] + children
            ranked = sorted(pool, key=lambda n: n.mean_value, reverse=True)
            self.beams = ranked[: params.beam_width]
            for event in self._settle():
                yield event
        # a whole answer beats a path cut by a bound or a budget, whatever their rewards
        best = max(self.beams, key=lambda n: (n.terminal, n.mean_value))
        finish_reason, ended_by = path_end(best, params) or ("length", "completed")
        ended_by = budget_out or ended_by  # a budget that stopped the search says so
        steps = [node.step for node in best.path()[self.committed.depth :]]
        for event in self.writer.commit_path(steps, stop=best.stop_reason):
            yield event
        yield self.finished(
            best,
            finish_reason=finish_reason,
            ended_by=ended_by,
            reward=self.reward(best.path_steps()),
        )

    def _request(self, beam: Node, per_sample: int) -> GenerationRequest:
        """``branching`` one-action continuations of ``beam``, within every budget."""
        params = self.params
        return params.generation(
            beam.path_token_ids(),
            min(params.action_tokens, params.max_tokens - beam.path_tokens, per_sample),
            self.rng.getrandbits(31),
            n=params.branching,
        )

    def _grow(self, beam: Node, completions: list[Completion], children: list[Node]) -> Expanded:
        """Add ``beam``'s new children (scored by their path's reward) to the tree and to
        ``children``."""
        generated = 0
        for completion in completions:
            cut = self.cutter.first_action(completion.token_ids)
            generated += len(completion.token_ids)
            step = Step.of(completion.token_ids[:cut], completion.logprobs[:cut])
            if any(c.token_ids == step.token_ids for c in beam.children):
                continue
            terminal = cut == len(completion.token_ids) and completion.finish_reason == "stop"
            stop = completion.stop_reason if terminal else None
            child = self.tree.add_child(beam, step, terminal=terminal, stop_reason=stop)
            child.visits, child.value_sum = 1, self.reward(child.path_steps())
            children.append(child)
        self.iterations += 1
        self.best_reward = max(self.best_reward, *(c.mean_value for c in beam.children))
        return self.expanded(
            beam,
            action_tokens=generated,
            rollout_tokens=0,
            best_reward=self.best_reward,
            round_=beam.depth + 1,
        )

    def _settle(self) -> Iterator[SearchEvent]:
        """Stream the steps every beam now shares (an answer's last step waits for the end)."""
        settled = _shared_ancestor(self.tree.root, self.beams)
        if path_end(settled, self.params) is not None:
            settled = settled.parent or settled
        for node in settled.path()[self.committed.depth :]:
            yield from self.writer.commit(node.step, last=False)
        self.committed = settled


def _shared_ancestor(root: Node, beams: list[Node]) -> Node:
    """The deepest node on every beam's path."""
    shared = root
    for nodes in zip(*(b.path() for b in beams), strict=False):
        if any(n is not nodes[0] for n in nodes):
            break
        shared = nodes[0]
    return shared
