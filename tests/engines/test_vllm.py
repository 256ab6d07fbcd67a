"""The vLLM engine beyond the contract suite: its own metrics on ponder's ``/metrics``, and a
search served end to end.  The collector test runs everywhere; the rest needs vLLM and CUDA
(skipped with the reason otherwise)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY, Gauge

from server.args import ServerArgs
from server.engines import pick_engine
from server.engines.base import ServingEngine
from server.engines.stats import EngineStats
from server.engines.vllm_engine import VllmMetrics
from server.metrics import Metrics
from server.model_source import resolve
from tests.conftest import TINY_SEARCH, LiveServer, vllm_unavailable


@pytest.fixture
def vllm_gauge() -> Iterator[Gauge]:
    """A ``vllm:*`` family in prometheus_client's global registry, where vLLM registers its
    own (and a non-vLLM one beside it, which must stay out of ponder's exposition).  Its name is
    one vLLM never uses: where vLLM runs, its own families are registered already."""
    gauge = Gauge("vllm:ponder_test_gauge", "a name vLLM never registers", ["model_name"])
    other = Gauge("someone_elses_metric", "not vLLM's")
    gauge.labels(model_name="m").set(0.25)
    yield gauge
    REGISTRY.unregister(gauge)
    REGISTRY.unregister(other)


def test_vllm_metrics_join_ponders_registry(vllm_gauge: Gauge) -> None:
    exposition = Metrics(EngineStats(), [VllmMetrics()]).registry
    assert exposition.get_sample_value("vllm:ponder_test_gauge", {"model_name": "m"}) == 0.25
    assert exposition.get_sample_value("someone_elses_metric") is None
    assert exposition.get_sample_value("ponder_requests_in_flight") == 0


def test_auto_picks_vllm_only_with_vllm_and_a_gpu() -> None:
    hub_model = resolve("HuggingFaceTB/SmolLM2-135M-Instruct")
    picked = pick_engine(ServerArgs(), hub_model)
    assert picked == ("transformers" if vllm_unavailable() else "vllm")
    assert pick_engine(ServerArgs(device="cpu"), hub_model) == "transformers"


def test_a_search_on_vllm_streams_and_exports_vllm_metrics(vllm_engine: ServingEngine) -> None:
    with LiveServer(vllm_engine, ServerArgs(engine="vllm")) as server:
        body = {
            "model": vllm_engine.model_name,
            "messages": [{"role": "user", "content": "What is 2+3?"}],
            "max_tokens": 32,
            "search": TINY_SEARCH,
        }
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
        metrics = httpx.get(f"{server.url}/metrics").text
    assert "vllm:kv_cache_usage_perc" in metrics or "vllm:gpu_cache_usage_perc" in metrics
    assert "vllm:prompt_tokens_total" in metrics
    assert 'ponder_requests_total{method="mcts",status="200"} 1.0' in metrics
