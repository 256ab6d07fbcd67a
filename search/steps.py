"""Cutting generated tokens into actions (steps) under a request's granularity."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from search.engine import Tokenizer, TokenLogprob
from search.params import SearchParams
from search.tree import Step


class StepCutter:
    """Knows where one action ends: a separator (``step``), a size (``mini_step``/``token``)."""

    def __init__(self, params: SearchParams, tokenizer: Tokenizer) -> None:
        self._params = params
        self._tokenizer = tokenizer

    def first_action(self, token_ids: Sequence[int]) -> int:
        """How many of ``token_ids`` form the first action.

        An end-of-sequence token right after the action joins it, so an answer's last step is
        never an empty one.
        """
        cut = self._step_end(token_ids)
        eos = self._tokenizer.eos_token_ids
        if all(t in eos for t in token_ids[cut:]):
            return len(token_ids)
        return cut

    def split(self, token_ids: Sequence[int], logprobs: Sequence[TokenLogprob]) -> list[Step]:
        """Cut a whole generation into consecutive steps."""
        steps: list[Step] = []
        start = 0
        while start < len(token_ids):
            end = start + self.first_action(token_ids[start:])
            steps.append(Step.of(token_ids[start:end], logprobs[start:end]))
            start = end
        return steps

    def _step_end(self, token_ids: Sequence[int]) -> int:
        params = self._params
        limit = min(len(token_ids), params.action_tokens)
        if params.granularity != "step":
            return limit
        decode = self._tokenizer.decode
        separator = params.step_separator

        def ends_step(count: int) -> bool:
            return separator in decode(token_ids[:count]).lstrip()

        if not ends_step(limit):
            return limit
        return bisect_left(range(limit + 1), True, key=ends_step)
