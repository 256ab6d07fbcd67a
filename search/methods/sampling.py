"""Methods ``best_of_n`` and ``self_consistency``: sample ``samples`` whole answers in one
engine call, then keep one.

``best_of_n`` keeps the answer with the highest reward (one that ended, when any did).
``self_consistency`` extracts each answer's final result (:mod:`search.extract`), takes the
majority, and breaks ties (and picks the answer shown) by reward.  The chosen answer is split
into steps under the request's granularity, so reasoning and answer come apart exactly as for
MCTS.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from search.engine import Completion
from search.events import SearchEvent, StopReason
from search.extract import extract_answer
from search.run import SearchRun
from search.tree import Node, Step


@dataclass(frozen=True, slots=True)
class Candidate:
    """One sampled answer, cut into steps and scored, and its node in the trace."""

    completion: Completion
    steps: list[Step]
    reward: float
    node: Node


def highest_reward(candidates: list[Candidate]) -> Candidate:
    """Best-of-n: the most rewarded answer that ended, else the most rewarded (a sample cut
    at its token bound states no final answer, whatever its confidence)."""
    return max(candidates, key=lambda c: (c.completion.finish_reason == "stop", c.reward))


def majority_vote(candidates: list[Candidate]) -> Candidate:
    """Self-consistency: the most common final answer; reward breaks ties and picks the text."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        answer = extract_answer(candidate.completion.text)
        if answer is not None:
            groups.setdefault(answer, []).append(candidate)
    if not groups:
        return highest_reward(candidates)
    winner = max(groups.values(), key=lambda g: (len(g), highest_reward(g).reward))
    return highest_reward(winner)


class SamplingRun(SearchRun):
    """Sample ``params.samples`` whole answers in one engine call and answer with one of them."""

    @abstractmethod
    def choose(self, candidates: list[Candidate]) -> Candidate:
        """The candidate to answer with."""

    async def search(self) -> AsyncGenerator[SearchEvent, None]:
        """One engine call for every sample, then the chosen one as the path."""
        params, budget = self.params, self.budget
        max_tokens = min(params.max_tokens, budget.remaining_tokens() // params.samples)
        outputs = None
        if max_tokens >= 1:
            request = params.generation((), max_tokens, self.rng.getrandbits(31), n=params.samples)
            outputs = await budget.generate(self.engine, [request])
        if outputs is None:
            for event in self.writer.commit((), last=True):
                yield event
            stop = budget.exhausted() or "max_search_tokens"
            root = self.tree.root
            yield self.finished(root, finish_reason="length", stop_reason=stop, reward=0.0)
            return
        chosen = self.choose([self._candidate(completion) for completion in outputs[0]])
        steps = [step.token_ids for step in chosen.steps]
        for event in self.writer.commit_path(steps, stop=chosen.completion.stop_reason):
            yield event
        finish_reason = chosen.completion.finish_reason
        stop_reason: StopReason = "completed"
        if finish_reason != "stop":
            budget_cut = max_tokens < params.max_tokens
            stop_reason = "max_search_tokens" if budget_cut else "max_tokens"
        yield self.finished(
            chosen.node, finish_reason=finish_reason, stop_reason=stop_reason, reward=chosen.reward
        )

    def _candidate(self, completion: Completion) -> Candidate:
        """Cut and score one sample, and add it to the trace as a child of the root."""
        steps = self.cutter.split(completion.token_ids, completion.logprobs)
        reward = self.reward(steps)
        whole = Step.of(completion.token_ids, completion.logprobs)
        tree = self.tree
        node = tree.add_child(tree.root, whole, terminal=completion.finish_reason == "stop")
        node.visits, node.value_sum = 1, reward
        self.iterations += 1
        return Candidate(completion, steps, reward, node)


class BestOfNRun(SamplingRun):
    """Method ``best_of_n``: the most rewarded answer."""

    def choose(self, candidates: list[Candidate]) -> Candidate:
        """The candidate to answer with."""
        return highest_reward(candidates)


class SelfConsistencyRun(SamplingRun):
    """Method ``self_consistency``: the majority answer's most rewarded sample."""

    def choose(self, candidates: list[Candidate]) -> Candidate:
        """The candidate to answer with."""
        return majority_vote(candidates)
