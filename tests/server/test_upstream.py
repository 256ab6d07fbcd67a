"""A fleet: two ponder servers (plain generation) as the upstreams of a third that runs MCTS.
One upstream is stopped mid-run and every search still completes.  A call a replica refuses is
the client's; a fleet that cannot serve is a 503."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import pytest

from search.engine import GenerationRequest, RequestRejected
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.base import Health
from server.engines.llamacpp.engine import LlamaCppEngine
from server.engines.upstream_engine import UpstreamEngine
from tests.conftest import TEST_MODEL, TINY_SEARCH, LiveServer, free_port
from tests.waiting import PATIENCE, until, wait_for

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
                    await until(lambda: fleet.stats.requests_in_flight > 0, "the searches")
                    first.server.should_exit = True  # stop one upstream mid-run
                    return list(await asyncio.gather(*searches))

            answers = asyncio.run(run())
            first.thread.join(timeout=PATIENCE)
            assert not first.thread.is_alive()
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    # every search finished a path.  Not necessarily with text: when a path's last action is its
    # end-of-sequence token alone, the last-step rule leaves the answer empty (1 of 40 such
    # searches on this model, 2026-11-26), and a busy machine batches calls differently, which
    # moves llama.cpp's rounding and so the samples: what was sampled is not this test's point
    bodies = [a.json() for a in answers]
    ends = [(b["choices"][0]["finish_reason"], b["usage"]["completion_tokens"] > 0) for b in bodies]
    assert all(end in (("stop", True), ("length", True)) for end in ends), json.dumps(bodies)
    down = [r for r in fleet.ranked(()) if r.url == first.url]
    assert down[0].down_until > 0  # calls to the stopped replica failed over
    fleet.close()


def test_health_probes_follow_a_replica_away_and_back(engine: LlamaCppEngine) -> None:
    """A replica that stops answering ``/health`` is passed over by every prompt before a call
    fails on it, takes calls again once it answers, and a fleet with no replica answering makes
    ponder's own ``/health`` 503."""
    port = free_port()
    late = f"http://127.0.0.1:{port}"  # nothing listens there yet
    prompts = [(i, i + 1) for i in range(20)]
    with LiveServer(engine) as live:
        # a probe may take as long as its period: a second, plenty for a loopback /health on a
        # busy machine (a tenth, it failed now and then and the replica flapped)
        fleet = load_engine(
            ServerArgs(upstreams=[live.url, late], model=TEST_MODEL, upstream_probe_seconds=1)
        )
        assert isinstance(fleet, UpstreamEngine)
        replica = next(r for r in fleet.ranked(()) if r.url == late)

        def first_choices() -> set[str]:
            return {fleet.ranked(p)[0].url for p in prompts}

        wait_for(lambda: replica.down_until == math.inf, "the absent replica to be set aside")
        assert not replica.healthy
        wait_for(lambda: first_choices() == {live.url}, "every prompt to pass it over")
        assert fleet.health() is None
        with LiveServer(engine, port=port):
            wait_for(lambda: replica.down_until == 0.0, "the replica to be taken back")
            wait_for(lambda: first_choices() == {live.url, late}, "prompts to reach it again")
        with LiveServer(fleet) as front:
            live.server.should_exit = True
            live.thread.join(timeout=PATIENCE)
            wait_for(lambda: fleet.health() is not None, "the fleet to report no replica")
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


def test_the_fleet_is_sent_neutral_sampling_values(upstream_engine: UpstreamEngine) -> None:
    """`vllm serve` fills missing top_k, min_p and penalties from the model's
    generation_config.json; the upstream engine says the neutral ones outright, so the fleet
    samples as every other engine does (and a ponder upstream accepts them)."""
    ids = tuple(upstream_engine.tokenizer.encode("Once upon a time"))
    request = GenerationRequest(ids, max_tokens=4, seed=5)
    body = upstream_engine._body(request, request.n, request.seed, stream=False)
    assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (0, 0.0, 1.0)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.0, 0.0)
    [[sample]] = asyncio.run(upstream_engine.generate([request]))
    assert len(sample.token_ids) == 4
