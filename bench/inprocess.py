"""Searches run in this process on an engine, for the benchmarks that look inside the engine:
what a search cost the engine (busy time, prompt tokens) against its wall time."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from search import Finished, SearchParams, SearchResult, run_search
from search.engine import Engine
from server.engines.stats import EngineStats


class CountedEngine(Engine, Protocol):
    """An engine whose counters a benchmark reads around a search."""

    @property
    def stats(self) -> EngineStats: ...


QUESTION = [
    {
        "role": "user",
        "content": "Natalia sold clips to 48 of her friends in April, and "
        "then she sold half as many clips in May. How many clips did Natalia sell "
        "altogether in April and May?",
    }
]


@dataclass(frozen=True, slots=True)
class Cost:
    """What one search took: wall time, engine time, prompt tokens asked for and computed."""

    result: SearchResult
    wall_seconds: float
    engine_seconds: float
    prompt_requested: int
    prompt_computed: int

    def row(self) -> dict[str, Any]:
        """The benchmark-table view."""
        return {
            "wall_s": self.wall_seconds,
            "engine_s": self.engine_seconds,
            "overhead_pct": 100 * (1 - self.engine_seconds / self.wall_seconds),
            "generated": self.result.generated_tokens,
            "prompt_requested": self.prompt_requested,
            "prompt_computed": self.prompt_computed,
            "computed_ratio": self.prompt_computed / max(self.prompt_requested, 1),
        }


def mcts_params(prompt: tuple[int, ...], **overrides: Any) -> SearchParams:
    """The benchmarks' MCTS: 32-token mini-steps, 8 iterations, branching 2, 64-token
    rollouts, answers of at most 128 tokens, seeded."""
    options: dict[str, Any] = {
        "method": "mcts",
        "granularity": "mini_step",
        "step_tokens": 32,
        "iterations": 8,
        "branching": 2,
        "rollout_tokens": 64,
        "max_tokens": 128,
        "seed": 1,
    }
    return replace(SearchParams(prompt_token_ids=prompt), **{**options, **overrides})


def search_cost(engine: CountedEngine, params: SearchParams) -> Cost:
    """Run one search to the end and read the engine's counters around it."""
    stats: EngineStats = engine.stats
    before = replace(stats)

    async def run() -> SearchResult:
        result = None
        async for event in run_search(params, engine):
            if isinstance(event, Finished):
                result = event.result
        assert result is not None
        return result

    started = time.perf_counter()
    result = asyncio.run(run())
    wall = time.perf_counter() - started
    computed = stats.prompt_tokens_computed - before.prompt_tokens_computed
    cached = stats.prompt_tokens_cached - before.prompt_tokens_cached
    return Cost(result, wall, stats.busy_seconds - before.busy_seconds, computed + cached, computed)


def bench_engine(args: argparse.Namespace) -> Engine:
    """The engine ``bench.eval``'s in-process modes load: ``--engine`` and ``--model`` (the
    server's default model without one) and ``--serve-arg`` flags, as ``ponder serve`` would."""
    from server.cli import parse_args
    from server.engines import load_engine

    serve = ["serve", "--engine", args.engine, *(["--model", args.model] if args.model else [])]
    return load_engine(parse_args([*serve, *args.serve_arg]))


def user_prompt(engine: Engine, text: str) -> tuple[int, ...]:
    """``text`` as the one user message of a chat, template applied: an eval problem's prompt."""
    template: Callable[[list[dict[str, str]]], list[int]] = engine.tokenizer.apply_chat_template  # type: ignore[attr-defined]
    return tuple(template([{"role": "user", "content": text}]))


def saved_records(args: argparse.Namespace) -> tuple[Path, list[dict[str, Any]]]:
    """``--results``/NAME.records.json and the records it holds (none with ``--fresh``): what
    an in-process mode of ``bench.eval`` resumes from, rewriting the file after each answer."""
    partial = args.results / f"{args.name}.records.json"
    args.results.mkdir(parents=True, exist_ok=True)
    records = json.loads(partial.read_text()) if partial.exists() and not args.fresh else []
    return partial, records


def write_results(
    args: argparse.Namespace, model: str, text: str, numbers: dict[str, Any], records: list[Any]
) -> None:
    """Print ``text`` and write it to NAME.md; the run (model, flags, ``numbers``, records) to
    NAME.json."""
    print(text)
    (args.results / f"{args.name}.md").write_text(text + "\n")
    document = {
        "model": model,
        "args": {k: v for k, v in vars(args).items() if k not in ("config", "results")},
        **numbers,
        "records": records,
    }
    (args.results / f"{args.name}.json").write_text(
        json.dumps(document, indent=1, ensure_ascii=False)
    )
