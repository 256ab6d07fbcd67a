"""The Responses API (``POST /v1/responses``, stateless) over the shared search service.

A request becomes an :class:`~server.openai.ask.Ask` and is prepared as chat's are (admission,
caps, aliases, metrics, traces and the usage mapping are shared); what the search shows
(:mod:`server.openai.shown`, the records chat's chunks are made of too) becomes Responses
events, and a JSON answer is the ``response`` of the stream's last event, so the two cannot
disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from server.openai.ask import PreparedSearch
from server.openai.chat_wire import usage_of
from server.openai.protocol import SearchInfo, ToolCall, Usage
from server.openai.responses_protocol import (
    IncompleteDetails,
    InputTokensDetails,
    LifecycleType,
    OutputItem,
    OutputText,
    OutputTokensDetails,
    ReasoningText,
    Response,
    ResponseArgumentsEvent,
    ResponseContentPartEvent,
    ResponseFunctionCall,
    ResponseLifecycleEvent,
    ResponseOutputItemEvent,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponsesRequest,
    ResponseStatus,
    ResponseStreamEvent,
    ResponseTextEvent,
    ResponseUsage,
    TextEventType,
)
from server.openai.responses_request import in_responses_terms, responses_ask
from server.openai.service import SearchService
from server.openai.shown import Answered, Said, Shown, Thought


def response_usage(usage: Usage) -> ResponseUsage:
    """Chat's usage under the Responses API's names: the same counts."""
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(
            cached_tokens=usage.prompt_tokens_details.cached_tokens
        ),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(
            reasoning_tokens=usage.completion_tokens_details.reasoning_tokens
        ),
        total_tokens=usage.total_tokens,
    )


@dataclass(frozen=True, slots=True)
class PreparedResponse:
    """A validated request: its prepared search and what the response echoes."""

    search: PreparedSearch
    request: ResponsesRequest


@dataclass(slots=True)
class _Writer:
    """One response's stream as it is written: the events' sequence numbers, the reasoning
    and answer so far, and how the search ended."""

    prepared: PreparedResponse
    sequence: int = 0
    reasoning: list[str] | None = None  # None until the reasoning item is added
    answer: list[str] | None = None  # None until the message item is added
    closed: set[str] = field(default_factory=set)  # the items done: "reasoning", "message"
    called: bool = False  # the answer made function calls
    output: list[OutputItem] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    search: SearchInfo | None = None
    ids: tuple[str, str] = field(default_factory=lambda: (_id("rs"), _id("msg")))

    def number(self) -> int:
        self.sequence += 1
        return self.sequence - 1

    def response(self, status: ResponseStatus) -> Response:
        """The response as far as it has come."""
        request, params = self.prepared.request, self.prepared.search.params
        return Response(
            id=self.prepared.search.request_id,
            created_at=self.prepared.search.created,
            status=status,
            incomplete_details=IncompleteDetails() if status == "incomplete" else None,
            instructions=request.instructions,
            max_output_tokens=request.max_output_tokens,
            metadata=request.metadata or {},
            model=request.model,
            output=list(self.output),
            reasoning=request.reasoning,
            temperature=params.temperature,
            top_p=params.top_p,
            tool_choice=request.tool_choice or "auto",
            tools=request.tools or [],
            parallel_tool_calls=request.parallel_tool_calls is not False,
            text=request.text,
            usage=None if self.usage is None else response_usage(self.usage),
            search=self.search,
        )

    def lifecycle(self, kind: LifecycleType, status: ResponseStatus) -> ResponseLifecycleEvent:
        return ResponseLifecycleEvent(
            type=kind, sequence_number=self.number(), response=self.response(status)
        )

    def take(self, record: Shown) -> Iterator[ResponseStreamEvent]:
        """The events one record of what the search shows stands for."""
        if isinstance(record, Thought):
            if self.reasoning is None:
                self.reasoning = []
                yield from self._added(self._reasoning_item("in_progress"), ReasoningText)
            self.reasoning.append(record.text)
            yield self._text("response.reasoning_text.delta", delta=record.text)
        elif isinstance(record, Said):
            yield from self._open_answer()
            assert self.answer is not None
            self.answer.append(record.text)
            yield self._text("response.output_text.delta", delta=record.text, logprobs=[])
        elif isinstance(record, Answered):
            if record.calls:
                yield from self._close_reasoning()
                yield from self._close_answer("completed")
                for call in record.calls:
                    yield from self._call(call)
                self.called = True
            self.finish_reason = record.finish_reason
            self.usage, self.search = usage_of(record.result), record.search

    def finish(self) -> Iterator[ResponseStreamEvent]:
        """The answer's closing events (no message when the answer only made calls), then
        the whole response."""
        status: ResponseStatus = "incomplete" if self.finish_reason == "length" else "completed"
        if not self.called:
            yield from self._open_answer()
        yield from self._close_reasoning()
        yield from self._close_answer(status)
        kind: LifecycleType = (
            "response.incomplete" if status == "incomplete" else "response.completed"
        )
        yield self.lifecycle(kind, status)

    def _open_answer(self) -> Iterator[ResponseStreamEvent]:
        """Close the reasoning item, if any, and add the message item, once."""
        if self.answer is not None:
            return
        yield from self._close_reasoning()
        self.answer = []
        message = ResponseOutputMessage(id=self.ids[1], status="in_progress", content=[])
        yield from self._added(message, OutputText)

    def _close_reasoning(self) -> Iterator[ResponseStreamEvent]:
        if self.reasoning is None or "reasoning" in self.closed:
            return
        self.closed.add("reasoning")
        text = "".join(self.reasoning)
        yield self._text("response.reasoning_text.done", text=text)
        yield from self._done(self._reasoning_item("completed"), ReasoningText(text=text))

    def _close_answer(self, status: ResponseStatus) -> Iterator[ResponseStreamEvent]:
        if self.answer is None or "message" in self.closed:
            return
        self.closed.add("message")
        text = "".join(self.answer)
        yield self._text("response.output_text.done", text=text, logprobs=[])
        message = ResponseOutputMessage(
            id=self.ids[1], status=status, content=[OutputText(text=text)]
        )
        yield from self._done(message, OutputText(text=text))

    def _call(self, call: ToolCall) -> Iterator[ResponseStreamEvent]:
        """One call as a ``function_call`` item: added, its arguments (whole), done."""
        index, arguments = len(self.output), call.function.arguments
        item = ResponseFunctionCall(
            id=_id("fc"),
            call_id=call.id,
            name=call.function.name,
            arguments="",
            status="in_progress",
        )
        yield ResponseOutputItemEvent(
            type="response.output_item.added",
            sequence_number=self.number(),
            output_index=index,
            item=item,
        )
        for kind, text in (("delta", {"delta": arguments}), ("done", {"arguments": arguments})):
            yield ResponseArgumentsEvent(
                type=f"response.function_call_arguments.{kind}",
                sequence_number=self.number(),
                item_id=item.id,
                output_index=index,
                **text,
            )
        done = item.model_copy(update={"arguments": arguments, "status": "completed"})
        yield ResponseOutputItemEvent(
            type="response.output_item.done",
            sequence_number=self.number(),
            output_index=index,
            item=done,
        )
        self.output.append(done)

    def _reasoning_item(self, status: ResponseStatus) -> ResponseReasoningItem:
        text = "".join(self.reasoning or ())
        content = [ReasoningText(text=text)] if status == "completed" else []
        return ResponseReasoningItem(id=self.ids[0], content=content, status=status)

    def _added(
        self, item: OutputItem, part: type[ReasoningText | OutputText]
    ) -> Iterator[ResponseStreamEvent]:
        """An output item and its (empty) content part begin."""
        index = len(self.output)
        added = "response.output_item.added"
        yield ResponseOutputItemEvent(
            type=added, sequence_number=self.number(), output_index=index, item=item
        )
        yield ResponseContentPartEvent(
            type="response.content_part.added",
            sequence_number=self.number(),
            item_id=item.id,
            output_index=index,
            part=part(text=""),
        )

    def _done(
        self, item: OutputItem, part: ReasoningText | OutputText
    ) -> Iterator[ResponseStreamEvent]:
        """The open output item's content part and the item itself are done."""
        index = len(self.output)
        yield ResponseContentPartEvent(
            type="response.content_part.done",
            sequence_number=self.number(),
            item_id=item.id,
            output_index=index,
            part=part,
        )
        yield ResponseOutputItemEvent(
            type="response.output_item.done",
            sequence_number=self.number(),
            output_index=index,
            item=item,
        )
        self.output.append(item)

    def _text(self, kind: TextEventType, **fields: Any) -> ResponseTextEvent:
        """A text event of the open item: its delta, or the whole text once done."""
        item_id = self.ids[1] if self.answer is not None else self.ids[0]
        return ResponseTextEvent(
            type=kind,
            sequence_number=self.number(),
            item_id=item_id,
            output_index=len(self.output),
            **fields,
        )


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


