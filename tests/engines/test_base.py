"""``BaseEngine._calling``: only what the engine did wrong counts against its health."""

from __future__ import annotations

import asyncio

import pytest

from search.engine import EngineFault, RequestRejected
from server.engines.base import BaseEngine, Health
from server.engines.llamacpp.engine import LlamaCppEngine


def fail(engine: BaseEngine, exc: BaseException) -> None:
    """One ``generate`` call that ends with ``exc``."""
    with pytest.raises(type(exc)), engine._calling():
        raise exc


def test_refused_and_cancelled_calls_do_not_count_faults_do(engine: LlamaCppEngine) -> None:
    base = BaseEngine("m", engine.tokenizer)
    for _ in range(Health.FAILURES_BEFORE_DOWN + 1):
        fail(base, RequestRejected("n=65 is above 64 sequences", param="n"))
        fail(base, asyncio.CancelledError())
    assert base.health() is None
    for _ in range(Health.FAILURES_BEFORE_DOWN - 1):
        fail(base, EngineFault("llama_decode failed with status -1"))
    assert base.health() is None
    fail(base, RuntimeError("an unexpected error is the engine's too"))
    assert "unexpected error" in (base.health() or "")
    assert base.stats.requests_in_flight == 0
