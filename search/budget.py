"""Search-wide budgets: tokens generated and wall time, enforced around every engine call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from search.engine import Completion, Engine, GenerationRequest
from search.types import SearchParams, StopReason


class Budget:
    """Counts what a search generates and stops it when ``max_search_tokens`` or
    ``max_seconds`` runs out.  A call that outlives the deadline is cancelled (which frees the
    engine) and reported as ``None``."""

    def __init__(self, params: SearchParams) -> None:
        self._max_tokens = params.max_search_tokens
        self._deadline = (
            None if params.max_seconds is None else time.monotonic() + params.max_seconds
        )
        self._timed_out = False
        self.generated = 0

    def remaining_tokens(self) -> int:
        """Tokens the search may still generate."""
        return max(self._max_tokens - self.generated, 0)

    def exhausted(self) -> StopReason | None:
        """Which budget has run out, if any."""
        if self._timed_out or (self._deadline is not None and time.monotonic() >= self._deadline):
            return "max_seconds"
        if self.remaining_tokens() == 0:
            return "max_search_tokens"
        return None

    async def generate(
        self, engine: Engine, requests: Sequence[GenerationRequest]
    ) -> list[list[Completion]] | None:
        """Run one engine call within the deadline; ``None`` if the deadline cut it short."""
        timeout = None if self._deadline is None else max(self._deadline - time.monotonic(), 0)
        try:
            outputs = await asyncio.wait_for(engine.generate(requests), timeout)
        except TimeoutError:
            self._timed_out = True
            return None
        self.generated += sum(len(c.token_ids) for batch in outputs for c in batch)
        return outputs
