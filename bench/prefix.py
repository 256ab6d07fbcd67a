"""Prefix reuse: an 8-iteration MCTS search on llama.cpp with its prefix cache on and off, side
by side: prompt tokens the search asked the engine for, tokens the engine computed, wall time.

Prints numbers; never fails on speed.
"""

from __future__ import annotations

from bench.inprocess import QUESTION, mcts_params, search_cost
from bench.report import report
from server.args import ServerArgs
from server.engines import load_engine


def main() -> None:
    """The same seeded searches with the cache on, then off; write bench/results/prefix.json."""
    rows = []
    for cache_tokens in (4096, 0):
        engine = load_engine(ServerArgs(engine="llamacpp", prefix_cache_tokens=cache_tokens))
        try:
            prompt = tuple(engine.tokenizer.apply_chat_template(QUESTION))
            search_cost(engine, mcts_params(prompt, iterations=1, max_tokens=16))  # warm up
            for seed in (1, 2, 3):
                engine.reset_prefix_cache()  # type: ignore[attr-defined]
                cost = search_cost(engine, mcts_params(prompt, seed=seed))
                rows.append({"prefix_cache": cache_tokens > 0, "seed": seed, **cost.row()})
        finally:
            engine.close()
    report("prefix", rows)


if __name__ == "__main__":
    main()
