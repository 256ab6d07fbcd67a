"""Engine adapters, loaded lazily by name so heavy optional imports stay where they are used."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from prometheus_client.registry import Collector

from search.engine import Completion, EngineStats, GenerationRequest, Tokenizer
from server.args import ServerArgs
from server.model_source import ModelSource, resolve


class ChatTokenizer(Tokenizer, Protocol):
    """A tokenizer that also knows the model's chat template and its vocabulary size."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def chat_template(self) -> str:
        """The chat template's source text (``""`` if the model has none)."""
        ...

    def apply_chat_template(self, messages: list[dict[str, str]]) -> list[int]:
        """Prompt ids for a chat, generation prompt added; ``ValueError`` if it is rejected."""
        ...


class ServingEngine(Protocol):
    """What the server needs of an engine: the search's interface plus chat and limits."""

    @property
    def model_name(self) -> str: ...

    @property
    def tokenizer(self) -> ChatTokenizer: ...

    @property
    def stats(self) -> EngineStats: ...

    @property
    def max_model_len(self) -> int: ...

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """See :meth:`search.engine.Engine.generate`."""
        ...

    def health(self) -> str | None:
        """``None`` while the engine can serve, else the reason it cannot."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...

    def metric_collectors(self) -> list[Collector]:
        """The engine's own Prometheus families, shown on ponder's ``/metrics`` (vLLM's)."""
        ...


def load_engine(args: ServerArgs) -> ServingEngine:
    """Build the engine ``args.engine`` names (``auto``: the upstream fleet when one is given,
    llama.cpp for a GGUF model when llama-cpp-python is installed and no GPU is asked for,
    else transformers)."""
    source = resolve(args.model)
    if args.served_model_name:
        source = replace(source, served_name=args.served_model_name)
    engine: ServingEngine
    kind = pick_engine(args, source)
    if kind == "upstream":
        from server.engines.hf_tokenizer import HFTokenizer
        from server.engines.upstream import UpstreamEngine

        fleet_tokenizer = resolve(args.tokenizer) if args.tokenizer else source
        engine = UpstreamEngine(
            args.upstreams,
            HFTokenizer.load(fleet_tokenizer.tokenizer_folder()),
            served_name=args.served_model_name,
            probe_seconds=args.upstream_probe_seconds,
        )
    elif kind == "vllm":
        from server.engines.vllm_engine import VllmEngine

        engine = VllmEngine(source, vllm_args(args))
    elif kind == "llamacpp":
        from server.engines.llamacpp_engine import LlamaCppEngine

        engine = LlamaCppEngine(
            source,
            kv_cache_tokens=args.kv_cache_tokens,
            prefix_cache_tokens=args.prefix_cache_tokens,
            threads=args.threads,
        )
    else:
        from server.engines.transformers_engine import TransformersEngine

        engine = TransformersEngine(
            source,
            dtype=args.dtype,
            device=args.device,
            prefix_cache_tokens=args.prefix_cache_tokens,
        )
    if args.max_model_len is not None:
        engine.max_model_len = min(engine.max_model_len, args.max_model_len)
    return engine


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


def pick_engine(args: ServerArgs, source: ModelSource) -> str:
    """The engine ``auto`` stands for, or the one named (llama.cpp needs a GGUF file)."""
    if args.engine == "upstream" or (args.engine == "auto" and args.upstreams):
        return "upstream"
    if args.engine == "llamacpp" and not source.is_gguf:
        raise ValueError("--engine llamacpp needs a .gguf model file")
    if args.engine != "auto":
        return args.engine
    if args.device != "cpu" and not source.is_gguf and _has_vllm_and_gpu():
        return "vllm"
    has_llamacpp = importlib.util.find_spec("llama_cpp") is not None
    return (
        "llamacpp" if source.is_gguf and has_llamacpp and args.device != "cuda" else "transformers"
    )


def _has_vllm_and_gpu() -> bool:
    """Whether vLLM is installed and torch sees a CUDA device (vLLM's production setting)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())
