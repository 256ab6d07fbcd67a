"""Engine-agnostic reasoning search: MCTS and friends, speaking only :class:`Engine`.

Nothing here imports HTTP code, pydantic, torch or any particular engine.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator

from search.engine import (
    Completion,
    Engine,
    EngineStats,
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
    Started,
)
from search.methods import METHODS
from search.types import SearchConfigError, SearchParams, SearchResult


def run_search(params: SearchParams, engine: Engine) -> AsyncGenerator[SearchEvent, None]:
    """Run ``params.method`` on ``engine``; seeded runs are reproducible end to end."""
    if params.method not in METHODS:
        raise SearchConfigError("method", f"unknown search method {params.method!r}")
    return METHODS[params.method](params, engine, random.Random(params.seed))


__all__ = [
    "METHODS",
    "AnswerDelta",
    "Completion",
    "Engine",
    "EngineStats",
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
