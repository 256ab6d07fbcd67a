"""The engine registry: each engine's class by name, imported only when that engine is loaded,
so heavy optional dependencies (llama.cpp, torch, vLLM) stay with the engine that uses them."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import replace
from typing import Protocol, cast

from server.args import ServerArgs
from server.engines.base import ServingEngine
from server.model_source import ModelSource, resolve

# ``--engine`` names (all but ``auto``) -> "module:Class"
ENGINES: dict[str, str] = {
    "llamacpp": "server.engines.llamacpp.engine:LlamaCppEngine",
    "transformers": "server.engines.transformers_engine:TransformersEngine",
    "vllm": "server.engines.vllm_engine:VllmEngine",
    "upstream": "server.engines.upstream_engine:UpstreamEngine",
}


# engines whose dependencies are an extra of ponder's, not part of its default install
EXTRAS = {"transformers": "transformers", "vllm": "vllm"}


class EngineUnavailable(RuntimeError):
    """The engine asked for needs a package this install lacks (an extra of ponder's)."""


class EngineClass(Protocol):
    """What the registry needs of an engine class: a constructor from the server's settings."""

    def from_args(self, args: ServerArgs, source: ModelSource) -> ServingEngine:
        """The engine ``args`` configure, serving ``source`` (already given its served name)."""
        ...


def engine_class(kind: str) -> EngineClass:
    """The class registered as ``kind``, imported now; ``EngineUnavailable`` saying what to
    install when its dependencies are missing."""
    module, _, name = ENGINES[kind].partition(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get(kind)
        if extra is None:
            raise
        raise EngineUnavailable(
            f"the {kind} engine needs {exc.name}, which is not installed: "
            f"pip install 'ponder[{extra}]'"
        ) from exc
    return cast(EngineClass, getattr(loaded, name))


def load_engine(args: ServerArgs) -> ServingEngine:
    """Build the engine ``args.engine`` names (``auto``: see :func:`pick_engine`)."""
    source = resolve(args.model)
    if args.served_model_name:
        source = replace(source, served_name=args.served_model_name)
    engine = engine_class(pick_engine(args, source)).from_args(args, source)
    if args.max_model_len is not None:
        engine.max_model_len = min(engine.max_model_len, args.max_model_len)
    return engine


def load_verifier(args: ServerArgs) -> ServingEngine | None:
    """The judge ``--verifier`` names, if any: on ``--verifier-upstreams`` when given, else on
    the engine kind ``--model`` runs on (a local judge beside a fleet gets ``auto``'s)."""
    if args.verifier is None:
        return None
    kind = args.engine if args.engine != "upstream" else "auto"
    judge = args.model_copy(
        update={
            "model": args.verifier,
            "served_model_name": None,
            "upstreams": args.verifier_upstreams,
            "tokenizer": None,
            "engine": "upstream" if args.verifier_upstreams else kind,
        }
    )
    return load_engine(judge)


def pick_engine(args: ServerArgs, source: ModelSource) -> str:
    """The engine ``auto`` stands for (the upstream fleet when one is given, vLLM on a GPU when
    it is installed, llama.cpp for a GGUF model when llama-cpp-python is installed and no GPU is
    asked for, else transformers), or the one named (llama.cpp needs a GGUF file)."""
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
