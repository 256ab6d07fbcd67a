"""ponder against a naive driver: the same MCTS searches, as ponder runs them (samples of an
expansion in one batched call, prefixes reused; and with 4 leaves expanded per call) and driven
the way a proxy drives an OpenAI endpoint (one completion per call, one call at a time, nothing
reused), on the same engine; generated tokens per second side by side.

Prints numbers; never fails on speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bench.inprocess import QUESTION, mcts_params, search_cost
from bench.report import report
from search.engine import Completion, GenerationRequest, Tokenizer
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.llamacpp.engine import LlamaCppEngine
from server.engines.stats import EngineStats


class ProxyDriver:
    """An engine seen through a proxy: every sample is its own call, sent after the previous
    one returned, on a cold prefix cache."""

    def __init__(self, inner: LlamaCppEngine) -> None:
        self._inner = inner

    @property
    def model_name(self) -> str:
        """The inner engine's model."""
        return self._inner.model_name

    @property
    def tokenizer(self) -> Tokenizer:
        """The inner engine's tokenizer."""
        return self._inner.tokenizer

    @property
    def stats(self) -> EngineStats:
        """The inner engine's counters."""
        return self._inner.stats

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """One call per sample, in sequence, each from scratch."""
        outputs = []
        for request in requests:
            samples = []
            for i in range(request.n):
                self._inner.reset_prefix_cache()
                seed = None if request.seed is None else request.seed + i
                [[one]] = await self._inner.generate([replace(request, n=1, seed=seed)])
                samples.append(one)
            outputs.append(samples)
        return outputs


def main() -> None:
    """Three seeded searches each way; write bench/results/naive.json."""
    engine = load_engine(ServerArgs(engine="llamacpp"))
    assert isinstance(engine, LlamaCppEngine)
    rows = []
    try:
        prompt = tuple(engine.tokenizer.apply_chat_template(QUESTION))
        search_cost(engine, mcts_params(prompt, iterations=1, max_tokens=16))  # warm up
        for seed in (1, 2, 3):
            runs = (
                ("ponder", engine, mcts_params(prompt, seed=seed)),
                ("ponder parallel=4", engine, mcts_params(prompt, seed=seed, parallel=4)),
                ("naive", ProxyDriver(engine), mcts_params(prompt, seed=seed)),
            )
            for name, driver, params in runs:
                engine.reset_prefix_cache()
                cost = search_cost(driver, params)
                rows.append(
                    {
                        "driver": name,
                        "seed": seed,
                        **cost.row(),
                        "tokens_per_s": cost.result.generated_tokens / cost.wall_seconds,
                    }
                )
    finally:
        engine.close()
    speed = {
        name: sum(r["generated"] for r in rows if r["driver"] == name)
        / sum(r["wall_s"] for r in rows if r["driver"] == name)
        for name in ("ponder", "ponder parallel=4", "naive")
    }
    report(
        "naive",
        rows,
        ponder_over_naive=round(speed["ponder"] / speed["naive"], 2),
        parallel_over_naive=round(speed["ponder parallel=4"] / speed["naive"], 2),
    )


if __name__ == "__main__":
    main()
