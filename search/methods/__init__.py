"""Search methods by name.  Every method has the signature of :func:`search.mcts.run_mcts`."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Callable

from search.budget import Budget
from search.engine import Engine
from search.events import SearchEvent
from search.mcts import run_mcts
from search.methods.beam import run_beam
from search.methods.none import run_none
from search.methods.sampling import run_best_of_n, run_self_consistency
from search.params import SearchParams

SearchMethod = Callable[
    [SearchParams, Engine, random.Random, Budget], AsyncGenerator[SearchEvent, None]
]

METHODS: dict[str, SearchMethod] = {
    "mcts": run_mcts,
    "none": run_none,
    "best_of_n": run_best_of_n,
    "self_consistency": run_self_consistency,
    "beam": run_beam,
}

__all__ = ["METHODS", "SearchMethod"]
