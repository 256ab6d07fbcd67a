"""What a search's events show a client, in no surface's wire terms: the reasoning to show
(drafts, then the chosen answer's), the answer's text, the progress of a tree, and each
choice's end (its text, tool calls, finish reason, logprobs and ``search`` object).

Chat's chunks and the Responses API's events are each a mapping of these records, so the two
surfaces show one search the same way, and neither reads the other's wire objects.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from search import (
    AnswerDelta,
    DraftDelta,
    Expanded,
    Finished,
    ReasoningDelta,
    SearchEvent,
    SearchResult,
)
from search.engine import Tokenizer
from server.openai.ask import PreparedSearch
from server.openai.chat_wire import (
    answer_logprobs,
    finish_reason_of,
    search_info,
    tool_answer,
)
from server.openai.protocol import ChoiceLogprobs, SearchInfo, ToolCall, WireFinishReason

# what a stream sends between a draft and the reasoning of a different sample chosen after it
DRAFT_SEPARATOR = "\n\n---\n\n"


@dataclass(frozen=True, slots=True)
class Thought:
    """Reasoning to show, as it comes."""

    choice: int
    text: str


@dataclass(frozen=True, slots=True)
class Said:
    """Answer text to show, as it comes (held to the end where the answer may be a call)."""

    choice: int
    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    """A tree search's round, for a client that asked for ``search.progress``."""

    choice: int
    expanded: Expanded


@dataclass(frozen=True, slots=True)
class Answered:
    """A choice has ended: its tool calls (``None`` when it made none), how it finished, its
    logprobs where asked, and its ``search`` object."""

    choice: int
    result: SearchResult
    calls: list[ToolCall] | None
    finish_reason: WireFinishReason
    logprobs: ChoiceLogprobs | None
    search: SearchInfo


Shown = Thought | Said | Progress | Answered


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


async def shown(
    prepared: PreparedSearch, events: AsyncIterator[SearchEvent], tokenizer: Tokenizer
) -> AsyncGenerator[Shown]:
    """A search's events as what its client sees, each record naming its choice.  Where tools
    were offered, an answer is held until it is whole: only then is it known to be a call."""
    shown_reasoning = [ShownReasoning() for _ in range(prepared.n)]
    held: list[list[str]] = [[] for _ in range(prepared.n)]  # answers that may be calls
    async for event in events:
        index = event.choice
        if isinstance(event, DraftDelta | ReasoningDelta):
            if text := shown_reasoning[index].add(event):
                yield Thought(index, text)
        elif isinstance(event, AnswerDelta) and prepared.tools:
            held[index].append(event.text)
        elif isinstance(event, AnswerDelta):
            yield Said(index, event.text)
        elif isinstance(event, Expanded) and prepared.progress:
            yield Progress(index, event)
        elif isinstance(event, Finished):
            result, calls = event.result, None
            if prepared.tools:
                said, calls = tool_answer(prepared, "".join(held[index]))
                if said:
                    yield Said(index, said)
            yield Answered(
                index,
                result,
                calls,
                finish_reason_of(result, called=bool(calls)),
                answer_logprobs(prepared, result, tokenizer),
                search_info(prepared, result, with_tree=prepared.return_tree),
            )
