"""PathWriter: committed token ids in, reasoning and answer deltas out, with the token counts
a search's usage reports."""

from __future__ import annotations

from collections.abc import Sequence

from search import AnswerDelta, ReasoningDelta, SearchParams
from search.answer import PathWriter
from tests.scripted import CharTokenizer

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


def ids(text: str) -> list[int]:
    return CharTokenizer().encode(text)


def test_the_last_step_is_the_answer_and_the_steps_before_it_the_reasoning() -> None:
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    assert writer.commit(ids("First, 340. "), last=False) == [ReasoningDelta("First, 340. ")]
    assert writer.commit_path([ids("Then "), ids("391.")]) == [
        ReasoningDelta("Then "),
        AnswerDelta("391."),
    ]
    assert writer.reasoning_tokens() == len("First, 340. Then ")
    assert writer.token_ids == ids("First, 340. Then 391.")


def test_a_marker_split_between_steps_is_held_back_until_it_is_whole() -> None:
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    assert writer.commit(ids("<Thought>add<Out"), last=False) == [ReasoningDelta("add")]
    assert writer.commit(ids("put>7</Output>"), last=True) == [AnswerDelta("7")]
    assert writer.reasoning_tokens() == len("<Thought>add")


def test_half_a_character_waits_for_the_step_that_finishes_it() -> None:
    writer = PathWriter(ByteTokenizer(), MARCO, implicit="content")
    e_acute = "é".encode()
    assert writer.commit([*b"caf", e_acute[0]], last=False) == [AnswerDelta("caf")]
    assert writer.commit([e_acute[1], *b"!"], last=True) == [AnswerDelta("é!")]
    assert writer.reasoning_tokens() == 0


def test_a_matched_stop_string_is_cut_from_the_text_but_its_tokens_are_kept() -> None:
    writer = PathWriter(CharTokenizer(), MARCO, implicit="content")
    assert writer.commit(ids("42 STOP"), last=True, stop="STOP") == [AnswerDelta("42 ")]
    assert writer.token_ids == ids("42 STOP")


def test_an_empty_last_step_leaves_the_answer_to_the_step_before_it() -> None:
    """The path ends with no text (an end-of-text token alone after a separator): the step
    before it, already streamed as reasoning, is the answer too, so content is never empty."""
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    assert writer.commit(ids("17*23 is "), last=False) == [ReasoningDelta("17*23 is ")]
    assert writer.commit(ids("391. <"), last=False) == [ReasoningDelta("391. ")]
    assert writer.commit_path([]) == [AnswerDelta("391. <")]
    assert writer.reasoning_tokens() == len("17*23 is 391. ")


def test_a_path_with_no_text_at_all_has_an_empty_answer() -> None:
    writer = PathWriter(CharTokenizer(), MARCO, implicit="last_step")
    assert writer.commit(ids(" \n"), last=False) == []
    assert writer.commit_path([]) == []
