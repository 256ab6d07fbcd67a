"""A Responses API request as the chat request it runs as: its input items as messages, its
tools and tool choice in chat's shape, its ``text.format`` as ``response_format``, what only a
stateful server could do refused, and chat's errors renamed to the Responses API's fields.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from server.errors import InvalidRequest, PonderError
from server.openai.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    FunctionCall,
    FunctionDefinition,
    NamedToolChoice,
    StreamOptions,
    Tool,
    ToolCall,
    ToolChoiceOption,
)
from server.openai.responses_protocol import (
    InputFunctionCall,
    InputFunctionCallOutput,
    InputItem,
    InputMessage,
    ResponsesRequest,
)
from server.openai.search_options import SearchOptions

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


def refuse_unsupported(request: ResponsesRequest) -> None:
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
def in_responses_terms() -> Iterator[None]:
    """Re-raise chat's errors with the Responses API's field names (see :func:`renamed`)."""
    try:
        yield
    except PonderError as exc:
        error = renamed(exc)
        if error is exc:
            raise
        raise error from exc
