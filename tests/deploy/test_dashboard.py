"""The Grafana dashboard (deploy/base/grafana/ponder-dashboard.json) queries only metrics that
exist: ponder's, as a live server exports them, and vLLM's, as vLLM 0.26 names them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import TINY_SEARCH, LiveServer
from tests.deploy.conftest import REPO

DASHBOARD = REPO / "deploy" / "base" / "grafana" / "ponder-dashboard.json"
METRIC = re.compile(r"\b(ponder_[a-z0-9_]+|vllm:[a-z0-9_:]+)")

# What vLLM 0.26.0 exports that the dashboard reads: vllm/v1/metrics/loggers.py
# (PrometheusStatLogger) registers the gauges vllm:kv_cache_usage_perc (0.9 renamed it from
# vllm:gpu_cache_usage_perc, since removed), vllm:num_requests_running and
# vllm:num_requests_waiting, and the counters vllm:prefix_cache_queries and
# vllm:prefix_cache_hits (prefix-cache tokens looked up and found; prometheus_client exposes a
# counter with `_total`). Checked against the vllm-0.26.0 wheel.
VLLM_0_26_METRICS = frozenset(
    {
        "vllm:kv_cache_usage_perc",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
    }
)
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def queries(board: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression of the dashboard: panel targets and template variables."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["definition"]


def queried_metrics() -> set[str]:
    """The metric names the dashboard's expressions read."""
    return {name for expr in queries(dashboard()) for name in METRIC.findall(expr)}


def exported(text: str) -> set[str]:
    """The series names a Prometheus text exposition holds, including those of families that
    have no sample yet (a labelled counter before its first increment)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return names


def test_dashboard_queries_only_metrics_ponder_exports(engine: LlamaCppEngine) -> None:
    """After one MCTS request (so the labelled series exist), a live server's /metrics holds
    every ponder_* name the dashboard queries, and its vllm:* names are vLLM 0.26's."""
    with LiveServer(engine) as live, httpx.Client(base_url=live.url, timeout=120) as http:
        r = http.post(
            "/v1/chat/completions",
            json={
                "model": engine.model_name,
                "messages": [{"role": "user", "content": "What is 2+2?"}],
                "max_tokens": 8,
                "search": TINY_SEARCH,
            },
        )
        assert r.status_code == 200, r.text
        scrape = http.get("/metrics")
        assert scrape.status_code == 200
    names = queried_metrics()
    ponder = {n for n in names if n.startswith("ponder_")}
    assert ponder - exported(scrape.text) == set()
    assert names - ponder <= VLLM_0_26_METRICS
    # the panels the deployment promises are there
    assert {
        "ponder_time_to_first_token_seconds_bucket",
        "ponder_search_duration_seconds_bucket",
        "ponder_search_iterations_bucket",
        "ponder_tree_nodes_bucket",
        "ponder_reward_bucket",
        "ponder_generated_tokens_total",
        "ponder_requests_in_flight",
        "ponder_requests_queued",
        "ponder_prompt_tokens_total",
        "ponder_engine_batch_size_bucket",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_hits_total",
    } <= names


def test_dashboard_reads_one_prometheus_data_source() -> None:
    """Every panel and query uses the `datasource` variable (a Prometheus data source picked in
    Grafana), panel ids are unique and panels fit the 24-column grid."""
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    source = {"type": "prometheus", "uid": "${datasource}"}
    ids = []
    for panel in board["panels"]:
        ids.append(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == source, panel["title"]
            assert all(t["datasource"] == source for t in panel["targets"]), panel["title"]
    assert len(ids) == len(set(ids))
