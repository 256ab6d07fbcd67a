"""A finished chat search on the wire: the usage, the ``finish_reason``, the ``search`` object,
the answer's logprobs and tool calls, and the stream's chunks.

Written once for the streamed and the JSON answer alike; :func:`usage_of` is the one usage
mapping, which the other endpoints call too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from search import (
    AnswerDelta,
    DraftDelta,
    Expanded,
    Finished,
    ReasoningDelta,
    SearchEvent,
    SearchParams,
    SearchResult,
)
from search.engine import Tokenizer
from server.openai.logprobs import choice_logprobs
from server.openai.protocol import (
    ChatCompletionChunk,
    ChoiceLogprobs,
    ChunkChoice,
    CompletionTokensDetails,
    DeltaMessage,
    DeltaToolCall,
    PromptTokensDetails,
    SearchInfo,
    SearchProgress,
    ToolCall,
    Usage,
    WireFinishReason,
)
from server.openai.tool_calls import Call, answer_calls


@dataclass(frozen=True, slots=True)
class PreparedChat:
    """A validated request, ready to search."""

    request_id: str
    created: int
    model: str
    params: SearchParams
    reasoning_format: str
    include_usage: bool
    return_tree: bool
    progress: bool
    question: str
    widens: bool = False  # --adaptive-parallel may widen it, if it runs alone once admitted
    n: int = 1  # answers (choices) to run
    tools: frozenset[str] = frozenset()  # the functions offered: answers are read for calls
    answered: frozenset[Call] = frozenset()  # calls the conversation made and has results of
    parallel_tool_calls: bool = True
    top_logprobs: int | None = None  # the answer's logprobs, with this many alternatives


def usage_of(*results: SearchResult) -> Usage:
    """OpenAI usage of a request's finished searches (one per choice), with OpenAI's meaning
    for reasoning models: ``completion_tokens`` is every token generated, the discarded
    branches included; ``reasoning_tokens`` is that less the answers' content tokens;
    ``cached_tokens`` the prompt tokens the engine took from its prefix cache.  The prompt is
    counted once, whatever ``n``."""
    prompt = results[0].prompt_tokens
    completion = sum(r.completion_tokens for r in results)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=max(r.cached_tokens for r in results)
        ),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=sum(r.hidden_reasoning_tokens for r in results)
        ),
    )


def finish_reason_of(result: SearchResult, called: bool = False) -> WireFinishReason:
    """The choice's ``finish_reason``, one of OpenAI's: ``tool_calls`` when the answer
    ``called`` tools, ``length`` when a budget (tokens, the deadline, a server shutdown) cut
    the search, else how the returned text ended (``stop`` or ``length``).  Typed clients
    reject values outside OpenAI's set; why the search ended is ``search.stop_reason``."""
    if called:
        return "tool_calls"
    if result.stop_reason in ("max_seconds", "interrupted", "max_search_tokens"):
        return "length"
    return result.finish_reason


def search_info(prepared: PreparedChat, result: SearchResult, *, with_tree: bool) -> SearchInfo:
    """ponder's ``search`` object for a finished search, with the tree when asked for."""
    own = ("reasoning_format", "parallel", "tree")
    fields = {name: getattr(result, name) for name in SearchInfo.model_fields if name not in own}
    tree = list(result.tree) if with_tree else None
    return SearchInfo(
        **fields,
        reasoning_format=prepared.reasoning_format,
        parallel=prepared.params.parallel,
        tree=tree,
    )


# what a stream sends between a draft and the reasoning of a different sample chosen after it
DRAFT_SEPARATOR = "\n\n---\n\n"


class ShownReasoning:
    """The reasoning one choice's stream shows: its drafts (a sample shown while it decodes,
    :class:`search.events.DraftDelta`), then the chosen answer's reasoning, unless the draft
    showed it already (the chosen sample was the draft's): a reasoning that leaves the draft is
    sent whole, after :data:`DRAFT_SEPARATOR`."""

    def __init__(self) -> None:
        self.draft = ""
        self.reasoning = ""
        self.left_draft = False

    def add(self, event: DraftDelta | ReasoningDelta) -> str:
        """The text to send for ``event`` ("" for reasoning the draft has shown)."""
        if isinstance(event, DraftDelta):
            self.draft += event.text
            return event.text
        if not self.draft or self.left_draft:
            return event.text
        self.reasoning += event.text
        if self.draft.startswith(self.reasoning):
            return ""
        self.left_draft = True
        return DRAFT_SEPARATOR + self.reasoning


def tool_answer(prepared: PreparedChat, text: str) -> tuple[str | None, list[ToolCall] | None]:
    """An answer's text and the tool calls it made (none where no tools were offered)."""
    if not prepared.tools:
        return text, None
    return answer_calls(text, prepared.tools, prepared.parallel_tool_calls, prepared.answered)


def answer_logprobs(
    prepared: PreparedChat, result: SearchResult, tokenizer: Tokenizer
) -> ChoiceLogprobs | None:
    """The choice's ``logprobs``, where the request asked for them."""
    if prepared.top_logprobs is None:
        return None
    return choice_logprobs(result, tokenizer, prepared.top_logprobs)


async def chat_chunks(
    prepared: PreparedChat, events: AsyncIterator[SearchEvent], tokenizer: Tokenizer
) -> AsyncGenerator[ChatCompletionChunk]:
    """A search's events as stream chunks: each choice's role first, deltas (each chunk names
    its choice's ``index``), each choice's finish (with the answer's logprobs, where asked:
    the answer is known once the search ends), then the usage of all of them."""

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
    shown = [ShownReasoning() for _ in range(prepared.n)]
    held: list[list[str]] = [[] for _ in range(prepared.n)]  # answers that may be calls
    async for event in events:
        index = event.choice
        if isinstance(event, DraftDelta | ReasoningDelta):
            if text := shown[index].add(event):
                yield chunk(DeltaMessage(reasoning=text, reasoning_content=text), index=index)
        elif isinstance(event, AnswerDelta) and prepared.tools:
            held[index].append(event.text)  # a call, or text: known once the answer is whole
        elif isinstance(event, AnswerDelta):
            yield chunk(DeltaMessage(content=event.text), index=index)
        elif isinstance(event, Expanded) and prepared.progress:
            progress = SearchProgress(
                round=event.round,
                iterations=event.iterations,
                nodes=event.nodes,
                best_reward=event.best_reward,
            )
            yield chunk(DeltaMessage(), index=index, search_progress=progress)
        elif isinstance(event, Finished):
            result = results[index] = event.result
            calls = None
            if prepared.tools:
                said, calls = tool_answer(prepared, "".join(held[index]))
                if said:
                    yield chunk(DeltaMessage(content=said), index=index)
                if calls:
                    placed = [DeltaToolCall(index=i, **c.model_dump()) for i, c in enumerate(calls)]
                    yield chunk(DeltaMessage(tool_calls=placed), index=index)
            yield chunk(
                DeltaMessage(),
                finish_reason_of(result, called=bool(calls)),
                index=index,
                logprobs=answer_logprobs(prepared, result, tokenizer),
                search=search_info(prepared, result, with_tree=prepared.return_tree),
            )
    if prepared.include_usage and len(results) == prepared.n:
        yield chunk(None, usage=usage_of(*(results[i] for i in range(prepared.n))))
