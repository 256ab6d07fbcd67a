"""One streamed MCTS request through a running ponder: the reasoning and answer as they arrive,
the time to the first reasoning text, and the prefix-cache hit rate of that one search (from
``/metrics`` read before and after it: vLLM's own counters where the engine is vLLM, and
ponder's prompt-token counters for every engine).  Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import time

import httpx

from bench.inprocess import QUESTION
from bench.load import SEARCH
from bench.report import report

COUNTERS = (
    "vllm:prefix_cache_hits_total",
    "vllm:prefix_cache_queries_total",
    'ponder_prompt_tokens_total{source="cached"}',
    'ponder_prompt_tokens_total{source="computed"}',
)


def counters(base: str) -> dict[str, float]:
    """The prefix-cache counters on ``/metrics`` now (summed over their other labels)."""
    totals = dict.fromkeys(COUNTERS, 0.0)
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        for name in COUNTERS:
            family, _, label = name.partition("{")
            if line.startswith(family) and (not label or label[:-1] in line):
                totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def main() -> None:
    """Stream one search; print its text and numbers; write bench/results/stream.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="a running ponder server")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    model = httpx.get(f"{base}/v1/models").json()["data"][0]["id"]
    before = counters(base)
    body = {
        "model": model,
        "messages": QUESTION,
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
        "search": SEARCH,
    }
    started, first, search, chunks = time.perf_counter(), None, {}, 0
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            chunks += 1
            search = chunk.get("search") or search
            for choice in chunk["choices"]:
                text = choice["delta"].get("reasoning") or choice["delta"].get("content")
                if text:
                    first = first or time.perf_counter() - started
                    print(text, end="", flush=True)
    wall = time.perf_counter() - started
    after = counters(base)
    delta = {name: after[name] - before[name] for name in COUNTERS}
    queries, cached = delta[COUNTERS[1]], delta[COUNTERS[2]]
    prompt = cached + delta[COUNTERS[3]]
    report(
        "stream",
        [
            {
                "wall_s": wall,
                "first_reasoning_s": first,
                "chunks": chunks,
                "generated_tokens": search.get("generated_tokens"),
                "nodes": search.get("nodes"),
                "vllm_prefix_hit_rate": delta[COUNTERS[0]] / queries if queries else None,
                "ponder_cached_prompt_share": cached / prompt if prompt else None,
            }
        ],
        model=model,
    )


if __name__ == "__main__":
    main()
