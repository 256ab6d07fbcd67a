"""Chat completions: an OpenAI chat request as an :class:`Ask`, and its search as chunks or
one ``chat.completion``.

The service (:mod:`server.openai.service`) prepares and runs the search; what it shows becomes
chunks (:mod:`server.openai.chat_stream`), and the JSON body is what those chunks add up to.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from server.errors import InvalidRequest
from server.openai.ask import Ask, PreparedSearch, named_by
from server.openai.chat_stream import chat_chunks, chat_response, with_usage
from server.openai.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    stop_strings,
)
from server.openai.service import SearchService
from server.openai.tool_calls import template_message

# the Ask's names for the fields an error may name -> chat's (the rest are chat's already)
_NAMES = {
    "format": "response_format",
    "format.type": "response_format.type",
    "format.name": "response_format.json_schema.name",
    "format.schema": "response_format.json_schema.schema",
}

# OpenAI fields that would change the answer if honoured, refused when set to anything but
# their neutral value; other unknown fields (metadata, store, service_tier...) are ignored
_CHANGES_THE_ANSWER = {
    "frequency_penalty": "the search samples without penalties",
    "presence_penalty": "the search samples without penalties",
    "logit_bias": "the search samples without biases",
    "modalities": "ponder answers in text",
    "audio": "ponder answers in text",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "ponder has no web search",
}


def refuse_unsupported(request: ChatCompletionRequest) -> None:
    """A 400 naming each field ponder cannot honour, rather than an answer that ignored it."""
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("top_logprobs needs logprobs: true", param="top_logprobs")
    extra = request.model_extra or {}
    for name, why in _CHANGES_THE_ANSWER.items():
        if extra.get(name) not in (None, 0, {}, [], ["text"]):
            raise InvalidRequest(f"{name} is not supported: {why}", param=name)


def answer_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The :class:`Ask`'s format for chat's ``response_format``, whose JSON schema's fields
    sit under ``json_schema`` rather than beside its type."""
    if not response_format or response_format.get("type") != "json_schema":
        return response_format
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequest(
            "response_format json_schema needs a json_schema object",
            param="response_format.json_schema",
        )
    return {**spec, "type": "json_schema"}


def chat_ask(request: ChatCompletionRequest) -> Ask:
    """What a chat request asks of its search; a 400 for what ponder refuses."""
    refuse_unsupported(request)
    choice = request.tool_choice
    messages = [
        template_message(
            m.role,
            m.text(),
            [(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or ()],
            m.tool_call_id,
            m.name,
        )
        for m in request.messages
    ]
    return Ask(
        model=request.model,
        messages=tuple(messages),
        search=request.search.model_dump(exclude_unset=True) if request.search else {},
        n=request.n,
        max_tokens=request.max_completion_tokens or request.max_tokens,
        stop=stop_strings(request.stop),
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        timeout=request.timeout,
        reasoning_format=request.reasoning_format,
        reasoning_effort=request.reasoning_effort,
        tools=tuple(tool.model_dump(exclude_none=True) for tool in request.tools or ()),
        tool_choice=choice if isinstance(choice, str) else None,
        function=None if choice is None or isinstance(choice, str) else _named(choice.function),
        parallel_tool_calls=request.parallel_tool_calls,
        format=answer_format(request.response_format),
        top_logprobs=(request.top_logprobs or 0) if request.logprobs else None,
        streamed=request.stream,
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
    )


def _named(function: dict[str, str]) -> str:
    """The function a named ``tool_choice`` forces."""
    if not isinstance(function.get("name"), str):
        raise InvalidRequest("a named tool_choice needs function.name", param="tool_choice")
    return function["name"]


class ChatService:
    """Chat completions over the shared search service."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    async def prepare(self, request: ChatCompletionRequest) -> PreparedSearch:
        """Check the request and prepare its search, errors naming chat's fields."""
        with named_by(_NAMES):
            return await self.service.prepare(chat_ask(request), f"chatcmpl-{uuid.uuid4().hex}")

    async def chunks(self, prepared: PreparedSearch) -> AsyncGenerator[ChatCompletionChunk]:
        """Run the search as stream chunks: role first, deltas, finish, then usage; an error
        once it runs (an engine's refusal) names chat's fields too."""
        with named_by(_NAMES):
            chunks = chat_chunks(prepared, self.service.records(prepared))
            async with contextlib.aclosing(chunks) as stream:
                async for chunk in stream:
                    yield chunk

    async def complete(self, prepared: PreparedSearch) -> ChatCompletionResponse:
        """Run the searches to the end: the ``chat.completion`` their stream adds up to."""
        return await chat_response(prepared, self.chunks(with_usage(prepared)))
