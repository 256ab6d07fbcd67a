"""Search-wide budgets: tokens generated, wall time and an outside interrupt, enforced around
every engine call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from search.engine import Completion, Engine, GenerationRequest
from search.events import EndReason
from search.params import SearchParams


class Budget:
    """Counts what a search generates and stops it when ``max_search_tokens`` or
    ``max_seconds`` runs out, or when ``interrupt`` is set (a server that is shutting down).

    A call that outlives the deadline or the interrupt is cancelled (which frees the engine) and
    reported as ``None``; the search then returns the best it has, like any other budget.

    ``clock`` reads seconds (``time.monotonic`` unless a test drives time itself); the deadline
    is ``max_seconds`` after its reading at construction.
    """

    def __init__(
        self,
        params: SearchParams,
        interrupt: asyncio.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_tokens = params.max_search_tokens
        self._clock = clock
        self._deadline = None if params.max_seconds is None else clock() + params.max_seconds
        self._interrupt = interrupt
        self._cut: EndReason | None = None
        self._prompt_tokens = len(params.prompt_token_ids)
        self.generated = 0
        self.cached_tokens: int | None = None  # of the prompt, as the first call found them

    def remaining_tokens(self) -> int:
        """Tokens the search may still generate."""
        return max(self._max_tokens - self.generated, 0)

    def exhausted(self) -> EndReason | None:
        """Which budget has run out, if any."""
        if self._cut is not None:
            return self._cut
        if self._interrupt is not None and self._interrupt.is_set():
            return "interrupted"
        if self._deadline is not None and self._clock() >= self._deadline:
            return "max_seconds"
        if self.remaining_tokens() == 0:
            return "max_search_tokens"
        return None

    async def generate(
        self, engine: Engine, requests: Sequence[GenerationRequest]
    ) -> list[list[Completion]] | None:
        """Run one engine call within the deadline and until an interrupt; ``None`` if either
        cut it short."""
        timeout = None if self._deadline is None else max(self._deadline - self._clock(), 0)
        call = asyncio.ensure_future(engine.generate(requests))
        waiters: set[asyncio.Future[Any]] = {call}
        if self._interrupt is not None:
            waiters.add(asyncio.ensure_future(self._interrupt.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not call.done() or call.cancelled():
            await asyncio.gather(call, return_exceptions=True)  # the engine lets go of it
            self._cut = self.exhausted() or "max_seconds"
            return None
        outputs = call.result()
        self.generated += sum(len(c.token_ids) for batch in outputs for c in batch)
        if self.cached_tokens is None and outputs and outputs[0]:
            self.cached_tokens = min(outputs[0][0].cached_tokens, self._prompt_tokens)
        return outputs
