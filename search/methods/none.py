"""Method ``none``: plain sampling, no search; the baseline every search is measured against.

Generation runs in engine calls of ``step_tokens`` tokens, so the answer streams as it is
produced.  Each call draws its own seed, so a sample depends on where the calls split it: they
split it the same way whether or not the caller streams, and a seed gives one answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from search.engine import FinishReason, TokenLogprob
from search.events import SearchEvent, StopReason
from search.run import SearchRun


class NoSearchRun(SearchRun):
    """Method ``none``: one answer, generated as it comes; no tree."""

    implicit = "content"

    async def search(self) -> AsyncGenerator[SearchEvent, None]:
        """Generate one answer and yield it as reasoning/answer deltas."""
        params, budget, writer = self.params, self.budget, self.writer
        logprobs: list[TokenLogprob] = []
        finish_reason: FinishReason = "length"
        stop_reason: StopReason = "max_tokens"
        while True:
            generated = len(writer.token_ids)
            max_tokens = min(
                params.step_tokens, params.max_tokens - generated, budget.remaining_tokens()
            )
            if max_tokens < 1:
                stop_reason = budget.exhausted() or "max_tokens"
                break
            request = params.generation(writer.token_ids, max_tokens, self.rng.getrandbits(31))
            outputs = await budget.generate(self.engine, [request])
            if outputs is None:
                stop_reason = budget.exhausted() or "max_seconds"
                break
            completion = outputs[0][0]
            logprobs += completion.logprobs
            done = completion.finish_reason == "stop"
            last = done or generated + len(completion.token_ids) >= params.max_tokens
            stop = completion.stop_reason
            for event in writer.commit(completion.token_ids, last=last, stop=stop):
                yield event
            if done:
                finish_reason, stop_reason = "stop", "completed"
            if last:
                break
        if stop_reason in ("max_seconds", "max_search_tokens", "interrupted"):
            for event in writer.commit((), last=True):
                yield event
        reward = self.reward(self.cutter.split(writer.token_ids, logprobs))
        yield self.finished(
            None, finish_reason=finish_reason, stop_reason=stop_reason, reward=reward
        )
