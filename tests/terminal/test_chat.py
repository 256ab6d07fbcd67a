"""``ponder chat`` and the progress chunks it draws its status line from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import TINY_SEARCH, LiveServer

QUESTION = "What is 12 + 7?"


def test_progress_chunks_report_the_search_as_it_grows(server: LiveServer, model_name: str) -> None:
    body = {
        "model": model_name,
        "stream": True,
        "seed": 3,
        "max_tokens": 160,  # the whole search's tokens: room for a few rounds
        "messages": [{"role": "user", "content": QUESTION}],
        "search": {**TINY_SEARCH, "progress": True},
    }
    progress = []
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=600) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                if "search_progress" in chunk:
                    assert chunk["choices"][0]["delta"] == {}
                    progress.append(chunk["search_progress"])
    assert len(progress) >= TINY_SEARCH["iterations"]
    assert [p["iterations"] for p in progress] == sorted(p["iterations"] for p in progress)
    # identical samples share a child, so an expansion adds between one and `branching` nodes
    assert progress[-1]["nodes"] > progress[0]["nodes"] >= 2
    assert all(0 < p["best_reward"] <= 1 for p in progress)


def test_ponder_chat_streams_an_answer_in_the_terminal(
    server: LiveServer, model_name: str, engine: LlamaCppEngine
) -> None:
    search = json.dumps(TINY_SEARCH)
    engine.reset_prefix_cache()  # the same seed from the same engine state: the same search
    expected = httpx.post(
        f"{server.url}/v1/chat/completions",
        timeout=600,
        json={
            "model": model_name,
            "stream": False,
            "seed": 3,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": QUESTION}],
            "search": TINY_SEARCH,
        },
    ).json()["choices"][0]["message"]["content"]
    engine.reset_prefix_cache()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "chat",
            "--url",
            server.url,
            "--seed",
            "3",
            "--search",
            search,
            "--max-tokens",
            "16",
            QUESTION,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "1000"},
    )
    assert out.returncode == 0, out.stderr
    assert expected.strip() in out.stdout
    assert "mcts ·" in out.stdout and "reward" in out.stdout
