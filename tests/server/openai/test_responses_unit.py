"""The Responses event writer and its SSE frames on their own (no server): what a scripted
search shows in, Responses events and named SSE events out, beside chat's chunks of the same
search."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from search import Finished, SearchEvent
from server.errors import InvalidRequest
from server.openai.chat_wire import usage_of
from server.openai.responses import PreparedResponse, response_events
from server.openai.responses_protocol import (
    ResponseLifecycleEvent,
    ResponsesRequest,
    ResponseStreamEvent,
)
from server.openai.responses_request import in_responses_terms
from server.openai.shown import Shown, shown
from server.openai.streaming import event_frames
from tests.scripted import CharTokenizer
from tests.server.test_streaming_unit import PREPARED, chunks_of, replay, search_events

PREPARED_RESPONSE = PreparedResponse(PREPARED, ResponsesRequest(model="scripted", input="Q?"))


def events_of(events: list[SearchEvent]) -> list[ResponseStreamEvent]:
    async def collect() -> list[ResponseStreamEvent]:
        records: AsyncIterator[Shown] = shown(PREPARED, replay(events), CharTokenizer())
        return [e async for e in response_events(PREPARED_RESPONSE, records)]

    return asyncio.run(collect())


def test_a_search_becomes_a_reasoning_item_then_a_message_with_chat_usage() -> None:
    events = search_events()
    chunks = chunks_of(PREPARED, events)
    written = events_of(events)
    assert [e.sequence_number for e in written] == list(range(len(written)))
    final = written[-1]
    assert isinstance(final, ResponseLifecycleEvent) and final.type == "response.completed"
    response = final.response
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and [c.text for c in reasoning.content] == ["ab"]
    assert message.type == "message" and [c.text for c in message.content] == ["abcd"]
    usage = next(c.usage for c in chunks if c.usage is not None)
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    result = next(e.result for e in events if isinstance(e, Finished))
    assert usage == usage_of(result)
    details = usage.completion_tokens_details
    assert response.usage.output_tokens_details.reasoning_tokens == details.reasoning_tokens


def test_an_error_mid_stream_is_an_error_event_naming_the_responses_field() -> None:
    created = events_of(search_events())[0]

    async def failing() -> AsyncIterator[ResponseStreamEvent]:
        with in_responses_terms():
            yield created
            raise InvalidRequest("too long", param="messages", code="context_length")

    async def collect() -> list[tuple[str | None, str]]:
        return [(frame.event, str(frame.data)) async for frame in event_frames(failing())]

    (first, _), (name, data) = asyncio.run(collect())
    assert (first, name) == ("response.created", "error")
    assert json.loads(data) == {
        "type": "error",
        "sequence_number": 1,
        "code": "context_length",
        "message": "too long",
        "param": "input",
    }
