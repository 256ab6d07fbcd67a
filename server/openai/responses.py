"""The Responses API (``POST /v1/responses``, stateless) over chat's search.

A request becomes a chat request, so admission, caps, aliases, metrics, traces and the usage
mapping are chat's; chat's stream chunks become Responses events, and a JSON answer is the
``response`` of the stream's last event, so the two cannot disagree.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from server.errors import InvalidRequest, PonderError
from server.openai.chat import ChatService
from server.openai.chat_wire import PreparedChat
from server.openai.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    DeltaToolCall,
    FunctionCall,
    FunctionDefinition,
    NamedToolChoice,
    SearchInfo,
    SearchOptions,
    StreamOptions,
    Tool,
    ToolCall,
    ToolChoiceOption,
    Usage,
)
from server.openai.responses_protocol import (
    IncompleteDetails,
    InputFunctionCall,
    InputFunctionCallOutput,
    InputItem,
    InputMessage,
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

# chat's names for the fields an error may name -> the Responses API's
_PARAMS = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "response_format.type": "text.format.type",
    "response_format.json_schema": "text.format",
    "response_format.json_schema.name": "text.format.name",
    "response_format.json_schema.schema": "text.format.schema",
}
_STATELESS = "ponder's Responses API is stateless: it stores no responses"


def _refuse_unsupported(request: ResponsesRequest) -> None:
    """A 400 naming each field that needs stored state or output ponder cannot give, rather
    than an answer that ignored it."""
    stateful = {
        "previous_response_id": request.previous_response_id is not None,
        "store": bool(request.store),
        "conversation": request.conversation is not None,
        "background": bool(request.background),
        "prompt": request.prompt is not None,
    }
    for name, asked in stateful.items():
        if asked:
            raise InvalidRequest(f"{name} is not supported: {_STATELESS}", param=name)
    if request.top_logprobs or "message.output_text.logprobs" in (request.include or ()):
        param = "top_logprobs" if request.top_logprobs else "include"
        raise InvalidRequest(f"{param}: logprobs are not supported with search", param=param)
    for i, tool in enumerate(request.tools or []):
        if tool.get("type") != "function":
            raise InvalidRequest(
                f"tools[{i}]: only function tools are supported, not {tool.get('type')!r}",
                param=f"tools[{i}].type",
            )
    if request.search and request.search.progress:
        raise InvalidRequest(
            "search.progress is sent on chat completion streams only", param="search.progress"
        )


def chat_messages(items: list[InputItem]) -> list[ChatMessage]:
    """The input as chat messages: messages as they are, function calls in a row as one
    assistant turn's ``tool_calls``, their outputs as ``tool`` messages (earlier reasoning
    items left out of the prompt)."""
    messages: list[ChatMessage] = []
    for item in items:
        if isinstance(item, InputMessage):
            messages.append(ChatMessage(role=item.role, content=item.text()))
        elif isinstance(item, InputFunctionCall):
            call = ToolCall(
                id=item.call_id, function=FunctionCall(name=item.name, arguments=item.arguments)
            )
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and last.tool_calls:
                last.tool_calls.append(call)
            else:
                messages.append(ChatMessage(role="assistant", content=None, tool_calls=[call]))
        elif isinstance(item, InputFunctionCallOutput):
            messages.append(
                ChatMessage(role="tool", tool_call_id=item.call_id, content=item.text())
            )
    return messages


def chat_tools(tools: list[dict[str, Any]]) -> list[Tool]:
    """Chat's tools for the Responses API's function tools, whose fields sit beside their
    type; a 400 naming the field of one that is not a function as chat's are."""
    converted = []
    for i, tool in enumerate(tools):
        try:
            function = FunctionDefinition.model_validate(
                {k: v for k, v in tool.items() if k != "type"}
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            message = f"tools[{i}].{where}: {error['msg']}"
            raise InvalidRequest(message, param=f"tools[{i}].{where}") from None
        converted.append(Tool(type="function", function=function))
    return converted


def chat_tool_choice(
    choice: ToolChoiceOption | dict[str, Any] | None,
) -> ToolChoiceOption | NamedToolChoice | None:
    """Chat's ``tool_choice`` for a Responses one, whose named function sits beside its type."""
    if isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise InvalidRequest(
                "tool_choice may be none, auto, required or a function by name",
                param="tool_choice",
            )
        return NamedToolChoice(type="function", function={"name": choice["name"]})
    return choice


def chat_request(request: ResponsesRequest) -> ChatCompletionRequest:
    """The chat request that asks for the same search: ``instructions`` as the system
    message, then the input's messages and calls; the function tools in chat's shape."""
    messages = chat_messages(request.input)
    if not messages:
        raise InvalidRequest("input holds no message", param="input")
    if request.instructions is not None:
        messages.insert(0, ChatMessage(role="system", content=request.instructions))
    asked = request.search.model_dump(exclude_unset=True) if request.search else {}
    return ChatCompletionRequest(
        messages=messages,
        model=request.model,
        max_completion_tokens=request.max_output_tokens,
        stream=request.stream,  # a streamed response shows drafts, as a chat stream does
        stream_options=StreamOptions(include_usage=True),
        seed=request.seed,
        temperature=request.temperature,
        top_p=request.top_p,
        user=request.user,
        search=SearchOptions(**asked) if asked else None,
        reasoning_format=request.reasoning_format,
        reasoning_effort=request.reasoning.effort if request.reasoning else None,
        response_format=response_format(request.text.format if request.text else None),
        tools=chat_tools(request.tools or []) or None,
        tool_choice=chat_tool_choice(request.tool_choice),
        parallel_tool_calls=request.parallel_tool_calls,
    )


def response_format(text_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat's ``response_format`` for a Responses ``text.format``, whose JSON schema fields
    sit beside its type rather than under ``json_schema``."""
    if not text_format or text_format.get("type") != "json_schema":
        return text_format
    fields = {k: v for k, v in text_format.items() if k != "type"}
    return {"type": "json_schema", "json_schema": fields}


def renamed(error: PonderError) -> PonderError:
    """``error`` naming the Responses API's field where chat named its own."""
    param = error.param and _PARAMS.get(
        error.param, re.sub(r"^(tools\[\d+\])\.function", r"\1", error.param)
    )
    if param == error.param:
        return error
    return type(error)(error.message, param=param, code=error.code)


@contextlib.contextmanager
def _in_responses_terms() -> Iterator[None]:
    """Re-raise chat's errors with the Responses API's field names (see :func:`renamed`)."""
    try:
        yield
    except PonderError as exc:
        error = renamed(exc)
        if error is exc:
            raise
        raise error from exc


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
    """A validated request: chat's prepared search and what the response echoes."""

    chat: PreparedChat
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
        request, params = self.prepared.request, self.prepared.chat.params
        return Response(
            id=self.prepared.chat.request_id,
            created_at=self.prepared.chat.created,
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

    def take(self, chunk: ChatCompletionChunk) -> Iterator[ResponseStreamEvent]:
        """The events one chat chunk stands for."""
        self.usage = chunk.usage or self.usage
        self.search = chunk.search or self.search
        for choice in chunk.choices:
            delta = choice.delta
            if delta.reasoning:
                if self.reasoning is None:
                    self.reasoning = []
                    yield from self._added(self._reasoning_item("in_progress"), ReasoningText)
                self.reasoning.append(delta.reasoning)
                yield self._text("response.reasoning_text.delta", delta=delta.reasoning)
            if delta.content:
                yield from self._open_answer()
                assert self.answer is not None
                self.answer.append(delta.content)
                yield self._text("response.output_text.delta", delta=delta.content, logprobs=[])
            if delta.tool_calls:
                yield from self._close_reasoning()
                yield from self._close_answer("completed")
                for call in delta.tool_calls:
                    yield from self._call(call)
                self.called = True
            self.finish_reason = choice.finish_reason or self.finish_reason

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

    def _call(self, call: DeltaToolCall) -> Iterator[ResponseStreamEvent]:
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
    prepared: PreparedResponse, chunks: AsyncIterator[ChatCompletionChunk]
) -> AsyncIterator[ResponseStreamEvent]:
    """Chat's chunks of one search as Responses events, ``sequence_number`` counting up:
    created, in progress, the reasoning item as the search commits steps, the message item,
    then completed (or incomplete, when a budget cut the search)."""
    writer = _Writer(prepared)
    yield writer.lifecycle("response.created", "in_progress")
    yield writer.lifecycle("response.in_progress", "in_progress")
    async for chunk in chunks:
        for event in writer.take(chunk):
            yield event
    for event in writer.finish():
        yield event


class ResponsesService:
    """Validates Responses requests and answers them with chat's searches."""

    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    async def prepare(self, request: ResponsesRequest) -> PreparedResponse:
        """Check the request and prepare its search as chat would, errors naming the
        Responses API's fields."""
        _refuse_unsupported(request)
        with _in_responses_terms():
            prepared = await self.chat.prepare(chat_request(request))
        return PreparedResponse(replace(prepared, request_id=_id("resp")), request)

    async def stream(self, prepared: PreparedResponse) -> AsyncIterator[ResponseStreamEvent]:
        """Run the search as Responses stream events."""
        with _in_responses_terms():
            async for event in response_events(prepared, self.chat.chunks(prepared.chat)):
                yield event

    async def create(self, prepared: PreparedResponse) -> Response:
        """Run the search to the end: the response its stream would end with."""
        last: ResponseStreamEvent | None = None
        async for event in self.stream(prepared):
            last = event
        assert isinstance(last, ResponseLifecycleEvent)
        return last.response
