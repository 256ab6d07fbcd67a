"""Engine throughput: generated tokens per second of each installed engine at 1, 4, 8 and 16
sequences decoding together (top-5 logprobs on, temperature 1), made up three ways: one call
with ``n`` samples; ``n`` calls of one sample each at once (cross-request batching); the same
``n`` calls one after another (no batching, for the ratio); one call again on a prompt of an
MCTS node's length (~420 tokens), the context the load benchmark's searches decode in; and one
call held to a JSON schema (structured outputs: the grammar's mask before every token), whose
ratio to the first is what constrained decoding costs.

Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from dataclasses import replace
from typing import Any

import torch

from bench.report import report
from search.engine import Completion, GenerationRequest
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.base import ServingEngine
from server.openai.ask import Ask
from server.openai.structured import output_constraint

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
# ~420 tokens: the length of an MCTS node's prompt (question + path) in the load benchmark, where
# attention over the context costs as much as the weights on a 135M model
LONG_PROMPT = [
    {
        "role": "user",
        "content": " ".join(["The keeper climbed the stairs and lit the lamp again."] * 35)
        + " Continue the story.",
    }
]


def installed() -> list[str]:
    """The engines this machine can run."""
    kinds = ["transformers"]
    if importlib.util.find_spec("llama_cpp") is not None:
        kinds.insert(0, "llamacpp")
    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        kinds.append("vllm")
    return kinds


MODES = {
    "one": "one call",
    "concurrent": "concurrent calls",
    "sequential": "sequential calls",
    "long": "one call, long prompt",
    "json": "one call, JSON schema",
}
# a schema that leaves the story free: the mask is worked out for every token of it
STORY = {
    "type": "json_schema",
    "name": "story",
    "schema": {
        "type": "object",
        "properties": {"title": {"type": "string"}, "story": {"type": "string"}},
        "required": ["title", "story"],
    },
}


def throughput(engine: ServingEngine, sequences: int, tokens: int, mode: str) -> dict[str, Any]:
    """``sequences`` samples of up to ``tokens`` tokens each, made up as ``mode`` says."""
    chat = LONG_PROMPT if mode.endswith("long prompt") else PROMPT
    prompt = tuple(engine.tokenizer.apply_chat_template(chat))
    request = GenerationRequest(prompt, max_tokens=tokens, seed=1, logprobs=5)
    if mode.endswith("JSON schema"):
        asked = Ask(engine.model_name, tuple(chat), format=STORY)
        request = replace(request, constraint=output_constraint(asked, [], engine.tokenizer))
    calls = [replace(request, seed=1 + i) for i in range(sequences)]

    async def run() -> list[list[list[Completion]]]:
        if mode.startswith("one call"):
            return [await engine.generate([replace(request, n=sequences)])]
        if mode == "concurrent calls":
            return list(await asyncio.gather(*(engine.generate([c]) for c in calls)))
        return [await engine.generate([c]) for c in calls]

    started = time.perf_counter()
    results = asyncio.run(run())
    seconds = time.perf_counter() - started
    generated = sum(len(c.token_ids) for result in results for samples in result for c in samples)
    return {
        "sequences": sequences,
        "mode": mode,
        "tokens": generated,
        "seconds": seconds,
        "tokens_per_s": generated / seconds,
    }


def machine() -> dict[str, str]:
    """The versions and device that gave the numbers."""
    facts = {"torch": torch.__version__}
    if torch.cuda.is_available():
        facts["device"] = torch.cuda.get_device_name()
    if importlib.util.find_spec("vllm") is not None:
        from importlib.metadata import version

        facts["vllm"] = version("vllm")
    return facts


def main() -> None:
    """Measure every installed engine; print a table; write bench/results/engines.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--name", default="engines", help="results go to bench/results/NAME.json")
    parser.add_argument("--engines", help="comma-separated (default: every installed one)")
    parser.add_argument("--sequences", default="1,4,8,16", help="comma-separated batch sizes")
    parser.add_argument("--modes", default=",".join(MODES), help=f"of {', '.join(MODES)}")
    parser.add_argument(
        "--sequential-up-to",
        type=int,
        help="run the sequential mode (no batching: the slowest) only up to this many sequences",
    )
    args = parser.parse_args()
    kinds = args.engines.split(",") if args.engines else installed()
    sizes = [int(n) for n in args.sequences.split(",")]
    limit = args.sequential_up_to or max(sizes)
    rows = []
    for kind in kinds:
        engine = load_engine(ServerArgs(engine=kind))
        try:
            for mode in (MODES[m] for m in args.modes.split(",")):  # warm up (a grammar's
                throughput(engine, 1, 8, mode)  # first use builds llguidance's tokenizer)
            # modes side by side at each size: a load beside the run disturbs them alike
            for sequences in sizes:
                for mode in (MODES[m] for m in args.modes.split(",")):
                    if mode == MODES["sequential"] and sequences > limit:
                        continue
                    row = throughput(engine, sequences, args.tokens, mode)
                    rows.append({"engine": kind, **row})
        finally:
            engine.close()
    rows.sort(key=lambda row: list(MODES.values()).index(row["mode"]))  # stable: sizes stay
    report(args.name, rows, **machine())


if __name__ == "__main__":
    main()
