from search.answer import AnswerSplitter, PathWriter
from search.events import AnswerDelta
from search.params import SearchParams
from search.tree import Step
from tests.scripted import CharTokenizer


def feed_all(splitter: AnswerSplitter, steps: list[str]) -> tuple[str, str]:
    reasoning = answer = ""
    for i, step in enumerate(steps):
        r, a = splitter.feed(step, last=i == len(steps) - 1)
        reasoning, answer = reasoning + r, answer + a
    return reasoning, answer


def test_marco_markers_split_thought_from_output() -> None:
    splitter = AnswerSplitter(("<Output>",), implicit="last_step")
    steps = ["<Thought>17*23 is 17*20 + 17*3.", " That is 391.</Thought><Out", "put>391</Output>"]
    assert feed_all(splitter, steps) == ("17*23 is 17*20 + 17*3. That is 391.", "391")


def test_think_tags_split_reasoning_from_answer() -> None:
    splitter = AnswerSplitter(("</think>",), implicit="content")
    assert feed_all(splitter, ["<think>add them", "</think>\n\n19"]) == ("add them", "19")


def test_without_markers_the_last_step_is_the_answer() -> None:
    splitter = AnswerSplitter(("<Output>",), implicit="last_step")
    assert splitter.feed("First, 17*20=340.\n\n", last=False) == ("First, 17*20=340.\n\n", "")
    assert splitter.feed("So 391.", last=True) == ("", "So 391.")
    assert splitter.reasoning_chars == len("First, 17*20=340.\n\n")


def test_plain_generation_without_markers_is_all_answer() -> None:
    splitter = AnswerSplitter(("</think>",), implicit="content")
    assert feed_all(splitter, ["Paris ", "is the capital."]) == ("", "Paris is the capital.")


def test_a_possible_tag_start_is_held_back() -> None:
    splitter = AnswerSplitter(("<Output>",), implicit="last_step")
    assert splitter.feed("so the answer <Ou", last=False) == ("so the answer ", "")
    assert splitter.feed("tput>42", last=True) == ("", "42")


def test_a_prompt_that_opened_think_makes_the_text_reasoning_until_the_marker() -> None:
    splitter = AnswerSplitter(("</think>",), implicit="content", starts_in_reasoning=True)
    steps = ["First add 2 and 2.\n\n", "That is 4.\n</th", "ink>\n\nThe answer is 4."]
    assert feed_all(splitter, steps) == ("First add 2 and 2.\n\nThat is 4.\n", "The answer is 4.")


def test_an_unclosed_think_block_from_the_prompt_is_all_reasoning() -> None:
    splitter = AnswerSplitter(("</think>",), implicit="content", starts_in_reasoning=True)
    assert feed_all(splitter, ["Let me see", " how far this goes"]) == (
        "Let me see how far this goes",
        "",
    )


def test_a_reasoning_block_the_model_closes_without_a_marker_answers_with_its_last_paragraph() -> (
    None
):
    """Qwen2.5-Coder-1.5B under Marco-o1's prompt: ``<Thought>`` and no ``<Output>``.  Its last
    paragraph (tags alone do not count) is the answer, and stays in the reasoning too."""
    steps = ["<Thought>4 + 6 + 12 = 22.\n\n", "So John has \\boxed{22}.</Thought>\n\n"]
    splitter = AnswerSplitter(("<Output>",), implicit="content")
    assert splitter.feed(steps[0], last=False) == ("4 + 6 + 12 = 22.\n\n", "")
    reasoning, answer = splitter.feed(steps[1], last=True, ended=True)
    assert reasoning == "So John has \\boxed{22}.\n\n"
    assert answer == "So John has \\boxed{22}.\n\n"
    # cut by a token bound, the block is unfinished thought: no answer is made up
    cut = AnswerSplitter(("<Output>",), implicit="content")
    assert feed_all(cut, steps) == ("4 + 6 + 12 = 22.\n\nSo John has \\boxed{22}.\n\n", "")


def test_mini_steps_without_markers_answer_with_the_last_paragraph() -> None:
    # steps cut by size: the last one is a few tokens of a sentence, not the answer
    splitter = AnswerSplitter(("<Output>",), implicit="last_paragraph")
    steps = ["First, 17*", "20=340.\n", "\nSo the a", "nswer is 391."]
    reasoning, answer = feed_all(splitter, steps)
    assert answer == "So the answer is 391."
    assert reasoning.startswith("First, 17*20=340.")  # as it streamed, step by step
    assert splitter.reasoning_chars == len("First, 17*20=340.")
    one_line = AnswerSplitter(("<Output>",), implicit="last_paragraph")
    assert feed_all(one_line, ["He is ", "just a ", "softie."])[1] == "He is just a softie."
    assert one_line.reasoning_chars == 0  # all of it is the answer, counted once


def test_a_mini_step_search_writes_its_last_paragraph_as_the_answer() -> None:
    tokenizer = CharTokenizer()
    params = SearchParams(prompt_token_ids=(1,), granularity="mini_step", step_tokens=3)
    writer = PathWriter(tokenizer, params, implicit="last_step")
    text = "He is just a softie."
    steps = [Step(tuple(tokenizer.encode(text[i : i + 3])), (), ()) for i in range(0, len(text), 3)]
    events = writer.commit_path(steps, stop=0)
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == text
    assert writer.reasoning_tokens() == 0
