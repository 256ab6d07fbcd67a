"""The upstream engine's own lifecycle: callers on several event loops share one connection
pool and one concurrency limit per replica, and closing the engine closes its connections."""

from __future__ import annotations

import asyncio

import psutil

from search.engine import GenerationRequest
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.llamacpp.engine import LlamaCppEngine
from server.engines.upstream_engine import UpstreamEngine
from server.model_source import resolve
from tests.conftest import TEST_MODEL, LiveServer


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
