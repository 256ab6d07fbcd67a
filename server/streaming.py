"""Search events -> ``chat.completion.chunk`` objects -> server-sent events, ``[DONE]`` last.

An error after the first byte cannot change the HTTP status any more, so it goes out as one
``{"error": ...}`` frame before ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import ServerSentEvent

from search import AnswerDelta, Expanded, Finished, ReasoningDelta, SearchEvent
from server.errors import PonderError
from server.protocol import ChatCompletionChunk, ChunkChoice, DeltaMessage, SearchProgress
from server.serving import PreparedChat, finish_reason_of, search_info, usage_of

logger = logging.getLogger(__name__)

DONE = "[DONE]"


async def chat_chunks(
    prepared: PreparedChat, events: AsyncIterator[SearchEvent]
) -> AsyncIterator[ChatCompletionChunk]:
    """Map a search's events to stream chunks: role first, deltas, finish, then usage."""

    def chunk(
        delta: DeltaMessage | None, finish_reason: str | None = None, **extensions: Any
    ) -> ChatCompletionChunk:
        """A chunk of this response: one choice with ``delta``, or none (the usage chunk)."""
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish_reason)]
        return ChatCompletionChunk(
            id=prepared.request_id,
            created=prepared.created,
            model=prepared.model,
            choices=choices,
            **extensions,
        )

    yield chunk(DeltaMessage(role="assistant", content=""))
    async for event in events:
        if isinstance(event, ReasoningDelta):
            yield chunk(DeltaMessage(reasoning=event.text, reasoning_content=event.text))
        elif isinstance(event, AnswerDelta):
            yield chunk(DeltaMessage(content=event.text))
        elif isinstance(event, Expanded) and prepared.progress:
            progress = SearchProgress(
                round=event.round,
                iterations=event.iterations,
                nodes=event.nodes,
                best_reward=event.best_reward,
            )
            yield chunk(DeltaMessage(), search_progress=progress)
        elif isinstance(event, Finished):
            result = event.result
            yield chunk(
                DeltaMessage(),
                finish_reason_of(result),
                search=search_info(prepared, result, with_tree=prepared.return_tree),
            )
            if prepared.include_usage:
                yield chunk(None, usage=usage_of(result))


async def sse_frames(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[ServerSentEvent]:
    """Serialise chunks as SSE ``data:`` frames, turning a failure into an error frame."""
    try:
        async for item in chunks:
            yield ServerSentEvent(item.model_dump_json(exclude_none=True))
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
