"""The hand-over of a call between its caller's event loop and an engine's scheduler thread."""

from __future__ import annotations

import asyncio

from search.engine import Completion, GenerationRequest
from server.engines.calls import Call


def test_settling_a_call_whose_caller_has_gone_is_harmless() -> None:
    """A caller's loop can close between two steps of the scheduler (a benchmark's
    ``asyncio.run`` returning as soon as its result arrives): handing that call a result must
    not raise in the scheduler thread, where it would fail every other call in the batch."""
    loop = asyncio.new_event_loop()
    call = Call([GenerationRequest((1, 2), max_tokens=1)], loop.create_future(), loop)
    loop.close()
    done = Completion(token_ids=(3,), text="x", logprobs=(), finish_reason="length")
    call.settle([[done]])
    call.settle(RuntimeError("a second settle"))
    assert call.settled and not call.future.done()
