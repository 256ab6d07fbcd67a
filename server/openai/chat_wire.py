"""A finished search on the wire: the usage, the ``finish_reason``, the ``search`` object, the
answer's logprobs and tool calls.

Written once for every surface, streamed or not; :func:`usage_of` is the one usage mapping,
which the other endpoints call too.
"""

from __future__ import annotations

from search import SearchResult
from search.engine import Tokenizer
from server.openai.ask import PreparedSearch
from server.openai.logprobs import choice_logprobs
from server.openai.protocol import (
    ChoiceLogprobs,
    CompletionTokensDetails,
    PromptTokensDetails,
    SearchInfo,
    ToolCall,
    Usage,
    WireFinishReason,
)
from server.openai.tool_calls import answer_calls


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
    reject values outside OpenAI's set; why the search ended is ``search.ended_by``."""
    if called:
        return "tool_calls"
    if result.ended_by in ("max_seconds", "interrupted", "max_search_tokens"):
        return "length"
    return result.finish_reason


def search_info(prepared: PreparedSearch, result: SearchResult, *, with_tree: bool) -> SearchInfo:
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


def tool_answer(prepared: PreparedSearch, text: str) -> tuple[str | None, list[ToolCall] | None]:
    """An answer's text and the tool calls it made (none where no tools were offered)."""
    if not prepared.tools:
        return text, None
    return answer_calls(text, prepared.tools, prepared.parallel_tool_calls, prepared.answered)


def answer_logprobs(
    prepared: PreparedSearch, result: SearchResult, tokenizer: Tokenizer
) -> ChoiceLogprobs | None:
    """The choice's ``logprobs``, where the request asked for them."""
    if prepared.top_logprobs is None:
        return None
    return choice_logprobs(result, tokenizer, prepared.top_logprobs)
