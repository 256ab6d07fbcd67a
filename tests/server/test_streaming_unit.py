"""The streaming chunk builder on its own (no server): a scripted search's events in,
``chat.completion.chunk`` objects and SSE frames out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace

from search import AnswerDelta, Expanded, ReasoningDelta, SearchEvent, SearchParams, run_search
from server.errors import InvalidRequest
from server.openai.ask import PreparedSearch
from server.openai.chat_stream import chat_chunks
from server.openai.protocol import ChatCompletionChunk
from server.openai.shown import shown
from server.openai.streaming import DONE, sse_frames
from tests.scripted import CharTokenizer, ScriptedEngine, scored

PARAMS = SearchParams(
    prompt_token_ids=tuple(CharTokenizer().encode("Q? ")),
    method="mcts",
    granularity="mini_step",
    step_tokens=2,
    iterations=1,
    branching=2,
    rollout_tokens=64,
    seed=7,
)
PREPARED = PreparedSearch(
    request_id="chatcmpl-test",
    created=1_700_000_000,
    model="scripted",
    params=PARAMS,
    reasoning_format="plain",
    include_usage=True,
    return_tree=False,
    progress=False,
    question="Q?",
)


def search_events() -> list[SearchEvent]:
    """A real (scripted) MCTS search: reasoning "ab", then the answer "abcd" (one paragraph of
    mini-steps: the answer, whose decided first step streamed as reasoning too)."""
    engine = ScriptedEngine(
        [scored("abcd", 0.9), scored("xyzw", 0.3), scored("cd", 0.8), scored("ce", 0.4)]
    )

    async def collect() -> list[SearchEvent]:
        return [e async for e in run_search(PARAMS, engine)]

    return asyncio.run(collect())


async def replay(events: Iterable[SearchEvent]) -> AsyncIterator[SearchEvent]:
    for event in events:
        yield event


def chunks_of(prepared: PreparedSearch, events: list[SearchEvent]) -> list[ChatCompletionChunk]:
    async def collect() -> list[ChatCompletionChunk]:
        records = shown(prepared, replay(events), CharTokenizer())
        return [c async for c in chat_chunks(prepared, records)]

    return asyncio.run(collect())


def test_role_first_then_reasoning_then_content_then_finish_then_usage() -> None:
    events = search_events()
    chunks = chunks_of(PREPARED, events)
    assert {(c.id, c.created, c.model, c.object) for c in chunks} == {
        ("chatcmpl-test", 1_700_000_000, "scripted", "chat.completion.chunk")
    }
    first, *deltas, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    kinds = ["content" if c.choices[0].delta.content else "reasoning" for c in deltas]
    assert kinds == sorted(kinds, reverse=True)  # every reasoning delta before any content
    reasoning = "".join(c.choices[0].delta.reasoning or "" for c in deltas)
    assert reasoning == "".join(c.choices[0].delta.reasoning_content or "" for c in deltas)
    assert reasoning == "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "ab"
    content = "".join(c.choices[0].delta.content or "" for c in deltas)
    assert content == "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "abcd"
    assert finish.choices[0].finish_reason == "stop" and finish.search is not None
    assert finish.search.method == "mcts" and finish.search.tree is None
    assert usage.choices == [] and usage.usage is not None
    assert usage.usage.total_tokens == usage.usage.prompt_tokens + usage.usage.completion_tokens
    assert usage.usage.prompt_tokens == len(PARAMS.prompt_token_ids)


def test_progress_and_usage_and_tree_only_when_asked() -> None:
    events = search_events()
    quiet = chunks_of(replace(PREPARED, include_usage=False), events)
    assert quiet[-1].choices[0].finish_reason == "stop"  # no usage chunk after it
    assert all(c.search_progress is None for c in quiet)
    chatty = chunks_of(replace(PREPARED, progress=True, return_tree=True), events)
    progress = [c.search_progress for c in chatty if c.search_progress is not None]
    expanded = [e for e in events if isinstance(e, Expanded)]
    assert [(p.round, p.iterations, p.nodes) for p in progress] == [
        (e.round, e.iterations, e.nodes) for e in expanded
    ]
    finish = next(c for c in chatty if c.choices and c.choices[0].finish_reason)
    assert finish.search is not None and finish.search.tree


def frames_of(chunks: AsyncIterator[ChatCompletionChunk]) -> list[str]:
    async def collect() -> list[str]:
        return [str(frame.data) async for frame in sse_frames(chunks)]

    return asyncio.run(collect())


async def failing_after(
    first: ChatCompletionChunk, error: Exception
) -> AsyncIterator[ChatCompletionChunk]:
    yield first
    raise error


def test_frames_leave_out_empty_fields_and_end_with_done() -> None:
    chunks = chunks_of(PREPARED, search_events())

    async def replayed() -> AsyncIterator[ChatCompletionChunk]:
        for chunk in chunks:
            yield chunk

    frames = frames_of(replayed())
    assert frames[-1] == DONE and len(frames) == len(chunks) + 1
    role = json.loads(frames[0])
    assert "usage" not in role and "search" not in role  # absent, not null
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_an_error_mid_stream_is_one_error_frame_then_done() -> None:
    first = chunks_of(PREPARED, search_events())[0]
    refused = InvalidRequest("too long", param="messages", code="context_length_exceeded")
    frames = frames_of(failing_after(first, refused))
    assert frames[-1] == DONE and len(frames) == 3
    error = json.loads(frames[1])["error"]
    assert error == {
        "message": "too long",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    frames = frames_of(failing_after(first, RuntimeError("boom")))
    error = json.loads(frames[1])["error"]
    assert (error["type"], error["message"]) == ("internal_error", "Internal error: RuntimeError")
    assert frames[-1] == DONE
