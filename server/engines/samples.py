"""What the local engines track for each sequence they generate, and when one is finished."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.engine import Completion, GenerationRequest, Tokenizer, TokenLogprob
from server.engines import sampling
from server.engines.constraints import Guide


@dataclass(slots=True)
class Sample:
    """One sequence being generated: the ``index``-th sample of request ``request``."""

    request: int
    index: int
    spec: GenerationRequest
    rng: np.random.Generator | None = None  # sample's own stream (seed + index); None: greedy
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish: Completion | None = None
    cached_tokens: int = 0  # prompt tokens of its request taken from the prefix cache
    guide: Guide | None = None  # where the request is constrained: what may come next

    def advance(
        self,
        logprobs: np.ndarray[Any, Any],
        candidates: np.ndarray[Any, Any] | None,
        tokenizer: Tokenizer,
    ) -> int:
        """Choose the next token from this step's raw ``logprobs`` (with the step's top-k
        ``candidates``, see :mod:`server.engines.sampling`) and record it; finish the sample on
        a stop token or string (which stays in the output), where the request's ``halt`` says
        so, or at ``max_tokens``.  A guided sample chooses among the tokens its guide allows;
        the logprobs stay the raw ones."""
        allowed = logprobs if self.guide is None else self.masked(logprobs)
        token = sampling.choose(self.spec, allowed, self.rng)
        top = sampling.ranked(logprobs, candidates, self.spec.logprobs)
        self.record(TokenLogprob(token, float(logprobs[token]), top), tokenizer)
        return token

    def masked(self, logprobs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``logprobs`` with every token the guide forbids next at ``-inf``."""
        assert self.guide is not None
        return np.where(self.guide.allowed(len(logprobs)), logprobs, -np.inf)

    def record(self, chosen: TokenLogprob, tokenizer: Tokenizer) -> None:
        """Append the token chosen for this sample (by :meth:`advance`, or on the device by
        :mod:`server.engines.tensor_sampling`); finish the sample if it ends here."""
        if self.guide is not None:
            self.guide.read(chosen.token_id)
        self.token_ids.append(chosen.token_id)
        self.logprobs.append(chosen)
        if self.spec.watch is not None:
            self.spec.watch(self.index, self.logprobs)
        self._finish(tokenizer)

    def _finish(self, tokenizer: Tokenizer) -> None:
        stop = self._stop(tokenizer)
        halted = stop is None and self.spec.halt is not None and self.spec.halt(self.logprobs)
        if stop is None and not halted and len(self.token_ids) < self.spec.max_tokens:
            return
        self.finish = Completion(
            token_ids=tuple(self.token_ids),
            text=tokenizer.decode(self.token_ids),
            logprobs=tuple(self.logprobs),
            finish_reason="stop" if stop is not None else "length",
            stop_reason=stop,
            cached_tokens=self.cached_tokens,
        )

    def _stop(self, tokenizer: Tokenizer) -> str | int | None:
        token = self.token_ids[-1]
        if token in tokenizer.eos_token_ids or token in self.spec.stop_token_ids:
            return token
        if self.spec.stop:
            longest = max(len(s) for s in self.spec.stop)
            tail = tokenizer.decode(self.token_ids[-(4 * longest + 4) :])
            return next((s for s in self.spec.stop if s in tail), None)
        return None
