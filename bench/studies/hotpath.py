"""The host-side cost of a llama.cpp decode step on a large vocabulary: milliseconds per row of
each sampling function (:mod:`server.engines.sampling`) on the model's own logits (151,936
tokens on the default model, the 0.5B), and the engine's tokens/s at 1, 4 and 8 rows with the
share of its time that sampling takes, in one run.

The logits are the model's next-token rows over a worked answer (teacher-forced): some
confident, some hesitant, as a search's steps are.  Times are medians of many repeats (other
jobs on a shared machine move them less) and the least of them (the cost on a quiet core).
The README says how to profile a step with py-spy.

Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.engines import throughput
from bench.inprocess import QUESTION
from bench.report import report
from search.engine import GenerationRequest
from server.args import ServerArgs
from server.engines import load_engine, sampling
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.samples import Sample
from server.model_source import resolve

Array = np.ndarray[Any, Any]

ANSWER = (
    "In April Natalia sold 48 clips. In May she sold half as many, 48 / 2 = 24 clips. "
    "Altogether she sold 48 + 24 = 72 clips in April and May. The answer is 72."
)
TOP_K = 5  # alternatives ranked per token, as the benchmarks and searches ask
ROWS = 8  # rows per step
SETTINGS = {  # name: temperature, top_p, stop strings (0: greedy)
    "greedy": (0.0, 1.0, ()),
    "t1": (1.0, 1.0, ()),  # the search's default
    "t0.7 p0.9": (0.7, 0.9, ()),  # a common client setting
    "t1 stop": (1.0, 1.0, ("\n\n",)),  # a stop string: the tail is decoded every token
}


def answer_logits(path: str, threads: int | None) -> Array:
    """The model's logits before each token of :data:`ANSWER`, after the question."""
    from llama_cpp import Llama

    model = Llama(model_path=path, n_ctx=512, logits_all=True, verbose=False, n_threads=threads)
    try:
        prompt = model.tokenize(QUESTION[0]["content"].encode() + b"\n")
        answer = model.tokenize(ANSWER.encode(), add_bos=False)
        model.eval(prompt + answer)
        rows = np.asarray(model.scores[len(prompt) - 1 : len(prompt) + len(answer) - 1])
    finally:
        model.close()
    return rows.astype(np.float32)


def timed_ms(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The median and the least wall time of ``work``, in milliseconds (the least: its cost
    when nothing else wanted the core)."""
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), 1000 * min(times)


def step(logits: Array, samples: list[Sample], tokenizer: HFTokenizer) -> None:
    """What llama.cpp's scheduler does with a step's logits: the batch's logprobs and top-k,
    then each row's sample takes its token."""
    logprobs = sampling.log_softmax(logits)
    top = sampling.top_candidates(logprobs, TOP_K)
    assert top is not None
    for row, sample in enumerate(samples):
        sample.advance(logprobs[row], top[row], tokenizer)


def sampling_costs(
    logits: Array, tokenizer: HFTokenizer, repeats: int
) -> dict[str, tuple[float, float]]:
    """Milliseconds per row (median, least) of each part of a step, over batches of
    :data:`ROWS` rows, and of the whole :func:`step` at each of :data:`SETTINGS`."""
    batches = [logits[i : i + ROWS] for i in range(0, len(logits) - ROWS + 1, ROWS)]
    logprobs = [sampling.log_softmax(batch) for batch in batches]

    def per_row(work: Callable[[int], object]) -> tuple[float, float]:
        every = range(len(batches))
        median, least = timed_ms(lambda: [work(i) for i in every], repeats)
        return median / (len(batches) * ROWS), least / (len(batches) * ROWS)

    costs = {
        "log_softmax": per_row(lambda i: sampling.log_softmax(batches[i])),
        "top_candidates": per_row(lambda i: sampling.top_candidates(logprobs[i], TOP_K)),
    }
    for name, (temperature, top_p, stop) in SETTINGS.items():
        spec = GenerationRequest(
            (0,), max_tokens=1 << 30, temperature=temperature, top_p=top_p, seed=1, stop=stop
        )
        rngs = [sampling.generator(spec, r) for r in range(ROWS)]

        def choose(i: int, spec: GenerationRequest = spec, rngs: list[Any] = rngs) -> object:
            return [sampling.choose(spec, lp, g) for lp, g in zip(logprobs[i], rngs, strict=True)]

        samples = [Sample(0, r, spec, rngs[r]) for r in range(ROWS)]
        if not stop:
            costs[f"choose {name}"] = per_row(choose)
        costs[f"step {name}"] = per_row(lambda i, s=samples: step(batches[i], s, tokenizer))
    return costs


def main() -> None:
    """Time the sampling functions, then the engine; print a table; write
    bench/results/hotpath.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="a GGUF model")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the engine's)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--sequences", default="1,4,8", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=50, help="timings per sampling median")
    args = parser.parse_args()
    source = resolve(args.model)
    tokenizer = HFTokenizer.load(source.tokenizer_folder())
    logits = answer_logits(source.path, args.threads)
    costs = sampling_costs(logits, tokenizer, args.repeats)
    rows: list[dict[str, Any]] = [
        {
            "measure": name,
            "ms_per_row": median,
            "least_ms_per_row": least,
            "sequences": None,
            "tokens_per_s": None,
            "sampling_pct": None,
        }
        for name, (median, least) in costs.items()
    ]
    engine = load_engine(ServerArgs(model=args.model, engine="llamacpp", threads=args.threads))
    try:
        throughput(engine, 1, 8, "one call")  # warm up
        for sequences in (int(n) for n in args.sequences.split(",")):
            result = throughput(engine, sequences, args.tokens, "one call")
            sampled = result["tokens"] * costs["step t1"][0] / 1000  # a token: a row sampled
            rows.append(
                {
                    "measure": "engine t1",
                    "ms_per_row": None,
                    "least_ms_per_row": None,
                    "sequences": sequences,
                    "tokens_per_s": result["tokens_per_s"],
                    "sampling_pct": 100 * sampled / result["seconds"],
                }
            )
    finally:
        engine.close()
    report(
        "hotpath",
        rows,
        model=args.model,
        vocabulary=logits.shape[-1],
        logit_rows=len(logits),
        threads=args.threads or "default",
    )


if __name__ == "__main__":
    main()
