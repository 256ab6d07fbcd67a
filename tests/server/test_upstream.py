"""A fleet: two ponder servers (plain generation) as the upstreams of a third that runs MCTS.
One upstream is stopped mid-run and every search still completes.  A call a replica refuses is
the client's; a fleet that cannot serve is a 503."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable

import httpx
import pytest

from search.engine import GenerationRequest, RequestRejected
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.base import Health
from server.engines.llamacpp.engine import LlamaCppEngine
from server.engines.upstream_engine import UpstreamEngine
from tests.conftest import TEST_MODEL, TINY_SEARCH, LiveServer, free_port

QUESTIONS = [f"What is {a} plus {b}?" for a in range(2, 12) for b in (3, 7)]


def test_searches_survive_losing_an_upstream(engine: LlamaCppEngine) -> None:
    first, second = LiveServer(engine), LiveServer(engine)
    with first, second:
        fleet = load_engine(ServerArgs(upstreams=[first.url, second.url], model=TEST_MODEL))
        assert isinstance(fleet, UpstreamEngine)
        # three questions whose prompts hash to each replica: both get traffic
        by_replica: dict[str, list[str]] = {first.url: [], second.url: []}
        for question in QUESTIONS:
            ids = fleet.tokenizer.apply_chat_template([{"role": "user", "content": question}])
            by_replica[fleet.ranked(ids)[0].url].append(question)
        chosen = by_replica[first.url][:3] + by_replica[second.url][:3]
        assert len(chosen) == 6
        with LiveServer(fleet) as front:

            async def ask(client: httpx.AsyncClient, question: str) -> httpx.Response:
                body = {
                    "model": fleet.model_name,
                    "messages": [{"role": "user", "content": question}],
                    "max_tokens": 48,
                    "seed": 1,
                    "search": {**TINY_SEARCH, "iterations": 4},
                }
                return await client.post("/v1/chat/completions", json=body)

            async def run() -> list[httpx.Response]:
                async with httpx.AsyncClient(base_url=front.url, timeout=300) as client:
                    searches = [asyncio.ensure_future(ask(client, q)) for q in chosen]
                    deadline = time.monotonic() + 120
                    while fleet.stats.requests_in_flight == 0:  # the searches are under way
                        assert time.monotonic() < deadline, "no search reached the fleet"
                        await asyncio.sleep(0.05)
                    first.server.should_exit = True  # stop one upstream mid-run
                    return list(await asyncio.gather(*searches))

            answers = asyncio.run(run())
            first.thread.join(timeout=30)
            assert not first.thread.is_alive()
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    # every search finished a path.  Not necessarily with content: when a path's last action is
    # its end-of-sequence token alone, the last-step rule leaves the answer empty and the whole
    # text in the reasoning (1 of 40 such searches on this model, 2026-11-26; not this test's point)
    messages = [a.json()["choices"][0]["message"] for a in answers]
    empty = [m for m in messages if not (m["content"] or m.get("reasoning_content"))]
    assert not empty, json.dumps(empty)
    down = [r for r in fleet.ranked(()) if r.url == first.url]
    assert down[0].down_until > 0  # calls to the stopped replica failed over
    fleet.close()


def test_health_probes_follow_a_replica_away_and_back(engine: LlamaCppEngine) -> None:
    """A replica that stops answering ``/health`` is passed over by every prompt before a call
    fails on it, takes calls again once it answers, and a fleet with no replica answering makes
    ponder's own ``/health`` 503."""
    port = free_port()
    late = f"http://127.0.0.1:{port}"  # nothing listens there yet
    with LiveServer(engine) as live:
        fleet = load_engine(
            ServerArgs(upstreams=[live.url, late], model=TEST_MODEL, upstream_probe_seconds=0.1)
        )
        assert isinstance(fleet, UpstreamEngine)
        replica = next(r for r in fleet.ranked(()) if r.url == late)
        prompts = [(i, i + 1) for i in range(20)]
        wait_for(lambda: not replica.healthy)
        assert replica.down_until == math.inf
        assert all(fleet.ranked(p)[0].url == live.url for p in prompts)
        assert fleet.health() is None
        with LiveServer(engine, port=port):
            wait_for(lambda: replica.healthy)
            assert replica.down_until == 0.0
            assert {fleet.ranked(p)[0].url for p in prompts} == {live.url, late}
        with LiveServer(fleet) as front:
            live.server.should_exit = True
            live.thread.join(timeout=10)
            wait_for(lambda: fleet.health() is not None)
            reply = httpx.get(f"{front.url}/health")
            assert reply.status_code == 503
            assert "no upstream replica answers" in reply.json()["reason"]
        fleet.close()


def test_a_call_a_replica_refuses_names_the_field_and_spares_health(
    upstream_engine: UpstreamEngine,
) -> None:
    prompt = tuple(upstream_engine.tokenizer.encode("The sea is"))
    too_many = GenerationRequest(prompt, max_tokens=2, n=65)  # the replica's schema caps n
    for _ in range(Health.FAILURES_BEFORE_DOWN + 1):
        with pytest.raises(RequestRejected) as refused:
            asyncio.run(upstream_engine.generate([too_many]))
        assert refused.value.param == "n"
    assert upstream_engine.health() is None


def test_a_fleet_that_cannot_serve_is_a_503(engine: LlamaCppEngine) -> None:
    with LiveServer(engine) as replica:
        fleet = load_engine(ServerArgs(upstreams=[replica.url], model=TEST_MODEL))
    # the replica has stopped: every call is refused a connection, round after round
    with LiveServer(fleet) as front, httpx.Client(base_url=front.url, timeout=60) as http:
        completion = {"model": fleet.model_name, "prompt": "Hi", "max_tokens": 2}
        chat = {"model": fleet.model_name, "messages": [{"role": "user", "content": "Hi"}]}
        answers = [http.post("/v1/completions", json=completion)]
        answers.append(http.post("/v1/chat/completions", json={**chat, "search": TINY_SEARCH}))
    fleet.close()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("service_unavailable_error", "engine_fault")


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition`` until it holds (the probes run every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def test_the_fleet_is_sent_neutral_sampling_values(upstream_engine: UpstreamEngine) -> None:
    """`vllm serve` fills missing top_k, min_p and penalties from the model's
    generation_config.json; the upstream engine says the neutral ones outright, so the fleet
    samples as every other engine does (and a ponder upstream accepts them)."""
    ids = tuple(upstream_engine.tokenizer.encode("Once upon a time"))
    request = GenerationRequest(ids, max_tokens=4, seed=5)
    body = upstream_engine._body(request)
    assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (0, 0.0, 1.0)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.0, 0.0)
    [[sample]] = asyncio.run(upstream_engine.generate([request]))
    assert len(sample.token_ids) == 4
