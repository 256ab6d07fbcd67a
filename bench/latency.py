"""Latency of one request per method, measured side by side against one live server.

Runs the README's request (MCTS, 32-token mini-steps, 4 iterations, branching 2) and the same
prompt with method ``none``, non-streaming, then the MCTS request streamed, and prints wall
time, time to the first reasoning/answer text, tokens and reward.  Starts ``ponder serve`` on a
free loopback port unless ``--url`` points at a running server.  Prints numbers; never fails on
speed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import openai

from server.local import live_server

SNIPPET_SEARCH = {
    "method": "mcts",
    "granularity": "mini_step",
    "step_tokens": 32,
    "iterations": 4,
    "branching": 2,
}
MESSAGES: Any = [{"role": "user", "content": "What is 17*23?"}]


def measure(client: openai.OpenAI, model: str, search: dict[str, Any], seed: int) -> dict[str, Any]:
    """One non-streaming request: wall time, tokens, reward."""
    started = time.monotonic()
    r = client.chat.completions.create(
        model=model, messages=MESSAGES, seed=seed, extra_body={"search": search}
    )
    info = (r.model_extra or {})["search"]
    return {
        "method": search["method"],
        "stream": False,
        "seconds": time.monotonic() - started,
        "first_text_seconds": None,
        "completion_tokens": r.usage.completion_tokens if r.usage else 0,
        "generated_tokens": info["generated_tokens"],
        "reward": info["reward"],
    }


def measure_stream(
    client: openai.OpenAI, model: str, search: dict[str, Any], seed: int
) -> dict[str, Any]:
    """One streaming request: wall time and time to the first reasoning or answer text."""
    started = time.monotonic()
    first: float | None = None
    info: dict[str, Any] = {}
    tokens = 0
    for chunk in client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        seed=seed,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"search": search},
    ):
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if first is None and (delta.content or (delta.model_extra or {}).get("reasoning_content")):
            first = time.monotonic() - started
        info = (chunk.model_extra or {}).get("search") or info
    return {
        "method": search["method"],
        "stream": True,
        "seconds": time.monotonic() - started,
        "first_text_seconds": first,
        "completion_tokens": tokens,
        "generated_tokens": info.get("generated_tokens"),
        "reward": info.get("reward"),
    }


def main() -> None:
    """Measure, print a table, write JSON under bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running ponder server (default: start one)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with live_server(args.url) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", timeout=3600)
        model = client.models.list().data[0].id
        rows = [
            measure(client, model, SNIPPET_SEARCH, args.seed),
            measure(client, model, {"method": "none"}, args.seed),
            measure_stream(client, model, SNIPPET_SEARCH, args.seed),
        ]
    print(
        f"{'method':8} {'stream':6} {'seconds':>8} {'first text s':>12} {'tokens':>6} "
        f"{'generated':>9} {'reward':>6}"
    )
    for row in rows:
        first = row["first_text_seconds"]
        print(
            f"{row['method']:8} {row['stream']!s:6} {row['seconds']:8.2f} "
            f"{'-' if first is None else f'{first:.2f}':>12} {row['completion_tokens']:6} "
            f"{row['generated_tokens']:9} {row['reward']:6.3f}"
        )
    out = Path(__file__).parent / "results" / "latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": model, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
