"""What OpenAI's ``reasoning_effort`` buys: each level names search options, chosen from the
accuracy measured on the default model (README, "Accuracy"), not guessed.

So far self-consistency has matched or beaten MCTS at fewer generated tokens on every run of
qwen2.5-coder-0.5b-instruct on GSM8K (20 problems: 45% at 1,062 tokens against 35% at 3,019;
the 30- and 35-problem calibrations: majority of 8 samples 27-29% against 15-20% for one), and
more samples keep helping up to the 8 measured.  So the levels spend more samples, the cost
doubling from one to the next; MCTS stays one ``search.method`` away until a measurement puts
it ahead.  A request's own ``search`` fields override its level's.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


def _preset(method: str, **options: object) -> Mapping[str, object]:
    return MappingProxyType({"method": method, **options})


PRESETS: Mapping[Effort, Mapping[str, object]] = MappingProxyType(
    {
        "none": _preset("none"),
        "minimal": _preset("none"),
        "low": _preset("self_consistency", samples=4),
        "medium": _preset("self_consistency", samples=8),
        "high": _preset("self_consistency", samples=16),
        "xhigh": _preset("self_consistency", samples=32),
        # 64 answers of up to 512 tokens: more than the default 16,384-token search budget
        "max": _preset("self_consistency", samples=64, max_search_tokens=64 * 512),
    }
)


def preset(effort: Effort | None) -> dict[str, object]:
    """The search options ``effort`` stands for (none without one: the server's defaults)."""
    return {} if effort is None else dict(PRESETS[effort])
