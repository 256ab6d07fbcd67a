"""Stream chunks -> server-sent events, ``[DONE]`` last: the one place that writes ``data:``.

An error after the first byte cannot change the HTTP status any more, so it goes out as one
``{"error": ...}`` frame before ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from server.errors import PonderError
from server.openai.protocol import OpenAIBaseModel

logger = logging.getLogger(__name__)

DONE = "[DONE]"


async def sse_frames(chunks: AsyncIterator[OpenAIBaseModel]) -> AsyncIterator[ServerSentEvent]:
    """Serialise chunks as SSE ``data:`` frames, turning a failure into an error frame."""
    try:
        async for item in chunks:
            yield ServerSentEvent(item.wire())
    except asyncio.CancelledError:
        raise
    except PonderError as exc:
        yield ServerSentEvent(exc.body().model_dump_json())
    except Exception as exc:
        logger.exception("stream failed")
        yield ServerSentEvent(
            PonderError(f"Internal error: {type(exc).__name__}").body().model_dump_json()
        )
    yield ServerSentEvent(DONE)
