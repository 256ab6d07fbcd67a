"""Stream chunks -> server-sent events: the one place that writes ``data:``.

Chat's chunks end with ``[DONE]``; the Responses API's events are named (``event:``) and end
with their last event.  An error after the first byte cannot change the HTTP status any more,
so it goes out as one last frame: ``{"error": ...}`` before chat's ``[DONE]``, an ``error``
event on the Responses API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from server.errors import PonderError
from server.openai.protocol import OpenAIBaseModel
from server.openai.responses_protocol import ResponseErrorEvent, ResponseStreamEvent

logger = logging.getLogger(__name__)

DONE = "[DONE]"


async def sse_frames(chunks: AsyncIterator[OpenAIBaseModel]) -> AsyncIterator[ServerSentEvent]:
    """Serialise chunks as SSE ``data:`` frames, turning a failure into an error frame."""
    try:
        async for item in chunks:
            yield ServerSentEvent(item.wire())
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        yield ServerSentEvent(_failure(exc).body().model_dump_json())
    yield ServerSentEvent(DONE)


async def event_frames(
    events: AsyncIterator[ResponseStreamEvent],
) -> AsyncIterator[ServerSentEvent]:
    """Serialise Responses events as SSE events named by their type, turning a failure into
    an ``error`` event that takes the next sequence number."""
    sequence = 0
    try:
        async for event in events:
            sequence = event.sequence_number + 1
            yield ServerSentEvent(event.wire(), event=event.type)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error = _failure(exc)
        frame = ResponseErrorEvent(
            sequence_number=sequence,
            code=error.code or error.error_type,
            message=error.message,
            param=error.param,
        )
        yield ServerSentEvent(frame.wire(), event=frame.type)


def _failure(exc: Exception) -> PonderError:
    """What the client is told of ``exc``: a :class:`PonderError` as it is; anything else is
    logged and told as an internal error, without its details."""
    if isinstance(exc, PonderError):
        return exc
    logger.error("stream failed", exc_info=exc)
    return PonderError(f"Internal error: {type(exc).__name__}")
