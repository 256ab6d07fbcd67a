"""Shared fixtures: the real test model (loaded once per session), a live uvicorn server on
a free loopback port, and the official ``openai`` client pointed at it."""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from a package, never a hub
# A request without a temperature samples at OpenAI's 1.0 here, not at the server's default
# (0.3, for the default model): at 0.3 the 135M's samples often coincide, and a test of a
# tree's shape would get one path (the default itself: tests/server/test_chat.py).
os.environ.setdefault("PONDER_DEFAULT_TEMPERATURE", "1.0")

import httpx
import openai
import pytest
import torch
import uvicorn

from server.app import build_app
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.base import ServingEngine
from server.engines.transformers_engine import TransformersEngine
from server.engines.upstream_engine import UpstreamEngine
from tests.waiting import wait_for

if TYPE_CHECKING:  # llama-cpp-python is absent where only the GPU engines run
    from server.engines.llamacpp.engine import LlamaCppEngine

# The suite's model, named wherever a test loads one: SmolLM2-135M (its package is installed
# with ponder's), fast enough for the whole suite on 2 cores.  Tests of the server's default
# model are marked real_model.
TEST_MODEL = "smollm2-135m-instruct"

# llama.cpp's threads meet at a barrier every layer: with a core taken by another process, each
# meeting waits for the scheduler.  Measured on 2 cores under load: 8 tokens in 32.6 s with 2
# threads, 4.4 s with 1.  ponder makes them wait passively (server/engines/llamacpp), but here
# torch loads libgomp first, with its spinning default.  The suite runs on one thread.
TEST_THREADS = 1

# Tiny budgets: enough to build a real tree on a 135M model in seconds on 2 cores.
TINY_SEARCH = {
    "method": "mcts",
    "granularity": "mini_step",
    "step_tokens": 8,
    "iterations": 2,
    "branching": 2,
    "rollout_tokens": 16,
}


def pytest_report_header() -> list[str]:
    """What this run's arithmetic ran on: the kernels llama.cpp was built with and those numpy
    and torch chose (``make test-portable`` switches the AVX-512 ones off)."""
    from numpy._core._multiarray_umath import __cpu_features__

    numpy_simd = [name for name in ("X86_V3", "X86_V4", "AVX512_ICL") if __cpu_features__.get(name)]
    header = [
        f"numpy SIMD: {' '.join(numpy_simd) or 'baseline'}; "
        f"torch CPU capability: {torch.backends.cpu.get_cpu_capability()}"
    ]
    if importlib.util.find_spec("llama_cpp") is not None:  # absent where only GPU engines run
        import llama_cpp

        header.append(f"llama.cpp: {llama_cpp.llama_print_system_info().decode().strip()}")
    return header


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def engine() -> Iterator[LlamaCppEngine]:
    """The server's default engine, llama.cpp, on the test model."""
    from server.engines.llamacpp.engine import LlamaCppEngine

    loaded = load_engine(ServerArgs(engine="llamacpp", model=TEST_MODEL, threads=TEST_THREADS))
    assert isinstance(loaded, LlamaCppEngine)
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def transformers_engine() -> Iterator[TransformersEngine]:
    """The reference engine on the same weights (loaded only when a test asks for it), in
    float32 on a GPU too, where it scores the vLLM engine."""
    loaded = load_engine(ServerArgs(engine="transformers", model=TEST_MODEL, dtype="float32"))
    assert isinstance(loaded, TransformersEngine)
    yield loaded
    loaded.close()


def vllm_unavailable() -> str | None:
    """Why the vLLM engine cannot run here (``None`` when it can): it needs vLLM and CUDA."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM engine not tested: vllm is not installed (pip install 'ponder[vllm]')"
    if not torch.cuda.is_available():
        return "vLLM engine not tested: no CUDA device"
    return None


@pytest.fixture(scope="session")
def vllm_engine() -> Iterator[ServingEngine]:
    """The GPU engine on the same weights (the GGUF converted to an HF folder), in float32 so
    its logprobs can be held to the transformers engine's; skipped, with the reason, without
    vLLM or CUDA."""
    reason = vllm_unavailable()
    if reason is not None:
        pytest.skip(reason)
    # a forked engine core would inherit pytest's warnings-as-errors (torch's TF32 hint then
    # fails its compile): spawn it clean
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    loaded = load_engine(
        ServerArgs(
            engine="vllm",
            model=TEST_MODEL,
            dtype="float32",
            gpu_memory_utilization=0.3,
            max_model_len=2048,
        )
    )
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def upstream_engine(engine: LlamaCppEngine) -> Iterator[UpstreamEngine]:
    """The upstream engine, calling a ponder on the test engine over loopback (the test model
    is its tokenizer)."""
    with LiveServer(engine) as upstream:
        loaded = load_engine(ServerArgs(upstreams=[upstream.url], model=TEST_MODEL))
        assert isinstance(loaded, UpstreamEngine)
        yield loaded
        loaded.close()


class LiveServer:
    """uvicorn serving the app in a background thread."""

    def __init__(
        self,
        engine: ServingEngine,
        args: ServerArgs | None = None,
        port: int | None = None,
        judge: ServingEngine | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = build_app(args or ServerArgs(), engine, judge)
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for(lambda: self.server.started, "the server to start", 30)
        return self

    def fresh(self, engine: LlamaCppEngine) -> None:
        """Start the next run from the state the last one did: wait until no search runs or
        waits here (a stream's last frame reaches its client before the server gives its slot
        back, and a search admitted beside another is not widened by ``--adaptive-parallel``),
        then empty llama.cpp's prefix cache (its attention rounds differently as it fills)."""
        wait_for(lambda: bool(self.app.state.admission.idle), "the server to be idle")
        engine.reset_prefix_cache()

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(engine: ServingEngine) -> Iterator[LiveServer]:
    with LiveServer(engine) as live:
        yield live


@pytest.fixture(scope="session")
def model_name(engine: ServingEngine) -> str:
    return engine.model_name


@pytest.fixture()
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0) as c:
        yield c


@pytest.fixture()
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c
