"""Search methods by name.  Every method has the signature of :func:`search.mcts.run_mcts`."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Callable

from search.engine import Engine
from search.events import SearchEvent
from search.mcts import run_mcts
from search.methods.plain import run_plain
from search.types import SearchParams

SearchMethod = Callable[[SearchParams, Engine, random.Random], AsyncGenerator[SearchEvent, None]]

METHODS: dict[str, SearchMethod] = {"mcts": run_mcts, "none": run_plain}

# Names the request surface already accepts; each answers a clear 400 until it is implemented.
PLANNED_METHODS = ("best_of_n", "self_consistency", "beam")

__all__ = ["METHODS", "PLANNED_METHODS", "SearchMethod"]
