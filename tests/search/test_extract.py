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
