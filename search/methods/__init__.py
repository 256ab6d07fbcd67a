"""Search methods by name: the one registry a new method is added to (a request's ``method``
choices, the server's schema and its model aliases are read from it)."""

from __future__ import annotations

from search.methods.beam import BeamRun
from search.methods.mcts import MctsRun
from search.methods.none import NoSearchRun
from search.methods.sampling import BestOfNRun, SelfConsistencyRun
from search.run import SearchRun

METHODS: dict[str, type[SearchRun]] = {
    "mcts": MctsRun,
    "none": NoSearchRun,
    "best_of_n": BestOfNRun,
    "self_consistency": SelfConsistencyRun,
    "beam": BeamRun,
}

__all__ = ["METHODS"]
