"""Methods ``best_of_n`` and ``self_consistency``: sample ``samples`` whole answers, then keep
one.

A token budget buys whole answers: the samples are drawn in waves (:func:`next_wave`), each as
many as fit the budget left with room for a whole answer, so a client's ``max_tokens: 512``
gets one or two complete answers rather than four cut at 128 tokens.  With the default budget
every sample fits, and the one wave is one engine call.

``best_of_n`` keeps the answer with the highest reward (one that ended, when any did).
With a verifier (:mod:`search.verifier`), the answers a choice is made among are scored by its
P(True) instead of the reward: best-of-n keeps the one the judge trusts most, and a
``weighted`` or ``filtered`` vote counts the judge's trust (CISC's vote).
``self_consistency`` extracts each answer's final result (:mod:`search.extract`), elects one
by the request's ``voting`` (:mod:`search.vote`) among the answers that ended (a sample cut at
its bound states no final answer, so it votes only when none ended), and shows the elected
answer's most rewarded sample.  The chosen answer is split into steps under the request's
granularity, so reasoning and answer come apart exactly as for MCTS.

With ``halt_keep``, the first ``warmup`` samples are drawn whole and set a bar; each later
sample stops mid-answer once its confidence falls below it (DeepConf online,
:mod:`search.halting`), and states no final answer, so it votes only when none ended.

A streamed request (``drafts``) sees the first sample of the first wave as it decodes, as
``DraftDelta`` events (:mod:`search.drafts`), so the stream shows text long before the vote;
the engine's watch changes nothing that is sampled, so the answer is the unstreamed one.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace

from search.drafts import Draft
from search.engine import Completion
from search.events import ChosenBy, DraftDelta, EndReason, SearchEvent
from search.halting import LowWindow, bar, confidences, lowest_window
from search.run import SearchRun
from search.selection import ended, highest_reward, vote
from search.tree import NOTHING, Node, Step
from search.verifier import Verifier


@dataclass(frozen=True, slots=True)
class Candidate:
    """One sampled answer, cut into steps and scored, and its node in the trace."""

    completion: Completion
    steps: list[Step]
    reward: float
    node: Node

    @property
    def text(self) -> str:
        return self.completion.text

    @property
    def ended(self) -> bool:
        return self.completion.finish_reason == "stop"


# The tokens a sample gets at least while none has ended, so nothing says how long this
# problem's answers are: the default model's GSM8K answers run 289 tokens on average (issue 29's
# 20 problems at max_tokens 512), so 1,024 leaves room for a long one without starving the wave.
WHOLE_ANSWER_TOKENS = 1024


def next_wave(samples_left: int, remaining: int, max_tokens: int, longest: int | None) -> int:
    """How many samples the next wave draws (each then gets ``remaining // wave`` tokens, at
    most ``max_tokens``): as many as fit the ``remaining`` budget with room for a whole
    answer, ``longest`` being the longest that has ended so far.  Before any has ended a wave
    draws at least one sample while tokens are left; after, none once even one more whole
    answer would not fit."""
    if samples_left < 1 or remaining < 1:
        return 0
    need = max(min(max_tokens, longest or WHOLE_ANSWER_TOKENS), 1)
    wave = min(samples_left, remaining // need)
    return max(wave, 1) if longest is None else wave


class SamplingRun(SearchRun):
    """Sample ``params.samples`` whole answers, in waves the budget fits, and answer with one
    of them."""

    @abstractmethod
    def choose(self, candidates: list[Candidate]) -> tuple[Candidate, ChosenBy]:
        """The candidate to answer with, and by what rule."""

    async def search(self) -> AsyncGenerator[SearchEvent, None]:
        """Waves of samples (one engine call each), then the chosen one as the path."""
        params, budget = self.params, self.budget
        candidates: list[Candidate] = []
        halt: LowWindow | None = None
        while wave := next_wave(
            params.samples - len(candidates),
            budget.remaining_tokens(),
            params.max_tokens,
            max((len(c.completion.token_ids) for c in ended(candidates)), default=None),
        ):
            if params.halt_keep is not None and halt is None:
                if len(candidates) < params.warmup:  # the warm-up's samples are drawn whole
                    wave = min(wave, params.warmup - len(candidates))
                else:
                    lows = [
                        lowest_window(confidences(c.completion.logprobs), params.window)
                        for c in candidates
                    ]
                    halt = LowWindow(params.window, bar(lows, params.halt_keep))
            max_tokens = min(params.max_tokens, budget.remaining_tokens() // wave)
            # a streamed request sees the first wave's first sample as it decodes
            draft = Draft(self.engine.tokenizer) if params.drafts and not candidates else None
            watch = draft.watch if draft else None
            seed = self.rng.getrandbits(31)
            request = params.generation((), max_tokens, seed, wave, watch, halt)
            call = asyncio.ensure_future(budget.generate(self.engine, [request]))
            try:
                if draft is not None:
                    async for text in draft.texts(call):
                        yield DraftDelta(text)
                outputs = await call
            finally:
                call.cancel()  # the client has gone: the engine lets go of the wave
            if outputs is None:
                break
            if draft is not None and (rest := draft.add(outputs[0][0].text)):
                yield DraftDelta(rest)
            if halt is not None:  # as if every engine stopped the samples the halt stops
                outputs = [[halt.cut(c, self.engine.tokenizer) for c in outputs[0]]]
            candidates += [self._candidate(completion) for completion in outputs[0]]
        if not candidates:
            for event in self.writer.commit(NOTHING, last=True):
                yield event
            stop = budget.exhausted() or "max_search_tokens"
            root = self.tree.root
            yield self.finished(root, finish_reason="length", ended_by=stop, reward=0.0)
            return
        judged = (
            None if params.verifier is None else await self._judged(params.verifier, candidates)
        )
        chosen, self.chosen_by = self.choose(judged or candidates)
        if judged and self.chosen_by == "reward":
            self.chosen_by = "verifier"  # the judge's trust stood in for the reward
        for event in self.writer.commit_path(chosen.steps, stop=chosen.completion.stop_reason):
            yield event
        finish_reason = chosen.completion.finish_reason
        ended_by: EndReason = "completed"
        if finish_reason != "stop":
            # a sample cut short of the answer's own bound was cut by the search's budget
            budget_cut = len(chosen.completion.token_ids) < params.max_tokens
            ended_by = "max_search_tokens" if budget_cut else "max_tokens"
        yield self.finished(
            chosen.node, finish_reason=finish_reason, ended_by=ended_by, reward=chosen.reward
        )

    async def _judged(
        self, verifier: Verifier, candidates: list[Candidate]
    ) -> list[Candidate] | None:
        """The candidates a choice is made among (those that ended, else all), each scored by
        the verifier instead of its reward; ``None`` if the budget cut the judging."""
        candidates = ended(candidates) or candidates
        scores = await verifier.judge([c.text for c in candidates], self.budget)
        if scores is None:
            return None
        for candidate, score in zip(candidates, scores, strict=True):
            candidate.node.value_sum = score  # the trace shows what chose
        return [replace(c, reward=s) for c, s in zip(candidates, scores, strict=True)]

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

    def choose(self, candidates: list[Candidate]) -> tuple[Candidate, ChosenBy]:
        """The candidate to answer with, and by what rule."""
        return highest_reward(candidates), "reward"


class SelfConsistencyRun(SamplingRun):
    """Method ``self_consistency``: the elected answer's most rewarded sample."""

    def choose(self, candidates: list[Candidate]) -> tuple[Candidate, ChosenBy]:
        """The candidate to answer with, and by what rule."""
        return vote(candidates, self.params.voting, self.params.keep)
