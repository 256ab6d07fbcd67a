"""CPU contention: generated tokens/s of the llama.cpp engine on an idle machine and with cores
kept busy by other processes (``python -c "while True: pass"``, started and stopped here), for
several thread counts and OpenMP wait policies, side by side in one run.

llama.cpp's threads meet at an OpenMP barrier after every operation; a thread that waits there
spins (libgomp's default: ~300,000 spins, about 3 ms) before it sleeps.  When a core is taken by
another process, the threads that have finished spin while the one that shares that core waits
for its turn, and every barrier costs a scheduler time slice.

Each configuration runs in its own process (libgomp reads its wait policy once, when it is
loaded), alternating in rounds so that drift in the machine's load spreads over all of them.
A configuration is ``THREADS[:WAIT]``: THREADS a number or ``auto`` (ponder's default, from the
CPUs the process may use), WAIT ``default`` (what ponder sets up), ``spin`` (libgomp's default,
``GOMP_SPINCOUNT=300000``), ``passive`` (sleep at once, ``GOMP_SPINCOUNT=0``) or a spin count.

Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.engines import PROMPT
from bench.report import report
from search.engine import GenerationRequest
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.llamacpp.engine import LlamaCppEngine

WAITS = {"spin": "300000", "passive": "0"}  # name -> GOMP_SPINCOUNT
CALL_TOKENS = 16  # tokens per call: calls repeat until the measuring time is up


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` processes that each keep a core busy for as long as the block runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def measure(model: str, threads: int | None, sequences: int, seconds: float) -> dict[str, Any]:
    """Tokens/s of calls of ``sequences`` samples each, made one after another for ``seconds``
    (after a warm-up call that also caches the prompt)."""
    engine = load_engine(ServerArgs(engine="llamacpp", model=model, threads=threads))
    assert isinstance(engine, LlamaCppEngine)
    try:
        prompt = tuple(engine.tokenizer.apply_chat_template(PROMPT))

        async def call(seed: int, tokens: int) -> int:
            request = GenerationRequest(prompt, max_tokens=tokens, n=sequences, seed=seed)
            [samples] = await engine.generate([request])
            return sum(len(sample.token_ids) for sample in samples)

        asyncio.run(call(0, 4))
        generated, seed, started = 0, 1, time.perf_counter()
        while time.perf_counter() - started < seconds:
            generated += asyncio.run(call(seed, CALL_TOKENS))
            seed += sequences
        elapsed = time.perf_counter() - started
    finally:
        engine.close()
    rate = generated / elapsed
    return {"threads_used": engine.threads, "tokens": generated, "tokens_per_s": rate}


def run_config(config: str, model: str, sequences: int, seconds: float) -> dict[str, Any]:
    """One measurement of ``config`` in a fresh process, with its wait policy in the env."""
    threads, _, wait = config.partition(":")
    env = dict(os.environ)
    env.pop("GOMP_SPINCOUNT", None)
    if wait and wait != "default":
        env["GOMP_SPINCOUNT"] = WAITS.get(wait, wait)
    command = [
        sys.executable,
        "-m",
        "bench.studies.contention",
        "--child",
        threads,
        "--model",
        model,
    ]
    command += ["--sequences", str(sequences), "--seconds", str(seconds)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def main() -> None:
    """Every configuration, idle and busy, in rounds; print a table; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalogue name")
    parser.add_argument(
        "--configs",
        default="1,2:spin,2:passive,auto",
        help="comma-separated THREADS[:WAIT] (see above)",
    )
    parser.add_argument("--busy", default="0,1", help="comma-separated busy-core counts")
    parser.add_argument("--sequences", default="1", help="comma-separated samples per call")
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--name", default="contention", help="bench/results/<name>.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        threads = None if args.child == "auto" else int(args.child)
        print(json.dumps(measure(args.model, threads, int(args.sequences), args.seconds)))
        return
    configs = args.configs.split(",")
    busy_counts = [int(b) for b in args.busy.split(",")]
    sizes = [int(s) for s in args.sequences.split(",")]
    # other work on the machine makes "idle" not idle: the 1-minute load average says how much
    load_before = os.getloadavg()[0]
    runs: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for busy in busy_counts:
            with busy_cores(busy):
                for sequences in sizes:
                    for config in configs:
                        run = run_config(config, args.model, sequences, args.seconds)
                        runs.setdefault((config, sequences, busy), []).append(run)
    facts = {"model": args.model, "cpus": os.cpu_count(), "load_before": load_before}
    report(args.name, table(runs, busy_counts), **facts)


def median_rate(runs: list[dict[str, Any]]) -> float:
    """The median tokens/s of repeated runs of one configuration."""
    return statistics.median(r["tokens_per_s"] for r in runs)


def table(
    runs: dict[tuple[str, int, int], list[dict[str, Any]]], busy_counts: list[int]
) -> list[dict[str, Any]]:
    """One row per configuration and batch size: the median tokens/s at each busy count, the
    busiest against idle, and idle against today's default (every core, libgomp's spin)."""
    today = f"{os.cpu_count()}:spin"
    rows = []
    for config, sequences in dict.fromkeys((c, s) for c, s, _ in runs):
        row: dict[str, Any] = {"config": config, "sequences": sequences}
        row["threads"] = runs[config, sequences, busy_counts[0]][0]["threads_used"]
        rates = {busy: median_rate(runs[config, sequences, busy]) for busy in busy_counts}
        for busy, rate in rates.items():
            row[f"busy{busy}_tok_s"] = rate
        if 0 in rates and len(rates) > 1:
            row["busy_vs_idle_pct"] = 100 * rates[max(busy_counts)] / rates[0]
        if (today, sequences, 0) in runs and 0 in rates:
            row["idle_vs_today_pct"] = 100 * rates[0] / median_rate(runs[today, sequences, 0])
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
