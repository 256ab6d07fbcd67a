"""Method ``none``: plain sampling, no search; the baseline every search is measured against.

Generation runs in engine calls of ``step_tokens`` tokens, so the answer streams as it is
produced.  Each call draws its own seed, so a sample depends on where the calls split it: they
split it the same way whether or not the caller streams, and a seed gives one answer.

A request for ``n`` answers is one run: its first engine call asks for ``n`` samples of the
prompt (computed once, then forked), and every later call continues all unfinished answers
together, each with seeds from its own generator.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field, replace

from search.answer import PathWriter
from search.budget import Budget
from search.choices import choice_seed
from search.engine import Completion, Engine, FinishReason, GenerationRequest, TokenLogprob
from search.events import EndReason, SearchEvent
from search.params import SearchParams
from search.run import SearchRun
from search.tree import NOTHING, Step

BUDGET_CUTS = ("max_seconds", "max_search_tokens", "interrupted")


@dataclass(slots=True)
class _Answer:
    """One choice's answer as it grows; ``ended_by`` is set once it has ended."""

    choice: int
    writer: PathWriter
    rng: random.Random
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason = "length"
    ended_by: EndReason | None = None


class NoSearchRun(SearchRun):
    """Method ``none``: ``choices`` answers, generated as they come; no tree.  Every generated
    token is on an answer, so each answer's search-token budget is its own length."""

    implicit = "content"

    def __init__(
        self,
        params: SearchParams,
        engine: Engine,
        rng: random.Random,
        budget: Budget,
        choices: int = 1,
    ) -> None:
        super().__init__(params, engine, rng, budget)
        self.answers = [_Answer(0, self.writer, rng)] + [
            _Answer(
                i,
                PathWriter(engine.tokenizer, params, implicit=self.implicit),
                random.Random(choice_seed(params.seed, i)),
            )
            for i in range(1, choices)
        ]

    async def search(self) -> AsyncGenerator[SearchEvent, None]:
        """Generate every answer and yield each as reasoning/answer deltas."""
        first = True
        live = list(self.answers)
        while live:
            asks = [(answer, room) for answer in live if (room := self._room(answer)) >= 1]
            live = [answer for answer, _ in asks]
            if not live:
                break
            requests = self._requests(asks, first)
            outputs = await self.budget.generate(self.engine, requests)
            if outputs is None:
                for answer in live:
                    answer.ended_by = self.budget.exhausted() or "max_seconds"
                break
            completions = outputs[0] if first else [batch[0] for batch in outputs]
            first = False
            for answer, completion in zip(live, completions, strict=True):
                for event in self._grow(answer, completion):
                    yield event
            live = [answer for answer in live if answer.ended_by is None]
        for answer in self.answers:
            for event in self._close(answer):
                yield event

    def _room(self, answer: _Answer) -> int:
        """Tokens ``answer``'s next call may generate; below 1 it has ended (and says why)."""
        params, written = self.params, len(answer.writer.token_ids)
        room = min(params.step_tokens, params.max_tokens - written)
        room = min(room, params.max_search_tokens - written)
        if room < 1 and answer.ended_by is None:
            out_of_path = written >= params.max_tokens
            answer.ended_by = "max_tokens" if out_of_path else "max_search_tokens"
        return room

    def _requests(self, asks: list[tuple[_Answer, int]], first: bool) -> list[GenerationRequest]:
        """One request for every answer's sample at first (all share the prompt), then one per
        answer still going."""
        params = self.params
        if first:
            answer, room = asks[0]
            return [params.generation((), room, answer.rng.getrandbits(31), n=len(asks))]
        return [
            params.generation(answer.writer.token_ids, room, answer.rng.getrandbits(31))
            for answer, room in asks
        ]

    def _grow(self, answer: _Answer, completion: Completion) -> Iterator[SearchEvent]:
        """Commit one call's text to ``answer``, ending it on a stop or at ``max_tokens``."""
        written = len(answer.writer.token_ids)
        answer.logprobs += completion.logprobs
        done = completion.finish_reason == "stop"
        last = done or written + len(completion.token_ids) >= self.params.max_tokens
        stop = completion.stop_reason
        step = Step.of(completion.token_ids, completion.logprobs)
        for event in answer.writer.commit(step, last=last, stop=stop):
            yield replace(event, choice=answer.choice)
        if done:
            answer.finish_reason, answer.ended_by = "stop", "completed"
        elif last:
            answer.ended_by = "max_tokens"

    def _close(self, answer: _Answer) -> Iterator[SearchEvent]:
        """End ``answer``: flush what a budget cut left held back, then its ``Finished``."""
        ended_by = answer.ended_by or "max_tokens"
        writer = answer.writer
        if ended_by in BUDGET_CUTS:
            for event in writer.commit(NOTHING, last=True):
                yield replace(event, choice=answer.choice)
        reward = self.reward(self.cutter.split(writer.token_ids, answer.logprobs))
        yield self.finished(
            None,
            finish_reason=answer.finish_reason,
            ended_by=ended_by,
            reward=reward,
            writer=writer,
            generated=len(writer.token_ids),
            choice=answer.choice,
        )
