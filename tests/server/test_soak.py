"""Soak: 32 concurrent clients over loopback mixing streaming and plain requests, clients that
hang up mid-request, and invalid bodies.  The server must answer every valid request, never
answer 5xx, leak no engine request and no search slot, and hold its memory.

Bounded in count (32 clients x ROUNDS requests after a warm-up round) and in tokens (tiny
budgets).  The figures are written to ``test-artifacts/soak.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

from server.engines.base import ServingEngine
from tests.conftest import LiveServer
from tests.waiting import PATIENCE

CLIENTS = 32
ROUNDS = 3
KINDS = ("plain", "stream", "search", "hang_up_stream", "hang_up_plain", "invalid")
SEARCH = {
    "method": "mcts",
    "granularity": "mini_step",
    "step_tokens": 4,
    "iterations": 1,
    "branching": 2,
    "rollout_tokens": 6,
}


def _invalid_bodies(model: str) -> list[tuple[bytes, int]]:
    """Bodies a careless or hostile client sends, with the status each must get."""
    hello = [{"role": "user", "content": "Hi"}]
    return [
        (b'{"model": "m", "messages": [', 400),
        (json.dumps({"model": model, "messages": "Hi"}).encode(), 400),
        (json.dumps({"model": "no-such-model", "messages": hello}).encode(), 404),
        (json.dumps({"model": model, "messages": hello, "search": {"branching": 0}}).encode(), 400),
        (json.dumps({"model": model, "messages": hello, "max_tokens": 10**9}).encode(), 400),
    ]


class Soak:
    """Runs the clients and tallies what came back."""

    def __init__(self, url: str, model: str) -> None:
        self.url = f"{url}/v1/chat/completions"
        self.model = model
        self.invalid = _invalid_bodies(model)
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []

    def _body(self, rng: random.Random, *, stream: bool, search: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": f"Say a word about {rng.randrange(100)}."}],
            "max_tokens": rng.randint(3, 6),
            "seed": rng.randrange(1000),
            "stream": stream,
            "search": SEARCH if search else {"method": "none", "step_tokens": 2},
        }
        return body

    async def one(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        """Send one request of a random kind and check its answer."""
        kind = rng.choice(KINDS)
        try:
            await getattr(self, f"_{kind}")(client, rng)
            self.outcomes[kind] += 1
        except (AssertionError, httpx.HTTPError) as exc:
            self.failures.append(f"{kind}: {exc!r}")

    async def _plain(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        r = await client.post(self.url, json=self._body(rng, stream=False, search=False))
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["finish_reason"] in ("stop", "length")

    async def _search(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        r = await client.post(self.url, json=self._body(rng, stream=False, search=True))
        assert r.status_code == 200, r.text
        assert r.json()["search"]["method"] == "mcts"

    async def _stream(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        body = self._body(rng, stream=True, search=rng.random() < 0.5)
        async with client.stream("POST", self.url, json=body) as r:
            assert r.status_code == 200
            lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        finishes = [
            c["finish_reason"]
            for line in lines[:-1]
            for c in json.loads(line[6:])["choices"]
            if c.get("finish_reason")
        ]
        assert len(finishes) == 1, finishes

    async def _hang_up_stream(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        body = self._body(rng, stream=True, search=True)
        async with client.stream("POST", self.url, json=body) as r:
            assert r.status_code == 200
            async for _ in r.aiter_lines():
                break  # the first frame, then the client is gone

    async def _hang_up_plain(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        body = self._body(rng, stream=False, search=True)
        with contextlib.suppress(httpx.TimeoutException):  # hung up before the answer
            await client.post(self.url, json=body, timeout=rng.uniform(0.05, 0.5))

    async def _invalid(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        content, status = rng.choice(self.invalid)
        headers = {"content-type": "application/json"}
        r = await client.post(self.url, content=content, headers=headers)
        assert r.status_code == status, r.text
        assert r.json()["error"]["message"]

    async def clients(self, rounds: int, seed: int) -> None:
        """CLIENTS concurrent clients, each sending ``rounds`` requests one after another."""

        async def client_loop(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            async with httpx.AsyncClient(timeout=300) as client:
                for _ in range(rounds):
                    await self.one(client, rng)

        await asyncio.gather(*(client_loop(i) for i in range(CLIENTS)))


def _settle(engine: ServingEngine, live: LiveServer) -> dict[str, float]:
    """Wait for hung-up searches to wind down (the suite's patience: a busy machine is slow to
    notice 32 hang-ups); return what is still in flight."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        metrics = httpx.get(f"{live.url}/metrics").text
        gauges = {
            line.split()[0]: float(line.split()[1])
            for line in metrics.splitlines()
            if line.startswith(("ponder_requests_in_flight ", "ponder_requests_queued "))
        }
        gauges["engine_requests_in_flight"] = engine.stats.requests_in_flight
        if not any(gauges.values()):
            break
        time.sleep(0.1)
    return gauges


def test_soak_32_clients(engine: ServingEngine) -> None:
    process = psutil.Process()
    with LiveServer(engine) as live:
        model = httpx.get(f"{live.url}/v1/models").json()["data"][0]["id"]
        warm_up = Soak(live.url, model)
        asyncio.run(warm_up.clients(rounds=1, seed=1))
        _settle(engine, live)
        rss_before = process.memory_info().rss
        soak = Soak(live.url, model)
        started = time.monotonic()
        asyncio.run(soak.clients(rounds=ROUNDS, seed=2))
        seconds = time.monotonic() - started
        left = _settle(engine, live)
        rss_after = process.memory_info().rss
        statuses = httpx.get(f"{live.url}/metrics").text
    server_errors = sum(
        float(line.split()[-1])
        for line in statuses.splitlines()
        if line.startswith("ponder_requests_total{") and 'status="5' in line
    )
    figures = {
        "clients": CLIENTS,
        "requests": sum(soak.outcomes.values()) + len(soak.failures),
        "by_kind": dict(soak.outcomes),
        "failures": soak.failures,
        "server_5xx": server_errors,
        "left_in_flight": left,
        "rss_mb_before": round(rss_before / 2**20, 1),
        "rss_mb_after": round(rss_after / 2**20, 1),
        "rss_growth": round(rss_after / rss_before - 1, 4),
        "seconds": round(seconds, 1),
    }
    out = Path("test-artifacts")
    out.mkdir(exist_ok=True)
    (out / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    assert not soak.failures
    assert server_errors == 0
    assert not any(left.values()), left
    assert figures["rss_growth"] < 0.10
    assert set(soak.outcomes) == set(KINDS)  # every kind of client really ran
