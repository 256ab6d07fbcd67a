"""Final-answer extraction, shared by every method that compares answers (voting, evaluation).

In order, the first rule that matches wins:

1. The answer region: inside ``<Output>…</Output>`` (Marco-o1), else after ``</think>``, else the
   whole text.
2. A region that is wholly one JSON object or array (a structured output) is that value, in
   canonical form (keys sorted, no spaces): two answers agree when their data do.  A region
   with tool calls in ``<tool_call>…</tool_call>`` blocks (the Hermes syntax Qwen2.5 writes) is
   the list of its calls, each canonical: answers that make the same calls agree.
3. Else, within it: the last ``\\boxed{…}`` (balanced braces), else ``#### N`` (GSM8K), else
   "answer is N" / "answer: N", else the last number, else the last non-empty line.

Numbers are normalised (thousands separators, a leading ``$``, a trailing ``.0`` or ``.``
dropped) so that "1,000", "$1000" and "1000.0" vote together.  :func:`final_answer` also says
which rule found the answer: a ``marked`` one (boxed, ``####``, "answer is") or a ``number`` is
a value samples can agree on; free ``text`` (the last line) is not, and self-consistency
chooses among such answers by consensus instead (:mod:`search.consensus`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_OUTPUT = re.compile(r"<Output>(.*?)(?:</Output>|$)", re.DOTALL)
_HASHES = re.compile(rf"####\s*({_NUMBER})")
_ANSWER_IS = re.compile(rf"answer(?:\s+is)?\s*[:=]?\s*\**\s*({_NUMBER})", re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


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


AnswerKind = Literal["marked", "number", "text"]


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    """A text's final answer, normalised, and the rule that found it."""

    value: str
    kind: AnswerKind


def final_answer(text: str) -> FinalAnswer | None:
    """The final answer of ``text`` and how it was found; ``None`` for an empty text."""
    region = answer_region(text)
    data = _json_data(region)
    if data is None and (calls := _TOOL_CALL.findall(region)):
        parsed = [_json_data(call) for call in calls]
        if all(parsed):
            data = f"[{','.join(p for p in parsed if p)}]"
    if data is not None:
        return FinalAnswer(data, "marked")
    boxed = _last_boxed(region)
    if boxed is not None:
        return FinalAnswer(normalize(boxed), "marked")
    for pattern in (_HASHES, _ANSWER_IS):
        matches = pattern.findall(region)
        if matches:
            return FinalAnswer(normalize(matches[-1]), "marked")
    numbers = _ANY_NUMBER.findall(region)
    if numbers:
        return FinalAnswer(normalize(numbers[-1]), "number")
    lines = [line.strip() for line in region.splitlines() if line.strip()]
    return FinalAnswer(normalize(lines[-1]), "text") if lines else None


def _json_data(region: str) -> str | None:
    """The canonical text of a region that is one JSON object or array, else ``None``."""
    stripped = region.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(value, dict | list):
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def extract_answer(text: str) -> str | None:
    """The final answer of ``text``, normalised; ``None`` for an empty text."""
    found = final_answer(text)
    return found.value if found else None
