"""Final-answer extraction, shared by every method that compares answers (voting, evaluation).

In order, the first rule that matches wins:

1. The answer region: inside ``<Output>…</Output>`` (Marco-o1), else after ``</think>``, else the
   whole text.
2. Within it: the last ``\\boxed{…}`` (balanced braces), else ``#### N`` (GSM8K), else
   "answer is N" / "answer: N", else the last number, else the last non-empty line.

Numbers are normalised (thousands separators, a leading ``$``, a trailing ``.0`` or ``.``
dropped) so that "1,000", "$1000" and "1000.0" vote together.
"""

from __future__ import annotations

import re

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_OUTPUT = re.compile(r"<Output>(.*?)(?:</Output>|$)", re.DOTALL)
_HASHES = re.compile(rf"####\s*({_NUMBER})")
_ANSWER_IS = re.compile(rf"answer(?:\s+is)?\s*[:=]?\s*\**\s*({_NUMBER})", re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)


def answer_region(text: str) -> str:
    """The part of a completion that holds the final answer."""
    output = _OUTPUT.search(text)
    if output:
        return output.group(1)
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    return text


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for i in range(begin, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            if depth == 0:
                return text[begin:i]
            depth -= 1
    return None


def normalize(answer: str) -> str:
    """Canonical form for comparing answers: numbers without separators, text trimmed."""
    answer = answer.strip().strip("*").strip()
    number = answer.replace(",", "").replace("$", "").rstrip(".")
    if re.fullmatch(r"-?\d+(?:\.\d+)?", number):
        if "." in number:
            number = number.rstrip("0").rstrip(".")
        return number
    return answer


def extract_answer(text: str) -> str | None:
    """The final answer of ``text``, normalised; ``None`` for an empty text."""
    region = answer_region(text)
    boxed = _last_boxed(region)
    if boxed is not None:
        return normalize(boxed)
    for pattern in (_HASHES, _ANSWER_IS):
        matches = pattern.findall(region)
        if matches:
            return normalize(matches[-1])
    numbers = _ANY_NUMBER.findall(region)
    if numbers:
        return normalize(numbers[-1])
    lines = [line.strip() for line in region.splitlines() if line.strip()]
    return normalize(lines[-1]) if lines else None
