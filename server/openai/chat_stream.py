"""Chat's consumer of a search: what it shows (:mod:`server.openai.shown`) as
``chat.completion.chunk`` objects, and the ``chat.completion`` JSON body folded from those
same chunks, so a streamed and an unstreamed answer cannot disagree."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from search import SearchResult
from server.errors import PonderError
from server.openai.ask import PreparedSearch
from server.openai.chat_wire import usage_of
from server.openai.protocol import (
    ChatCompletionChunk,
    ChatCompletionResponse,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    DeltaMessage,
    DeltaToolCall,
    ResponseMessage,
    SearchInfo,
    SearchProgress,
    ToolCall,
    Usage,
    WireFinishReason,
)
from server.openai.shown import Answered, Progress, Said, Shown, Thought


async def chat_chunks(
    prepared: PreparedSearch, records: AsyncIterator[Shown]
) -> AsyncGenerator[ChatCompletionChunk]:
    """What a search shows as stream chunks: each choice's role first, deltas (each chunk
    names its choice's ``index``), each choice's finish (with the answer's logprobs, where
    asked: the answer is known once the search ends), then the usage of all of them."""

    def chunk(
        delta: DeltaMessage | None,
        finish_reason: str | None = None,
        index: int = 0,
        logprobs: ChoiceLogprobs | None = None,
        **extensions: Any,
    ) -> ChatCompletionChunk:
        """A chunk of this response: choice ``index`` with ``delta``, or none (the usage)."""
        choices = (
            []
            if delta is None
            else [
                ChunkChoice(
                    index=index, delta=delta, finish_reason=finish_reason, logprobs=logprobs
                )
            ]
        )
        return ChatCompletionChunk(
            id=prepared.request_id,
            created=prepared.created,
            model=prepared.model,
            choices=choices,
            **extensions,
        )

    for index in range(prepared.n):
        yield chunk(DeltaMessage(role="assistant", content=""), index=index)
    results: dict[int, SearchResult] = {}
    async for record in records:
        index = record.choice
        if isinstance(record, Thought):
            yield chunk(
                DeltaMessage(reasoning=record.text, reasoning_content=record.text), index=index
            )
        elif isinstance(record, Said):
            yield chunk(DeltaMessage(content=record.text), index=index)
        elif isinstance(record, Progress):
            expanded = record.expanded
            progress = SearchProgress(
                round=expanded.round,
                iterations=expanded.iterations,
                nodes=expanded.nodes,
                best_reward=expanded.best_reward,
            )
            yield chunk(DeltaMessage(), index=index, search_progress=progress)
        elif isinstance(record, Answered):
            results[index] = record.result
            if record.calls:
                placed = [
                    DeltaToolCall(index=i, **c.model_dump()) for i, c in enumerate(record.calls)
                ]
                yield chunk(DeltaMessage(tool_calls=placed), index=index)
            yield chunk(
                DeltaMessage(),
                record.finish_reason,
                index=index,
                logprobs=record.logprobs,
                search=record.search,
            )
    if prepared.include_usage and len(results) == prepared.n:
        yield chunk(None, usage=usage_of(*(results[i] for i in range(prepared.n))))


@dataclass(slots=True)
class _Folded:
    """One choice as its chunks have told it so far."""

    reasoning: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    finish_reason: WireFinishReason | None = None
    logprobs: ChoiceLogprobs | None = None
    search: SearchInfo | None = None


async def chat_response(
    prepared: PreparedSearch, chunks: AsyncIterator[ChatCompletionChunk]
) -> ChatCompletionResponse:
    """The ``chat.completion`` the stream of ``prepared`` (which must include its usage)
    adds up to: a choice per answer, each with its own ``search`` object when there are
    several (the top-level one is choice 0's)."""
    folded = [_Folded() for _ in range(prepared.n)]
    usage: Usage | None = None
    async for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            into, delta = folded[choice.index], choice.delta
            into.reasoning += [delta.reasoning] if delta.reasoning else []
            into.content += [delta.content] if delta.content else []
            into.calls += [
                ToolCall(**c.model_dump(exclude={"index"})) for c in delta.tool_calls or ()
            ]
            if choice.finish_reason is not None:
                into.finish_reason, into.logprobs = choice.finish_reason, choice.logprobs
                into.search = chunk.search
    if usage is None or any(f.search is None or f.finish_reason is None for f in folded):
        raise PonderError("the search ended without a result")
    choices = [
        Choice(
            index=index,
            message=ResponseMessage(
                content="".join(f.content) if f.content or not f.calls else None,
                reasoning="".join(f.reasoning) or None,
                reasoning_content="".join(f.reasoning) or None,
                tool_calls=f.calls or None,
            ),
            finish_reason=f.finish_reason,
            logprobs=f.logprobs,
            search=f.search if prepared.n > 1 else None,
        )
        for index, f in enumerate(folded)
    ]
    return ChatCompletionResponse(
        id=prepared.request_id,
        created=prepared.created,
        model=prepared.model,
        choices=choices,
        usage=usage,
        search=folded[0].search,
    )


def with_usage(prepared: PreparedSearch) -> PreparedSearch:
    """``prepared`` whose stream ends with its usage, as the JSON body needs."""
    return replace(prepared, include_usage=True)
