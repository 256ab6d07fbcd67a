"""Closing an engine answers the calls still in it (with an error) instead of leaving their
callers waiting forever: what a server shutting down relies on."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from search.engine import GenerationRequest
from server.args import ServerArgs
from server.engines import load_engine
from tests.conftest import TEST_MODEL


@pytest.mark.parametrize("kind", ["llamacpp", "transformers"])
def test_closing_fails_the_calls_in_flight(kind: str) -> None:
    engine = load_engine(
        ServerArgs(engine=kind, model=TEST_MODEL)
    )  # its own engine: this test closes it
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


def test_closing_frees_llama_cpp_only_once_its_decode_step_has_ended(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A decode step that outlasts ``close``'s wait keeps its context: it is freed when the
    step ends, never under it (a use-after-free in llama.cpp)."""
    import llama_cpp

    from server.engines.llamacpp import engine as llamacpp_engine

    engine = load_engine(
        ServerArgs(engine="llamacpp", model=TEST_MODEL)
    )  # its own engine: this test closes it
    prompt = tuple(engine.tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}]))
    decoding, step_may_end, all_freed = threading.Event(), threading.Event(), threading.Event()
    decoders: list[threading.Thread] = []
    freed: list[tuple[str, bool]] = []  # (function, whether no decode could still be running)
    decode = llama_cpp.llama_decode

    def held_decode(ctx: object, batch: object) -> int:
        decoders.append(threading.current_thread())
        decoding.set()
        step_may_end.wait()
        return int(decode(ctx, batch))

    def watched(name: str) -> None:
        free = getattr(llama_cpp, name)

        def watched_free(handle: object) -> None:
            decoder = decoders[0]
            safe = threading.current_thread() is decoder or not decoder.is_alive()
            freed.append((name, safe))
            if safe:  # an unsafe free is only recorded: performing it would crash the test
                free(handle)
            if name == "llama_model_free":
                all_freed.set()

        monkeypatch.setattr(llama_cpp, name, watched_free)

    for name in ("llama_batch_free", "llama_free", "llama_model_free"):
        watched(name)
    monkeypatch.setattr(llama_cpp, "llama_decode", held_decode)
    monkeypatch.setattr(llamacpp_engine, "CLOSE_WAIT_SECONDS", 0.1)

    async def close_during_a_step() -> None:
        running = asyncio.ensure_future(engine.generate([GenerationRequest(prompt, max_tokens=8)]))
        assert await asyncio.to_thread(decoding.wait, 120), "the call never reached a decode"
        await asyncio.to_thread(engine.close)  # returns while the step is still held
        assert freed == []
        step_may_end.set()
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(running, timeout=60)

    with caplog.at_level(logging.ERROR, logger=llamacpp_engine.__name__):
        asyncio.run(close_during_a_step())
    assert "still in a decode step" in caplog.text
    assert all_freed.wait(60), "the context was never freed"
    assert freed == [
        (name, True) for name in ("llama_batch_free", "llama_free", "llama_model_free")
    ]
