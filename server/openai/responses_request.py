"""A Responses API request as an :class:`Ask`: its input items as the chat template's
messages, its function tools as templates read them, what only a stateful server could do
refused, and the service's errors named by the Responses API's fields.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic import ValidationError

from server.errors import InvalidRequest
from server.openai.ask import Ask, named_by
from server.openai.protocol import FunctionDefinition, ToolChoiceOption
from server.openai.responses_protocol import (
    InputFunctionCall,
    InputFunctionCallOutput,
    InputItem,
    InputMessage,
    ResponsesRequest,
)
from server.openai.tool_calls import template_message

# the Ask's names for the fields an error may name -> the Responses API's
_NAMES = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "format": "text.format",
    "format.type": "text.format.type",
    "format.name": "text.format.name",
    "format.schema": "text.format.schema",
}
_FUNCTION = r"(?<=\])\.function(?=\.|$)"  # a function tool's fields sit beside its type
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


def template_messages(items: list[InputItem]) -> list[dict[str, Any]]:
    """The input as chat templates read it: messages as they are, function calls in a row as
    one assistant turn's ``tool_calls``, their outputs as ``tool`` messages (earlier reasoning
    items left out of the prompt)."""
    messages: list[dict[str, Any]] = []
    calls: list[tuple[str, str, str]] = []  # the assistant turn being gathered
    for item in items:
        if isinstance(item, InputFunctionCall):
            calls.append((item.call_id, item.name, item.arguments))
            continue
        if calls:
            messages.append(template_message("assistant", "", calls))
            calls = []
        if isinstance(item, InputMessage):
            messages.append(template_message(item.role, item.text()))
        elif isinstance(item, InputFunctionCallOutput):
            messages.append(template_message("tool", item.text(), call_id=item.call_id))
    if calls:
        messages.append(template_message("assistant", "", calls))
    return messages


def template_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Responses API's function tools, whose fields sit beside their type, as chat
    templates read them; a 400 naming the field of one that is not a function."""
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
        converted.append({"type": "function", "function": function.model_dump(exclude_none=True)})
    return converted


def tool_choice(
    choice: ToolChoiceOption | dict[str, Any] | None,
) -> tuple[ToolChoiceOption | None, str | None]:
    """The :class:`Ask`'s ``tool_choice`` and named function for a Responses one, whose named
    function sits beside its type."""
    if not isinstance(choice, dict):
        return choice, None
    if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
        raise InvalidRequest(
            "tool_choice may be none, auto, required or a function by name",
            param="tool_choice",
        )
    return None, choice["name"]


def responses_ask(request: ResponsesRequest) -> Ask:
    """What a Responses request asks of its search: ``instructions`` as the system message,
    then the input's messages and calls; a 400 for what ponder refuses."""
    refuse_unsupported(request)
    messages = template_messages(request.input)
    if not messages:
        raise InvalidRequest("input holds no message", param="input")
    if request.instructions is not None:
        messages.insert(0, template_message("system", request.instructions))
    choice, function = tool_choice(request.tool_choice)
    return Ask(
        model=request.model,
        messages=tuple(messages),
        search=request.search.model_dump(exclude_unset=True) if request.search else {},
        max_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        reasoning_format=request.reasoning_format,
        reasoning_effort=request.reasoning.effort if request.reasoning else None,
        tools=tuple(template_tools(request.tools or [])),
        tool_choice=choice,
        function=function,
        parallel_tool_calls=request.parallel_tool_calls,
        format=request.text.format if request.text else None,
        streamed=request.stream,  # a streamed response shows drafts, as a chat stream does
        include_usage=True,
    )


def in_responses_terms() -> contextlib.AbstractContextManager[None]:
    """Re-raise the service's errors with the Responses API's field names."""
    return named_by(_NAMES, _FUNCTION)
