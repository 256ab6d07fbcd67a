"""Splitting a path's text into reasoning and answer, incrementally, as steps are committed.

The rule (documented in the README):

* If an answer marker appears (``<Output>`` as Marco-o1 writes, ``</think>`` as R1-style models
  write), text before it is reasoning and text after it is the answer.  The tags ``<Thought>``,
  ``</Thought>``, ``<think>`` and ``</Output>`` are dropped.
* Otherwise, for tree searches (``implicit="last_step"``), the last step of the path is the
  answer and the steps before it the reasoning (a last step with no text, an end-of-text token
  alone, leaves the answer to the step before it, which has then streamed as reasoning too:
  never an empty answer after a path with text); where steps are cut by size, not by the text
  (``mini_step`` and ``token`` granularity: ``implicit="last_paragraph"``), the last step is a
  few tokens of a sentence, so the path's last paragraph is the answer instead, though its
  earlier steps have streamed as reasoning too (Qwen2.5-Coder-0.5B's translations under
  4-token mini-steps had answered with their last 4 tokens, 1.4 words an item); for plain
  generation (``implicit="content"``),
  everything is the answer unless the text opens with ``<think>``/``<Thought>`` or the prompt
  already opened a reasoning block (``starts_in_reasoning``: a thinking template's ``<think>``).
  Such a block that the model ends (a stop, not a token bound) without a marker gives its last
  paragraph as the answer, which has then streamed as reasoning too: Qwen2.5-Coder-1.5B under
  Marco-o1's prompt did so on 8 of 30 GSM8K answers, each with its result in that paragraph.

Text that might be the beginning of a tag is held back until the next step decides it, and an
incomplete UTF-8 character at the end of a step waits for the bytes that finish it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Literal

from search.engine import Tokenizer, TokenLogprob
from search.events import AnswerDelta, ReasoningDelta
from search.params import SearchParams
from search.tree import NOTHING, Step

# where the answer begins without a marker: see the module's docstring
Implicit = Literal["last_step", "last_paragraph", "content"]
OPEN_TAGS = ("<Thought>", "<think>")
REASONING_TAGS = (*OPEN_TAGS, "</Thought>")
ANSWER_TAGS = ("</Output>",)


def _strip(text: str, tags: Sequence[str]) -> str:
    for tag in tags:
        text = text.replace(tag, "")
    return text


class IncrementalDecoder:
    """Decodes a growing token list into text deltas, never emitting half a character."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._sent = 0

    def feed(self, token_ids: Sequence[int], *, final: bool = False) -> str:
        """Add tokens; return the newly decodable text."""
        self._ids.extend(token_ids)
        text = self._tokenizer.decode(self._ids)
        end = len(text) if final else len(text.rstrip("\ufffd"))
        delta = text[self._sent : end]
        self._sent = max(self._sent, end)
        return delta


