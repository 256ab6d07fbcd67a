"""Orchestration overhead: one MCTS search on the default engine, wall time against the time
the engine spent computing; what is left is ponder's (search, event loop, thread hand-offs).

Prints numbers; never fails on speed.
"""

from __future__ import annotations

from bench.inprocess import QUESTION, mcts_params, search_cost
from bench.report import report
from server.args import ServerArgs
from server.engines import load_engine


def main() -> None:
    """Three seeded searches; print a table; write bench/results/overhead.json."""
    engine = load_engine(ServerArgs())
    try:
        prompt = tuple(engine.tokenizer.apply_chat_template(QUESTION))
        search_cost(engine, mcts_params(prompt, iterations=1, max_tokens=16))  # warm up
        rows = [
            {"seed": seed, **search_cost(engine, mcts_params(prompt, seed=seed)).row()}
            for seed in (1, 2, 3)
        ]
    finally:
        engine.close()
    report("overhead", rows, engine=type(engine).__name__)


if __name__ == "__main__":
    main()
