"""The upstream engine's own behaviour: callers on several event loops share one connection
pool and one concurrency limit per replica, closing the engine closes its connections, and a
halted sample's stream is closed, which stops it on the fleet."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import psutil

from search.engine import GenerationRequest, TokenLogprob
from server.engines.base import ServingEngine
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.llamacpp.engine import LlamaCppEngine
from server.engines.upstream_engine import UpstreamEngine
from server.model_source import resolve
from tests.conftest import TEST_MODEL, LiveServer
from tests.engines.test_contract import generate, prompt
from tests.waiting import wait_for


def connections_to(port: int) -> int:
    """This process's open TCP connections to ``port`` on loopback."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_callers_on_several_loops_share_the_limit_and_close_frees_the_connections(
    engine: LlamaCppEngine,
) -> None:
    """Two event loops in turn each queue more calls than a replica takes at once (so calls
    wait on the replica's limit in both); then ``close`` leaves no connection open."""
    source = resolve(TEST_MODEL)
    with LiveServer(engine) as replica:
        fleet = UpstreamEngine(
            [replica.url], HFTokenizer.load(source.tokenizer_folder()), max_concurrency=1
        )
        prompt = tuple(fleet.tokenizer.encode("The sea is"))

        async def three_at_once(seed: int) -> None:
            calls = [
                fleet.generate([GenerationRequest(prompt, max_tokens=2, seed=seed + i)])
                for i in range(3)
            ]
            for [[completion]] in await asyncio.gather(*calls):
                assert len(completion.token_ids) >= 1

        try:
            asyncio.run(three_at_once(1))
            asyncio.run(three_at_once(10))  # a new loop: the limit and the pool still work
            assert connections_to(replica.port) >= 1  # kept alive between calls
        finally:
            fleet.close()
        assert connections_to(replica.port) == 0
        assert fleet.health() == "the engine is closed"


def test_an_upstream_halt_closes_the_samples_stream_and_stops_it_there(
    upstream_engine: ServingEngine, engine: LlamaCppEngine
) -> None:
    """Over a fleet a halted request runs one streamed call per sample: the halt ends its
    sample at once (``length``, no stop reason), its stream closes and the ponder behind stops
    generating it, while the other sample runs to its own end, each judged after every token
    that did not end it."""
    story = prompt(engine, "Tell me a long story.")
    request = GenerationRequest(story, max_tokens=256, n=2, seed=3)
    plain = generate(upstream_engine, request)[0]
    assert min(len(c.token_ids) for c in plain) > 64  # room to stop one early
    asked: list[tuple[int, ...]] = []
    stopped: list[tuple[int, ...]] = []

    def halt(logprobs: Sequence[TokenLogprob]) -> bool:
        asked.append(ids := tuple(t.token_id for t in logprobs))
        if len(ids) == 4 and not stopped:  # whichever sample gets there first
            stopped.append(ids)
            return True
        return False

    wait_for(lambda: engine.stats.requests_in_flight == 0, "the engine to be idle")
    before = engine.stats.generated_tokens
    halted = generate(upstream_engine, replace(request, halt=halt))[0]
    [cut] = [c for c in halted if c.token_ids == stopped[0]]
    assert (cut.finish_reason, cut.stop_reason) == ("length", None)
    [other] = [c for c in halted if c is not cut]
    ids, ended = other.token_ids, other.finish_reason == "stop"
    assert ended or len(ids) == 256
    assert all(ids[:k] in asked for k in range(1, len(ids) + (not ended)))
    # the stream's close reached the engine behind: it stopped the halted sample long before
    # the end it would have reached
    wait_for(lambda: engine.stats.requests_in_flight == 0, "the halted call to end there")
    spent = engine.stats.generated_tokens - before
    assert spent < len(ids) + min(len(c.token_ids) for c in plain)