class AnswerSplitter:
    """Feeds on committed text and returns ``(reasoning_delta, answer_delta)`` pairs."""

    def __init__(
        self,
        markers: Sequence[str],
        *,
        implicit: Implicit,
        starts_in_reasoning: bool = False,
    ) -> None:
        self._markers = tuple(markers)
        self._implicit = implicit
        self._starts_in_reasoning = starts_in_reasoning
        self._tags = (*self._markers, *REASONING_TAGS, *ANSWER_TAGS)
        self._raw = ""
        self._reasoning_sent = 0
        self._reasoning_end: int | None = None
        self._content_start: int | None = None
        self._content_sent = 0
        self._reasoning_open = False
        self._content_open = False
        self._answer_step = 0  # where the last step with text began: the answer if none follows

    @property
    def reasoning_chars(self) -> int:
        """Length of the raw text that counts as reasoning (for reasoning-token usage): all of
        it before the answer begins.  An answer that also streamed as reasoning (the step before
        an empty last step, a reasoning block's last paragraph) is the answer's, never counted
        twice: OpenAI's reasoning tokens are the ones not in the visible answer."""
        if self._content_start is None:
            return len(self._raw)
        assert self._reasoning_end is not None  # both are set together
        return min(self._reasoning_end, self._content_start)

    def feed(self, text: str, *, last: bool, ended: bool = False) -> tuple[str, str]:
        """Append one committed step; ``last`` marks the end of the path, ``ended`` one that
        the model ended itself (a stop, not a token bound)."""
        step_start = len(self._raw)
        self._raw += text
        if self._content_start is None:
            self._find_marker()
        if self._content_start is None:
            self._apply_implicit_rule(step_start, last, ended)
        hold = 0 if last else self._held_back()
        reasoning_end = (
            len(self._raw) - hold if self._reasoning_end is None else self._reasoning_end
        )
        reasoning = self._emit_reasoning(max(reasoning_end, self._reasoning_sent))
        answer = ""
        if self._content_start is not None:
            answer = self._emit_answer(max(len(self._raw) - hold, self._content_start))
        return reasoning, answer

    def _find_marker(self) -> None:
        hits = [(self._raw.find(m), m) for m in self._markers if m in self._raw]
        if hits:
            index, marker = min(hits)
            self._reasoning_end = index
            self._content_start = index + len(marker)

    def _apply_implicit_rule(self, step_start: int, last: bool, ended: bool) -> None:
        if self._implicit == "last_paragraph":
            if last:  # what streamed as reasoning stays reasoning's
                self._content_start = self._last_paragraph()
                self._reasoning_end = max(self._content_start, self._reasoning_sent)
            return
        if self._implicit == "last_step":
            blank = not self._raw[step_start:].strip()
            if last and blank:
                # a last step with no text (an end-of-text token alone after a separator):
                # the step before it is the answer, though it already streamed as reasoning
                self._reasoning_end = self._reasoning_sent
                self._content_start = self._answer_step
            elif last:
                self._reasoning_end = self._content_start = step_start
            elif not blank:
                self._answer_step = step_start
            return
        head = self._raw.lstrip()
        if self._starts_in_reasoning or any(head.startswith(tag) for tag in OPEN_TAGS):
            if last and ended:  # closed without a marker: the last paragraph answers
                self._reasoning_end = len(self._raw)
                self._content_start = self._last_paragraph()
            return  # reasoning until an answer marker shows up
        if last or not any(tag.startswith(head) for tag in OPEN_TAGS):
            self._reasoning_end = self._content_start = 0

    def _last_paragraph(self) -> int:
        """Where the last paragraph with text (not tags alone) begins."""
        end = len(self._raw)
        while (start := self._raw.rfind("\n\n", 0, end)) >= 0:
            if _strip(self._raw[start:end], self._tags).strip():
                return start
            end = start
        return 0

    def _held_back(self) -> int:
        longest = max(len(tag) for tag in self._tags)
        for size in range(min(longest - 1, len(self._raw)), 0, -1):
            suffix = self._raw[-size:]
            if any(tag.startswith(suffix) for tag in self._tags):
                return size
        return 0

    def _emit_reasoning(self, end: int) -> str:
        delta = _strip(self._raw[self._reasoning_sent : end], REASONING_TAGS)
        self._reasoning_sent = end
        if not self._reasoning_open:
            delta = delta.lstrip()
            self._reasoning_open = bool(delta)
        return delta

    def _emit_answer(self, end: int) -> str:
        assert self._content_start is not None
        start = max(self._content_sent, self._content_start)
        delta = _strip(self._raw[start:end], (*REASONING_TAGS, *ANSWER_TAGS))
        self._content_sent = max(end, start)
        if not self._content_open:
            delta = delta.lstrip()
            self._content_open = bool(delta)
        return delta


def count_tokens_within(tokenizer: Tokenizer, token_ids: Sequence[int], chars: int) -> int:
    """Smallest prefix of ``token_ids`` whose text covers ``chars`` characters."""
    if chars <= 0:
        return 0
    count = bisect_left(
        range(len(token_ids) + 1), chars, key=lambda n: len(tokenizer.decode(token_ids[:n]))
    )
    return min(count, len(token_ids))


class PathWriter:
    """Turns committed token ids into reasoning/answer events and counts reasoning tokens,
    split at ``params``' answer markers.  A constrained path (``params.constraint``) is all
    answer: the grammar wrote no reasoning."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        params: SearchParams,
        *,
        implicit: Literal["last_step", "content"],
    ) -> None:
        self._tokenizer = tokenizer
        self._decoder = IncrementalDecoder(tokenizer)
        free = params.constraint is None
        mode: Implicit = implicit
        if implicit == "last_step" and params.granularity != "step":
            mode = "last_paragraph"  # a step of a few tokens is no answer
        self._splitter = AnswerSplitter(
            params.answer_markers if free else (),
            implicit=mode if free else "content",
            starts_in_reasoning=params.starts_in_reasoning and free,
        )
        self.token_ids: list[int] = []
        self.logprobs: list[TokenLogprob | None] = []  # each token's (None: forced)

    def commit(
        self, step: Step, *, last: bool, stop: str | int | None = None
    ) -> list[ReasoningDelta | AnswerDelta]:
        """Append one step of the chosen path; a matched stop string is cut from the text."""
        self.token_ids.extend(step.token_ids)
        self.logprobs.extend(step.scored())
        text = self._decoder.feed(step.token_ids, final=last)
        if last and isinstance(stop, str) and stop in text:
            text = text[: text.index(stop)]
        reasoning, answer = self._splitter.feed(text, last=last, ended=stop is not None)
        events: list[ReasoningDelta | AnswerDelta] = []
        if reasoning:
            events.append(ReasoningDelta(reasoning))
        if answer:
            events.append(AnswerDelta(answer))
        return events

    def commit_path(
        self, steps: Sequence[Step], *, stop: str | int | None = None
    ) -> list[ReasoningDelta | AnswerDelta]:
        """Append the final steps of the path; the last of them ends it (even if none)."""
        events: list[ReasoningDelta | AnswerDelta] = []
        for step in steps[:-1]:
            events += self.commit(step, last=False)
        events += self.commit(steps[-1] if steps else NOTHING, last=True, stop=stop)
        return events

    def reasoning_tokens(self) -> int:
        """Tokens of the committed path that fall in the reasoning part."""
        return count_tokens_within(self._tokenizer, self.token_ids, self._splitter.reasoning_chars)
