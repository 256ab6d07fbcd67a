"""The Prometheus exposition, read while engines go on counting."""

from __future__ import annotations

import itertools
import threading
import time

import httpx
from prometheus_client import generate_latest

from search import METHODS
from server.engines.base import ServingEngine
from server.engines.stats import EngineStats
from server.metrics import Metrics
from tests.conftest import LiveServer
from tests.waiting import PATIENCE


def test_a_scrape_reads_batch_sizes_while_an_engine_thread_adds_new_ones() -> None:
    """An engine's scheduler thread records forward passes of sizes not seen before while
    ``/metrics`` is scraped: every scrape succeeds and shows a consistent histogram."""
    stats = EngineStats()
    for rows in range(1, 100_000):  # many sizes already: a scrape takes a while to read them
        stats.record_step(rows)
    registry = Metrics(stats).registry
    scraped = threading.Event()

    def engine_thread() -> None:
        for rows in itertools.count(100_000):  # a size not seen before, every step
            if scraped.is_set():
                return
            stats.record_step(rows)
            time.sleep(0)  # let the scrape run between steps, as it does while llama.cpp decodes

    def batch_histogram() -> dict[str, float]:
        lines = generate_latest(registry).decode().splitlines()
        samples = [line.split(" ") for line in lines if line.startswith("ponder_engine_batch_")]
        return {name: float(value) for name, value in samples}

    thread = threading.Thread(target=engine_thread)
    thread.start()
    try:
        for _ in range(10):
            histogram = batch_histogram()
            buckets = [v for k, v in histogram.items() if k.endswith("}")]
            assert buckets == sorted(buckets)  # cumulative, and +Inf counts every pass
            assert histogram["ponder_engine_batch_size_count"] == buckets[-1]
    finally:
        scraped.set()
        thread.join()
    assert batch_histogram()["ponder_engine_batch_size_count"] == stats.decode_steps


def test_a_new_server_exports_every_dashboard_series_at_zero(engine: ServingEngine) -> None:
    """Before any request, the labelled series exist at 0: a dashboard's rate() shows 0, not
    "No data"."""
    with LiveServer(engine) as live:
        text = httpx.get(f"{live.url}/metrics", timeout=PATIENCE).text
    lines = set(text.splitlines())
    for method in (*METHODS, "completions"):
        assert f'ponder_requests_total{{method="{method}",status="429"}} 0.0' in lines
        assert f'ponder_search_duration_seconds_count{{method="{method}"}} 0.0' in lines
    for method in METHODS:
        assert f'ponder_reward_count{{method="{method}"}} 0.0' in lines
    for reason in ("queue_full", "shutting_down"):
        assert f'ponder_rejected_total{{reason="{reason}"}} 0.0' in lines
    for phase in ("expansion", "rollout", "generation"):
        assert f'ponder_generated_tokens_total{{phase="{phase}"}} 0.0' in lines
