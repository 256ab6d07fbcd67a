"""Answer extraction on outputs written the way real models write them."""

import pytest

from search.extract import extract_answer, normalize

CASES = [
    # Marco-o1's format
    (
        "<Thought>17*20 = 340, 17*3 = 51, so 391.</Thought><Output>The answer is 391.</Output>",
        "391",
    ),
    ("<Thought>Let me see... 12 + 7 = 19</Thought>\n<Output>\n**19**\n</Output>", "19"),
    # R1-style thinking
    ("<think>Natalia sold 48/2 = 24 clips in May. 48+24 = 72.</think>\n\nShe sold 72 clips.", "72"),
    # LaTeX boxed, nested braces
    ("So the total is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("Thus the answer is \\boxed{1,000}.", "1000"),
    # GSM8K reference format
    ("Janet has 16 - 3 - 4 = 9 eggs.\n9 * 2 = 18\n#### 18", "18"),
    # prose
    ("First we add 5 and 10 to get 15. Then 15 * 2 = 30. The answer is: $30.", "30"),
    ("17*23 = 38,617. In the context of mathematics, multiplication...", "38617"),
    # SmolLM2-135M's actual reply to "What is the capital of France?"
    ("The capital of France is Paris.", "The capital of France is Paris."),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_numbers_vote_together_whatever_their_dress() -> None:
    assert {normalize(x) for x in ("1,000", "$1000", "1000.0", "1000.", " **1000** ")} == {"1000"}
    assert normalize("2.50") == "2.5"


def test_a_structured_answer_is_its_data_in_canonical_form() -> None:
    """Two JSON answers agree when their data do, however they are spaced or ordered; a
    number inside one is not the answer, and text around JSON is not structured."""
    assert extract_answer('{"b": [1, 2], "a": "x"}') == extract_answer('{"a":"x","b":[1,2]}')
    assert extract_answer('{"b": [1, 2], "a": "x"}') == '{"a":"x","b":[1,2]}'
    assert extract_answer('  [{"n": 3}]\n') == '[{"n":3}]'
    assert extract_answer('So {"a": 1} it is: 7') == "7"
    assert extract_answer('{"a": 1') == "1"  # cut short: not JSON


def test_answers_that_make_the_same_tool_calls_agree() -> None:
    spaced = '<tool_call>\n{"name": "f", "arguments": {"b": 2, "a": 1}}\n</tool_call>'
    tight = 'I will call it.<tool_call>{"arguments":{"a":1,"b":2},"name":"f"}</tool_call>'
    assert extract_answer(spaced) == extract_answer(tight)
    assert extract_answer(spaced) == '[{"arguments":{"a":1,"b":2},"name":"f"}]'
    other = '<tool_call>\n{"name": "f", "arguments": {"a": 1, "b": 3}}\n</tool_call>'
    assert extract_answer(other) != extract_answer(spaced)
