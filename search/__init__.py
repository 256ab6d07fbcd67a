"""Engine-agnostic reasoning search: MCTS and friends, speaking only :class:`Engine`.

Nothing here imports HTTP code, pydantic, torch or any particular engine.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator

from search.budget import Budget
from search.engine import (
    Completion,
    Engine,
    FinishReason,
    GenerationRequest,
    Tokenizer,
    TokenLogprob,
)
from search.events import (
    AnswerDelta,
    Expanded,
    Finished,
    ReasoningDelta,
    SearchEvent,
    SearchResult,
    Started,
)
from search.methods import METHODS
from search.params import SearchConfigError, SearchParams


def run_search(
    params: SearchParams, engine: Engine, interrupt: asyncio.Event | None = None
) -> AsyncGenerator[SearchEvent, None]:
    """Run ``params.method`` on ``engine``; seeded runs are reproducible end to end.

    Setting ``interrupt`` ends the search early with the best answer it has (a server that is
    shutting down), exactly as a deadline would.
    """
    if params.method not in METHODS:
        raise SearchConfigError("method", f"unknown search method {params.method!r}")
    budget = Budget(params, interrupt)
    return METHODS[params.method](params, engine, random.Random(params.seed), budget).events()


__all__ = [
    "METHODS",
    "AnswerDelta",
    "Budget",
    "Completion",
    "Engine",
    "Expanded",
    "FinishReason",
    "Finished",
    "GenerationRequest",
    "ReasoningDelta",
    "SearchConfigError",
    "SearchEvent",
    "SearchParams",
    "SearchResult",
    "Started",
    "TokenLogprob",
    "Tokenizer",
    "run_search",
]
