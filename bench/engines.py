"""Engine throughput: generated tokens per second of each installed engine at 1, 4, 8 and 16
sequences decoding together (one call with ``n`` samples, top-5 logprobs on, temperature 1).

Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from typing import Any

from bench.report import report
from search.engine import GenerationRequest
from server.args import ServerArgs
from server.engines import ServingEngine, load_engine

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def installed() -> list[str]:
    """The engines this machine can run."""
    kinds = ["transformers"]
    if importlib.util.find_spec("llama_cpp") is not None:
        kinds.insert(0, "llamacpp")
    return kinds


def throughput(engine: ServingEngine, sequences: int, tokens: int) -> dict[str, Any]:
    """One call of ``sequences`` samples of up to ``tokens`` tokens each."""
    prompt = tuple(engine.tokenizer.apply_chat_template(PROMPT))
    request = GenerationRequest(prompt, max_tokens=tokens, n=sequences, seed=1, logprobs=5)
    started = time.perf_counter()
    [outputs] = asyncio.run(engine.generate([request]))
    seconds = time.perf_counter() - started
    generated = sum(len(o.token_ids) for o in outputs)
    return {
        "sequences": sequences,
        "tokens": generated,
        "seconds": seconds,
        "tokens_per_s": generated / seconds,
    }


def main() -> None:
    """Measure every installed engine; print a table; write bench/results/engines.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per sequence")
    args = parser.parse_args()
    rows = []
    for kind in installed():
        engine = load_engine(ServerArgs(engine=kind))
        try:
            throughput(engine, 1, 8)  # warm up
            for sequences in (1, 4, 8, 16):
                rows.append({"engine": kind, **throughput(engine, sequences, args.tokens)})
        finally:
            engine.close()
    report("engines", rows)


if __name__ == "__main__":
    main()
