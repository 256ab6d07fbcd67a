"""When does a streamed request that names no method (the default) show text?
``python -m bench.streaming``.

For each question and seed, the default request twice against one live server: streamed, with
the time to the first reasoning or answer text and its share of the stream's wall time; then
not streamed, whose answer must be the stream's (same seed).  Starts ``ponder serve`` on a free
loopback port, with its prefix cache off, unless ``--url`` points at a running server: llama.cpp's
attention rounds differently once earlier sequences share its KV cache, which can move a sampled
token, so only requests that each start from an empty cache must agree (and none starts warm).
Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import openai

from server.local import live_server

QUESTIONS = {
    # GSM8K's first test problem, the one issue 30 timed (first text at the very end)
    "natalia": "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    "clips in May. How many clips did Natalia sell altogether in April and May?",
    # a colloquial sentence to translate: a short free-text answer
    "translate": "Translate into natural English: 这事儿八字还没一撇呢，你先别急着庆祝。",  # noqa: RUF001
}


def streamed(client: openai.OpenAI, model: str, question: str, seed: int) -> dict[str, Any]:
    """The streamed default request: wall time, first text, and what it said."""
    started = time.monotonic()
    first: float | None = None
    content, reasoning = [], []
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        seed=seed,
        stream=True,
    ):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        thought = (delta.model_extra or {}).get("reasoning_content")
        if first is None and (delta.content or thought):
            first = time.monotonic() - started
        content.append(delta.content or "")
        reasoning.append(thought or "")
    wall = time.monotonic() - started
    return {
        "wall_s": wall,
        "first_text_s": wall if first is None else first,
        "content": "".join(content),
        "reasoning_chars": len("".join(reasoning)),
    }


def main() -> None:
    """Measure, print a table, write ``bench/results/<name>.json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running ponder server (default: start one)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N per question")
    parser.add_argument("--name", default="streaming", help="the results file's name")
    args = parser.parse_args()
    rows = []
    with live_server(args.url, ["--prefix-cache-tokens", "0"]) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", timeout=3600)
        model = client.models.list().data[0].id
        for name, question in QUESTIONS.items():
            for seed in range(1, args.seeds + 1):
                stream = streamed(client, model, question, seed)
                whole = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": question}], seed=seed
                )
                rows.append(
                    {
                        "question": name,
                        "seed": seed,
                        "wall_s": round(stream["wall_s"], 2),
                        "first_text_s": round(stream["first_text_s"], 2),
                        "first_text_share": round(stream["first_text_s"] / stream["wall_s"], 3),
                        "reasoning_chars": stream["reasoning_chars"],
                        "same_answer_unstreamed": stream["content"]
                        == whole.choices[0].message.content,
                    }
                )
                print(json.dumps(rows[-1]))
    shares = [r["first_text_share"] for r in rows]
    summary = {
        "requests": len(rows),
        "median_first_text_share": statistics.median(shares),
        "max_first_text_share": max(shares),
        "same_answer_unstreamed": sum(r["same_answer_unstreamed"] for r in rows),
    }
    print(json.dumps(summary))
    out = Path(__file__).parent / "results" / f"{args.name}.json"
    out.write_text(json.dumps({"model": model, "rows": rows, "totals": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
