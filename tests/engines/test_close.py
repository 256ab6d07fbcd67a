"""Closing an engine answers the calls still in it (with an error) instead of leaving their
callers waiting forever: what a server shutting down relies on."""

from __future__ import annotations

import asyncio

import pytest

from search.engine import GenerationRequest
from server.args import ServerArgs
from server.engines import load_engine


@pytest.mark.parametrize("kind", ["llamacpp", "transformers"])
def test_closing_fails_the_calls_in_flight(kind: str) -> None:
    engine = load_engine(ServerArgs(engine=kind))  # its own engine: this test closes it
    prompt = tuple(engine.tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}]))

    async def close_midway() -> None:
        running = asyncio.ensure_future(
            engine.generate([GenerationRequest(prompt, max_tokens=2000, n=2, seed=1)])
        )
        while engine.stats.decode_steps < 2:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(engine.close)
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(running, timeout=10)

    asyncio.run(close_midway())
    assert engine.health() == "the engine is closed"
