"""Load: N concurrent streaming MCTS clients (N = 1, 4, 8, 16) against a live server over
loopback, and the same N requests one after another in the same run, for the ratio.

Per N: requests/s, generated tokens/s (the searches' own count), p50/p95 latency and time to
the first reasoning token.  Starts ``ponder serve`` unless ``--url`` is given.  Prints numbers;
never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import httpx

from bench.inprocess import QUESTION
from bench.report import report
from server.local import live_server

SEARCH = {
    "method": "mcts",
    "granularity": "mini_step",
    "step_tokens": 32,
    "iterations": 4,
    "branching": 2,
    "rollout_tokens": 64,
    # answers of at most 128 tokens; a request's max_tokens would bound the whole search
    "max_depth": 4,
}


async def one(client: httpx.AsyncClient, model: str, seed: int) -> dict[str, float]:
    """One streamed search: latency, time to first reasoning text, tokens generated."""
    body = {
        "model": model,
        "messages": QUESTION,
        "seed": seed,
        "stream": True,
        "search": SEARCH,
    }
    started = time.perf_counter()
    first, generated = None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk["choices"]:
                delta = choice["delta"]
                if first is None and (delta.get("reasoning") or delta.get("content")):
                    first = time.perf_counter() - started
            if chunk.get("search"):
                generated = chunk["search"]["generated_tokens"]
    latency = time.perf_counter() - started
    return {
        "latency": latency,
        "first": latency if first is None else first,
        "generated": generated,
    }


async def wave(base: str, model: str, n: int, concurrent: bool) -> dict[str, Any]:
    """``n`` requests, all at once or one after another."""
    async with httpx.AsyncClient(base_url=base, timeout=3600) as client:
        started = time.perf_counter()
        if concurrent:
            runs = await asyncio.gather(*(one(client, model, seed) for seed in range(n)))
        else:
            runs = [await one(client, model, seed) for seed in range(n)]
        wall = time.perf_counter() - started
    latencies = sorted(r["latency"] for r in runs)
    return {
        "clients": n,
        "mode": "concurrent" if concurrent else "sequential",
        "wall_s": wall,
        "requests_per_s": n / wall,
        "tokens_per_s": sum(r["generated"] for r in runs) / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(n - 1, round(0.95 * (n - 1)))],
        "first_token_p50_s": statistics.median(r["first"] for r in runs),
    }


def main() -> None:
    """Every N both ways; write bench/results/load.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running ponder server (default: start one)")
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument(
        "--sequential-up-to",
        type=int,
        help="send the requests one after another too only up to this many clients",
    )
    args = parser.parse_args()
    rows = []
    with live_server(args.url) as base:
        model = httpx.get(f"{base}/v1/models").json()["data"][0]["id"]
        asyncio.run(wave(base, model, 1, concurrent=False))  # warm up
        clients = [int(c) for c in args.clients.split(",")]
        limit = args.sequential_up_to or max(clients)
        for n in clients:
            for concurrent in (True, False) if n <= limit else (True,):
                rows.append(asyncio.run(wave(base, model, n, concurrent)))
    report("load", rows)


if __name__ == "__main__":
    main()
