"""The search tree: in the response, at /v1/traces/{id}, and drawn by /traces/{id} in Chromium."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from server.traces import TraceStore
from tests.conftest import TINY_SEARCH, LiveServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
QUESTION = [{"role": "user", "content": "What is 12 + 7?"}]


@pytest.fixture(scope="module")
def traced(server: LiveServer, model_name: str) -> dict[str, object]:
    body = {
        "model": model_name,
        "messages": QUESTION,
        "seed": 4,
        "max_tokens": 96,
        "search": {**TINY_SEARCH, "return_tree": True},
    }
    r = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_response_carries_the_whole_tree(traced: dict) -> None:  # type: ignore[type-arg]
    search, usage = traced["search"], traced["usage"]
    tree = search["tree"]
    assert len(tree) == search["nodes"] > 3
    ids = {n["id"] for n in tree}
    root = [n for n in tree if n["parent"] is None]
    assert len(root) == 1 and root[0]["chosen"]
    assert all(n["parent"] in ids for n in tree if n["parent"] is not None)
    chosen = sorted((n for n in tree if n["chosen"]), key=lambda n: n["depth"])
    assert [n["depth"] for n in chosen] == list(range(len(chosen)))  # one unbroken path
    for parent, child in itertools.pairwise(chosen):
        assert child["parent"] == parent["id"]
    # usage bills every token generated, the chosen path's among them
    assert usage["completion_tokens"] == search["generated_tokens"]
    assert sum(n["tokens"] for n in chosen) <= usage["completion_tokens"]
    assert root[0]["visits"] >= search["iterations"]  # every simulation passes the root


def test_a_finished_tree_is_kept_for_the_trace_endpoint(server: LiveServer, traced: dict) -> None:  # type: ignore[type-arg]
    r = httpx.get(f"{server.url}/v1/traces/{traced['id']}")
    assert r.status_code == 200
    kept = r.json()
    assert kept["search"]["tree"] == traced["search"]["tree"]
    assert kept["question"] == QUESTION[0]["content"]
    assert traced["choices"][0]["message"]["content"] in kept["path"]  # reasoning, then answer
    missing = httpx.get(f"{server.url}/v1/traces/chatcmpl-nope")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "trace_id"


def test_the_trace_page_draws_the_tree_in_chromium(server: LiveServer, traced: dict) -> None:  # type: ignore[type-arg]
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is needed: `make test` installs it (apt-get, as root)")
    url = f"{server.url}/traces/{traced['id']}"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "trace.png"
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--window-size=1280,900",
        ]
        dom = subprocess.run(
            [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
        )
        subprocess.run(
            [*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120
        )
    nodes = len(traced["search"]["tree"])  # type: ignore[index]
    assert f'data-rendered="{nodes}"' in dom.stdout
    assert dom.stdout.count('class="node') == nodes
    assert dom.stdout.count('class="node chosen') == sum(
        1
        for n in traced["search"]["tree"]
        if n["chosen"]  # type: ignore[index]
    )
    assert screenshot.stat().st_size > 10_000


def test_trace_store_is_bounded_and_expires() -> None:
    store = TraceStore(capacity=2, ttl_seconds=60)
    for name in "abc":
        store.put(name, {"id": name})
    assert store.get("a") is None and store.get("c") == {"id": "c"}
    expired = TraceStore(capacity=2, ttl_seconds=0)
    expired.put("x", {})
    assert expired.get("x") is None
