"""PathWriter: committed token ids in, reasoning and answer deltas out, with the token counts
a search's usage reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from search import AnswerDelta, ReasoningDelta, SearchParams, SearchResult
from search.answer import PathWriter
from search.engine import Constraint
from search.tree import Step
from tests.scripted import EOS, CharTokenizer

PROMPT = (1, 2, 3)
MARCO = SearchParams(prompt_token_ids=PROMPT, answer_markers=("<Output>",))


class ByteTokenizer:
    """One token per UTF-8 byte, so a character can be split between two steps."""

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset()

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, token_ids: Sequence[int]) -> str:
        return bytes(token_ids).decode(errors="replace")


def step(token_ids: Sequence[int]) -> Step:
    return Step(tuple(token_ids), (), ())


def ids(text: str) -> Step:
    return step(CharTokenizer().encode(text))


def test_the_last_step_is_the_answer_and_the_steps_before_it_the_reasoning() -> None:
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    assert writer.commit(ids("First, 340. "), last=False) == [ReasoningDelta("First, 340. ")]
    assert writer.commit_path([ids("Then "), ids("391.")]) == [
        ReasoningDelta("Then "),
        AnswerDelta("391."),
    ]
    assert writer.reasoning_tokens() == len("First, 340. Then ")
    assert tuple(writer.token_ids) == ids("First, 340. Then 391.").token_ids


def test_a_marker_split_between_steps_is_held_back_until_it_is_whole() -> None:
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    assert writer.commit(ids("<Thought>add<Out"), last=False) == [ReasoningDelta("add")]
    assert writer.commit(ids("put>7</Output>"), last=True) == [AnswerDelta("7")]
    assert writer.reasoning_tokens() == len("<Thought>add")


def test_half_a_character_waits_for_the_step_that_finishes_it() -> None:
    writer = PathWriter(ByteTokenizer(), MARCO, implicit="content")
    e_acute = "é".encode()
    assert writer.commit(step([*b"caf", e_acute[0]]), last=False) == [AnswerDelta("caf")]
    assert writer.commit(step([e_acute[1], *b"!"]), last=True) == [AnswerDelta("é!")]
    assert writer.reasoning_tokens() == 0


def test_a_matched_stop_string_is_cut_from_the_text_but_its_tokens_are_kept() -> None:
    writer = PathWriter(CharTokenizer(), MARCO, implicit="content")
    assert writer.commit(ids("42 STOP"), last=True, stop="STOP") == [AnswerDelta("42 ")]
    assert tuple(writer.token_ids) == ids("42 STOP").token_ids


def test_an_empty_last_step_leaves_the_answer_to_the_step_before_it() -> None:
    """The path ends with no text (an end-of-text token alone after a separator): the step
    before it, already streamed as reasoning, is the answer too, so content is never empty."""
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    assert writer.commit(ids("17*23 is "), last=False) == [ReasoningDelta("17*23 is ")]
    assert writer.commit(ids("391. <"), last=False) == [ReasoningDelta("391. ")]
    assert writer.commit_path([]) == [AnswerDelta("391. <")]
    # the answer's tokens are the answer's, although its text streamed as reasoning first
    assert writer.reasoning_tokens() == len("17*23 is ")


def test_a_path_with_no_text_at_all_has_an_empty_answer() -> None:
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    assert writer.commit(ids(" \n"), last=False) == []
    assert writer.commit_path([]) == []


def test_a_reasoning_block_closed_without_a_marker_counts_its_last_paragraph_as_answer() -> None:
    """A ``<think>`` block the model ends without a marker answers with its last paragraph,
    which streamed as reasoning too: usage counts those tokens as the answer's, so a
    non-empty answer never leaves reasoning tokens equal to all the path's tokens."""
    writer = PathWriter(CharTokenizer(), MARCO, implicit="content")
    head, last = "<think>17*23 is 17*20 + 17*3.", "\n\nSo 391."
    assert writer.commit(ids(head), last=False) == [ReasoningDelta("17*23 is 17*20 + 17*3.")]
    assert writer.commit(ids(last), last=True, stop=0) == [
        ReasoningDelta(last),
        AnswerDelta("So 391."),
    ]
    assert writer.reasoning_tokens() == len(head)
    assert len(writer.token_ids) - writer.reasoning_tokens() == len(last)


def test_usage_never_counts_a_non_empty_answer_as_reasoning() -> None:
    """The accounting behind ``completion_tokens_details.reasoning_tokens``: a search whose
    answer is the step before an empty last step (MCTS's path that ends on an end-of-text
    token) reports the answer's tokens as content, not as reasoning."""
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    writer.commit(ids("Step one. "), last=False)
    writer.commit(ids("The answer is 391."), last=False)
    assert writer.commit_path([step([EOS])]) == [AnswerDelta("The answer is 391.")]
    result = SearchResult(
        method="mcts",
        token_ids=tuple(writer.token_ids),
        finish_reason="stop",
        ended_by="max_search_tokens",
        prompt_tokens=len(PROMPT),
        path_reasoning_tokens=writer.reasoning_tokens(),
        iterations=2,
        nodes=5,
        generated_tokens=199,
        reward=0.5,
    )
    assert result.content_tokens == len("The answer is 391.") + 1  # and the end-of-text token
    assert result.hidden_reasoning_tokens == 199 - result.content_tokens
    assert 0 < result.hidden_reasoning_tokens < result.completion_tokens


def test_a_constrained_path_is_all_answer_whatever_its_markers_and_steps() -> None:
    """A grammar wrote it: no marker inside a JSON string splits it, no step is reasoning."""
    params = replace(MARCO, constraint=Constraint("start: %json {}"))
    writer = PathWriter(CharTokenizer(), params, implicit="last_step")
    events = writer.commit(ids('{"note": "<Output>'), last=False)
    events += writer.commit(ids('"}'), last=True, stop=EOS)
    assert all(isinstance(e, AnswerDelta) for e in events)
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == '{"note": "<Output>"}'
    assert writer.reasoning_tokens() == 0
