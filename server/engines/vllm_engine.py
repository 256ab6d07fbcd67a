"""The vLLM engine: ``vllm.v1.engine.async_llm.AsyncLLM`` in-process, the GPU production engine.

vLLM does the hard parts (paged KV cache, automatic prefix caching, continuous batching across
every search's calls, tensor/pipeline parallelism); this adapter maps a :class:`GenerationRequest`
onto ``SamplingParams`` with the prompt as token ids, and vLLM's per-token logprob dicts back to
the engine interface.  Logprobs are vLLM's ``raw_logprobs`` (before temperature and top-p), as
the interface wants.  AsyncLLM's output handler is bound to the event loop it first runs on, so
the engine keeps its own loop in a thread and every caller's loop hands work to it; cancelling
a caller cancels the vLLM request, which vLLM aborts.  vLLM's own ``vllm:*`` Prometheus metrics
(KV-cache use, prefix-cache hits, queue, TTFT) are exported next to ponder's.

A seeded request reproduces on vLLM only with batch-invariant kernels (``VLLM_BATCH_INVARIANT=1``
in the environment, compute capability 9.0 or more): otherwise a sample's logits depend on which
other sequences share its forward pass.  ponder leaves it off (it costs decode speed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from search.engine import (
    Completion,
    EngineFault,
    GenerationRequest,
    RequestRejected,
)
from server.args import ServerArgs
from server.engines.base import BaseEngine
from server.engines.calls import check_prompts
from server.engines.constraints import from_the_start
from server.engines.event_loop import EngineLoop
from server.engines.foreign import foreign_completion
from server.engines.hf_tokenizer import HFTokenizer
from server.model_source import ModelSource

VLLM_METRIC_PREFIX = "vllm:"


class VllmMetrics(Collector):
    """vLLM's metric families, which it registers in prometheus_client's global registry, for
    ponder's own registry (ponder's ``/metrics`` then shows both)."""

    def collect(self) -> Iterator[Metric]:
        """Yield every ``vllm:*`` family of the global registry as it is now."""
        for family in REGISTRY.collect():
            if family.name.startswith(VLLM_METRIC_PREFIX):
                yield family


class VllmEngine(BaseEngine):
    """``search.engine.Engine`` over vLLM's ``AsyncLLM``."""

    def __init__(self, source: ModelSource, engine_args: Mapping[str, Any]) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        model = source.hf_folder()
        args = AsyncEngineArgs(
            model=model,
            tokenizer=source.tokenizer_folder(),
            served_model_name=source.served_name,
            enable_prefix_caching=True,
            logprobs_mode="raw_logprobs",
            disable_log_stats=False,
            **engine_args,
        )
        self._loop = EngineLoop("ponder-vllm")
        self._llm = self._loop.call(self._build(AsyncLLM, args))
        self.max_model_len = int(self._llm.model_config.max_model_len)
        self._ids = itertools.count()
        self._busy_since: float | None = None
        # vLLM stops on the generation config's end-of-sequence ids as well as the tokenizer's;
        # the search must know them too, or such a token becomes a step of its own
        config_eos = self._llm.model_config.try_get_generation_config().get("eos_token_id")
        super().__init__(
            source.served_name, HFTokenizer.load(source.tokenizer_folder(), config_eos)
        )

    @classmethod
    def from_args(cls, args: ServerArgs, source: ModelSource) -> VllmEngine:
        """The engine with the ``AsyncEngineArgs`` that ``args`` set."""
        return cls(source, vllm_args(args))

    @staticmethod
    async def _build(async_llm: Any, args: Any) -> Any:
        """Create AsyncLLM on the engine's loop, so its output handler lives there."""
        return async_llm.from_engine_args(args)

    def metric_collectors(self) -> list[Collector]:
        """vLLM's own metrics, for ponder's ``/metrics``."""
        return [VllmMetrics()]

    def health(self) -> str | None:
        """Down when closed, failing, or when vLLM's engine core has died."""
        problem = super().health()
        if problem is None and self._llm.errored:
            return "vLLM's engine core has stopped"
        return problem

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """All requests go to vLLM at once; its scheduler batches them with everyone else's.
        Everything a client can get wrong is checked before the call counts against health."""
        check_prompts(requests, self._tokenizer.vocab_size)
        calls = [(request, self._sampling_params(request)) for request in requests]
        with self._calling():
            self._busy(+1)
            try:
                return await self._loop.run(self._generate_all(calls))
            finally:
                self._busy(-1)

    def _sampling_params(self, request: GenerationRequest) -> Any:
        """vLLM's ``SamplingParams`` for ``request``, refused (as the client's doing) where vLLM
        refuses them: an empty stop string, a prompt and budget longer than the context, a
        constraint it cannot hold (see :func:`from_the_start`)."""
        from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

        grammar = from_the_start(request, "vllm")

        if len(request.prompt_token_ids) + request.max_tokens > self.max_model_len:
            raise RequestRejected(
                f"prompt ({len(request.prompt_token_ids)} tokens) + max_tokens "
                f"({request.max_tokens}) exceed the context length {self.max_model_len}",
                param="max_tokens",
            )
        try:
            return SamplingParams(
                n=1 if request.greedy else request.n,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                seed=request.seed,  # below SEED_BOUND: seed + i fits vLLM's int64 seeds
                stop=list(request.stop) or None,
                stop_token_ids=list(request.stop_token_ids) or None,
                include_stop_str_in_output=True,
                logprobs=max(request.logprobs, 1),
                output_kind=RequestOutputKind.FINAL_ONLY,
                structured_outputs=None
                if grammar is None
                else StructuredOutputsParams(grammar=grammar),
            )
        except ValueError as exc:
            raise RequestRejected(f"vLLM refused the sampling parameters: {exc}") from exc

    def _busy(self, delta: int) -> None:
        """Count wall time with at least one call running as engine time (vLLM reports no
        per-step timings to its frontend)."""
        now = time.perf_counter()
        if delta > 0 and self._stats.requests_in_flight == 1:
            self._busy_since = now
        elif delta < 0 and self._stats.requests_in_flight == 1 and self._busy_since is not None:
            self._stats.busy_seconds += now - self._busy_since
            self._busy_since = None

    async def _generate_all(
        self, calls: Sequence[tuple[GenerationRequest, Any]]
    ) -> list[list[Completion]]:
        """On the engine's loop: one vLLM request per generation request, awaited together;
        one that fails cancels (so aborts) its siblings."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._generate_one(r, p)) for r, p in calls]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]

    async def _generate_one(self, request: GenerationRequest, params: Any) -> list[Completion]:
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

        prompt = TokensPrompt(prompt_token_ids=list(request.prompt_token_ids))
        final = None
        try:
            async for output in self._llm.generate(prompt, params, f"ponder-{next(self._ids)}"):
                final = output
        except ValueError as exc:  # vLLM's own request validation
            raise RequestRejected(f"vLLM refused the request: {exc}") from exc
        except (EngineDeadError, EngineGenerateError) as exc:
            raise EngineFault(f"vLLM failed the request: {exc!r}") from exc
        if final is None:
            raise EngineFault("vLLM returned no output")
        cached = int(final.num_cached_tokens or 0)
        self._stats.prompt_tokens_cached += cached
        self._stats.prompt_tokens_computed += len(request.prompt_token_ids) - cached
        completions = [
            dataclasses.replace(self._completion(c, request), cached_tokens=cached)
            for c in final.outputs
        ]
        if request.greedy:
            completions *= request.n
        self._stats.generated_tokens += sum(len(c.token_ids) for c in completions)
        return completions

    def _completion(self, output: Any, request: GenerationRequest) -> Completion:
        """vLLM's ``CompletionOutput`` -> :class:`Completion` (each position's logprob dict
        holds the chosen token and the top ``k``, each with its rank)."""
        k = request.logprobs
        positions = (
            (
                token,
                ranked[token].logprob,
                ((t, lp.logprob) for t, lp in ranked.items() if _rank(lp) <= k),
            )
            for token, ranked in zip(output.token_ids, output.logprobs, strict=True)
        )
        return foreign_completion(
            positions, output.finish_reason, output.stop_reason, k, self._tokenizer
        )

    def close(self) -> None:
        """Fail the calls still running (vLLM aborts them), shut vLLM's engine core down and
        stop the engine's loop (once: a second close finds nothing to do)."""
        if self._health.closed:
            return
        self._health.closed = True
        self._loop.cancel_all()  # each call unwinds, its vLLM requests aborted
        self._llm.shutdown()
        self._loop.stop()


def vllm_args(args: ServerArgs) -> dict[str, Any]:
    """The ``AsyncEngineArgs`` ponder passes through to vLLM (unset ones keep vLLM's default)."""
    given = {
        "tensor_parallel_size": args.tensor_parallel_size,
        "pipeline_parallel_size": args.pipeline_parallel_size,
        "distributed_executor_backend": args.distributed_executor_backend,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "max_model_len": args.max_model_len,
        "dtype": args.dtype,
        "quantization": args.quantization,
    }
    return {name: value for name, value in given.items() if value is not None}


def _rank(logprob: Any) -> int:
    """vLLM's 1-based rank of a token (``None`` on old versions: treat as ranked)."""
    return 1 if logprob.rank is None else int(logprob.rank)