async def response_events(
    prepared: PreparedResponse, records: AsyncIterator[Shown]
) -> AsyncIterator[ResponseStreamEvent]:
    """What one search shows as Responses events, ``sequence_number`` counting up:
    created, in progress, the reasoning item as the search commits steps, the message item,
    then completed (or incomplete, when a budget cut the search)."""
    writer = _Writer(prepared)
    yield writer.lifecycle("response.created", "in_progress")
    yield writer.lifecycle("response.in_progress", "in_progress")
    async for record in records:
        for event in writer.take(record):
            yield event
    for event in writer.finish():
        yield event


class ResponsesService:
    """The Responses API over the shared search service."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    async def prepare(self, request: ResponsesRequest) -> PreparedResponse:
        """Check the request and prepare its search, errors naming the Responses API's
        fields."""
        with in_responses_terms():
            prepared = await self.service.prepare(responses_ask(request), _id("resp"))
        return PreparedResponse(prepared, request)

    async def stream(self, prepared: PreparedResponse) -> AsyncIterator[ResponseStreamEvent]:
        """Run the search as Responses stream events."""
        with in_responses_terms():
            records = self.service.records(prepared.search)
            async for event in response_events(prepared, records):
                yield event

    async def create(self, prepared: PreparedResponse) -> Response:
        """Run the search to the end: the response its stream would end with."""
        last: ResponseStreamEvent | None = None
        async for event in self.stream(prepared):
            last = event
        assert isinstance(last, ResponseLifecycleEvent)
        return last.response
