"""Graceful shutdown of a real ``ponder serve`` process: SIGTERM drains, and no request is
dropped without a response."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from bench.server import spawn_server
from tests.conftest import TEST_MODEL

DRAIN_SECONDS = 8


def _metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def _stream(base: str, body: dict[str, Any], out: dict[str, Any]) -> None:
    """POST a streaming request; record the frames, the finish reason and when it ended."""
    frames: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120) as r:
        out["status"] = r.status_code
        for line in r.iter_lines():
            if line == "data: [DONE]":
                out["done"] = True
            elif line.startswith("data: "):
                frames.append(json.loads(line[6:]))
                out["frames"] = len(frames)
    out["ended_at"] = time.monotonic()
    choices = [c for f in frames for c in f["choices"]]
    out["finish"] = [c["finish_reason"] for c in choices if c.get("finish_reason")]
    out["text"] = "".join(
        c["delta"].get("content") or c["delta"].get("reasoning") or "" for c in choices
    )


def _wait(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_drains_running_searches_and_refuses_waiting_ones() -> None:
    proc, base = spawn_server(
        [
            "--model",
            TEST_MODEL,
            "--drain-seconds",
            str(DRAIN_SECONDS),
            "--max-concurrent-searches",
            "2",
        ]
    )
    try:
        model = httpx.get(f"{base}/v1/models").json()["data"][0]["id"]
        question = [{"role": "user", "content": "Count from 1 to 200, one number per line."}]
        long_search: dict[str, Any] = {}  # far more search than the drain allows: cut short
        short_answer: dict[str, Any] = {}  # a plain answer that ends within the drain
        search = {"method": "mcts", "granularity": "mini_step", "step_tokens": 16}
        search |= {"iterations": 1000, "branching": 2, "rollout_tokens": 64}
        streamed = {"model": model, "messages": question, "stream": True, "seed": 1}
        plain = {
            "max_tokens": 160,
            "temperature": 0,
            "search": {"method": "none", "step_tokens": 8},
        }
        threads = [
            threading.Thread(
                target=_stream, args=(base, {**streamed, "search": search}, long_search)
            ),
            threading.Thread(target=_stream, args=(base, {**streamed, **plain}, short_answer)),
        ]
        for thread in threads:
            thread.start()
        _wait(lambda: _metric(base, "ponder_requests_in_flight") == 2, "two running searches")
        _wait(lambda: short_answer.get("frames", 0) >= 2, "the plain answer to start")

        waiting: dict[str, Any] = {}  # third in line: both slots are taken

        def queue_one() -> None:
            r = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": model, "messages": question, "search": {"method": "none"}},
                timeout=60,
            )
            waiting.update(status=r.status_code, body=r.json())

        queued = threading.Thread(target=queue_one)
        queued.start()
        _wait(lambda: _metric(base, "ponder_requests_queued") == 1, "a waiting request")
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for thread in [*threads, queued]:
            thread.join(timeout=DRAIN_SECONDS + 30)
        returncode = proc.wait(timeout=30)
        stopped_after = time.monotonic() - sent_at
    finally:
        if proc.poll() is None:
            proc.kill()

    # the waiting request is refused at once, in OpenAI's shape, so it can go elsewhere
    assert waiting["status"] == 503
    assert waiting["body"]["error"]["code"] == "shutting_down"
    # the plain answer finished normally during the drain
    assert short_answer["status"] == 200 and short_answer.get("done")
    assert short_answer["ended_at"] > sent_at
    assert short_answer["finish"] in (["stop"], ["length"])
    # the long search was cut at the drain's end and still answered with its best path
    assert long_search["status"] == 200 and long_search.get("done")
    assert long_search["finish"] == ["timeout"]
    assert long_search["text"].strip()
    assert long_search["ended_at"] - sent_at == pytest.approx(DRAIN_SECONDS, abs=4)
    # then the process exits (uvicorn re-raises the signal after its graceful shutdown)
    assert returncode in (0, -signal.SIGTERM)
    assert stopped_after < DRAIN_SECONDS + 10
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health")
