"""Engine-agnostic reasoning search: MCTS and friends, speaking only :class:`Engine`.

Nothing here imports HTTP code, pydantic, torch or any particular engine.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from dataclasses import replace

from search.budget import Budget
from search.choices import choice_seed, interleaved
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
    DraftDelta,
    Expanded,
    Finished,
    ReasoningDelta,
    SearchEvent,
    SearchResult,
    Started,
)
from search.methods import METHODS
from search.methods.none import NoSearchRun
from search.params import SearchConfigError, SearchParams


def run_search(
    params: SearchParams, engine: Engine, interrupt: asyncio.Event | None = None, n: int = 1
) -> AsyncGenerator[SearchEvent, None]:
    """Run ``params.method`` on ``engine`` for ``n`` answers (choices ``0..n-1``, named by
    every event); seeded runs are reproducible end to end.

    Method ``none`` draws its ``n`` answers as ``n`` samples of one engine call; any other
    method runs ``n`` searches at once, answer ``i`` seeded by
    :func:`search.choices.choice_seed`, each with the whole of ``params``' budgets.  Setting
    ``interrupt`` ends the search early with the best answer it has (a server that is
    shutting down), exactly as a deadline would.
    """
    if params.method not in METHODS:
        raise SearchConfigError("method", f"unknown search method {params.method!r}")
    if n > 1 and params.method != "none":
        return interleaved(
            [
                run_search(replace(params, seed=choice_seed(params.seed, i)), engine, interrupt)
                for i in range(n)
            ]
        )
    budget, rng = Budget(params, interrupt), random.Random(params.seed)
    if params.method == "none":
        return NoSearchRun(params, engine, rng, budget, choices=n).events()
    return METHODS[params.method](params, engine, rng, budget).events()


__all__ = [
    "METHODS",
    "AnswerDelta",
    "Budget",
    "Completion",
    "DraftDelta",
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
