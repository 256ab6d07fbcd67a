"""One search against the engine it runs on: the generated tokens/s of one MCTS request alone
(MCTS's default knobs, a GSM8K question), against the engine's own tokens/s at 1, 2, 4,
8 and 16 rows, side by side in one run; and how soon the search streams its first reasoning,
against the end of its first round (where it streamed before decided steps went out early)
and its wall time.

``--parallel`` adds searches with more leaves per engine call (speed only: their accuracy is
the eval's to say).  Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from typing import Any

from bench.engines import throughput
from bench.inprocess import QUESTION
from bench.report import report
from search import AnswerDelta, Expanded, Finished, ReasoningDelta, SearchParams, run_search
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.base import ServingEngine


def one_search(engine: ServingEngine, params: SearchParams) -> dict[str, Any]:
    """Run one search to its end, noting when its first text came (in seconds and in
    tokens generated before it) and when its first round ended."""

    async def run() -> dict[str, Any]:
        started = time.perf_counter()
        first = round_one = first_tokens = None
        generated = spent = 0
        async for event in run_search(params, engine):
            now = time.perf_counter() - started
            if isinstance(event, Expanded):
                spent += event.action_tokens + event.rollout_tokens
                round_one = now if event.round == 1 else round_one
            elif isinstance(event, ReasoningDelta | AnswerDelta) and first is None:
                first, first_tokens = now, spent
            elif isinstance(event, Finished):
                generated = event.result.generated_tokens
        wall = time.perf_counter() - started
        first = wall if first is None else first
        return {
            "parallel": params.parallel,
            "seed": params.seed,
            "wall_s": wall,
            "generated": generated,
            "tokens_per_s": generated / wall,
            "first_reasoning_s": first,
            "first_share": first / wall,
            # the same in generated tokens: what a busy machine's speed cannot distort
            "first_token_share": (generated if first_tokens is None else first_tokens)
            / max(generated, 1),
            "round_one_end_share": (round_one or wall) / wall,
        }

    return asyncio.run(run())


def main() -> None:
    """The engine's curve, then the searches; write bench/results/fill.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="llamacpp")
    parser.add_argument("--model", help="(default: the server's default model)")
    parser.add_argument("--seeds", default="1,2,3", help="default searches, one per seed")
    parser.add_argument("--parallel", default="", help="e.g. 2,4: one more search each (seed 1)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per row for the curve")
    parser.add_argument("--max-tokens", type=int, default=512, help="the searches' answer bound")
    parser.add_argument("--temperature", type=float, default=0.7, help="the searches' sampling")
    args = parser.parse_args()
    chosen = {"model": args.model} if args.model else {}
    engine = load_engine(ServerArgs(engine=args.engine, **chosen))
    try:
        curve = [
            throughput(engine, rows, args.tokens, mode)
            for mode in ("one call", "one call, long prompt")
            for rows in (1, 2, 4, 8, 16)
        ]
        prompt = tuple(engine.tokenizer.apply_chat_template(QUESTION))
        params = replace(
            SearchParams(prompt_token_ids=prompt),
            method="mcts",  # with its default knobs: what --adaptive-parallel widens
            temperature=args.temperature,
            max_tokens=args.max_tokens,
        )
        runs = [(1, int(seed)) for seed in args.seeds.split(",")]
        runs += [(int(p), 1) for p in filter(None, args.parallel.split(","))]
        searches = [
            one_search(engine, replace(params, parallel=parallel, seed=seed))
            for parallel, seed in runs
        ]
    finally:
        engine.close()
    best = max(row["tokens_per_s"] for row in curve)
    for row in searches:
        row["share_of_best"] = row["tokens_per_s"] / best
    report("fill-curve", curve, model=engine.model_name)
    report("fill", searches, model=engine.model_name, engine_best_tokens_per_s=round(best, 1))


if __name__ == "__main__":
    main()
