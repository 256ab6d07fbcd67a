"""DeepConf online (Fu et al. 2025): stop a sample once it loses confidence, rather than finish it.

A sample's confidence over a window is the mean DeepConf token confidence ``C``
(:func:`search.reward.deepconf_confidence`) of its last ``window`` tokens.  A warm-up of whole
samples sets a bar (:func:`bar`): the lowest window of the warm-up's ``keep`` most confident
samples.  Each later sample stops at the first token whose window falls below it
(:class:`LowWindow`, the engine's ``GenerationRequest.halt``): a sample that loses its way
mid-answer costs the tokens to that point, not the whole answer, and states no final answer.

An engine that cannot stop one sample of a running call finishes it (``halt`` saves tokens;
it means nothing else); :meth:`LowWindow.cut` applies the same rule to what comes back, so
every engine gives the same samples and only the tokens spent differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from search.engine import Completion, Tokenizer, TokenLogprob
from search.reward import deepconf_confidence, group_confidences


def confidences(logprobs: Sequence[TokenLogprob]) -> list[float]:
    """Every token's DeepConf confidence ``C``."""
    return [deepconf_confidence(token) for token in logprobs]


def lowest_window(values: Sequence[float], window: int) -> float:
    """A whole sample's least confident window of its tokens' ``values`` (all of them, when
    it is shorter)."""
    return min(group_confidences(values, window), default=0.0)


def bar(lows: Sequence[float], keep: float) -> float:
    """The bar the warm-up's lowest windows ``lows`` set: their ``1 - keep`` quantile (linear,
    as numpy's percentile and DeepConf's), which about ``keep`` of the warm-up would pass."""
    ranked = sorted(lows)
    at = (1.0 - keep) * (len(ranked) - 1)
    below, above = math.floor(at), math.ceil(at)
    return ranked[below] + (ranked[above] - ranked[below]) * (at - below)


@dataclass(frozen=True, slots=True)
class LowWindow:
    """The halt of a sample whose last ``window`` tokens' mean confidence is below ``bar``."""

    window: int
    bar: float

    def __call__(self, logprobs: Sequence[TokenLogprob]) -> bool:
        """Whether the sample whose tokens so far have ``logprobs`` stops here (the engine asks
        after every token)."""
        if len(logprobs) < self.window:
            return False
        return self._below(confidences(logprobs[-self.window :]))

    def _below(self, last: Sequence[float]) -> bool:
        # one sum in one order, whether asked token by token or of a finished sample
        return sum(last) / self.window < self.bar

    def halted_at(self, values: Sequence[float], ended: bool) -> int | None:
        """The tokens after which a sample whose tokens' confidences are ``values`` stopped, or
        would have where its engine did not stop it; ``None`` if it finished first (a sample
        that ``ended`` by a stop token ended before its last token was judged)."""
        for end in range(self.window, len(values) + (not ended)):
            if self._below(values[end - self.window : end]):
                return end
        return None

    def cut(self, completion: Completion, tokenizer: Tokenizer) -> Completion:
        """``completion`` as a halting engine returns it: up to the token that halted it (then
        finished by ``length``), or whole."""
        ended = completion.finish_reason == "stop"
        end = self.halted_at(confidences(completion.logprobs), ended)
        if end is None or (end == len(completion.token_ids) and not ended):
            return completion
        return replace(
            completion,
            token_ids=completion.token_ids[:end],
            text=tokenizer.decode(completion.token_ids[:end]),
            logprobs=completion.logprobs[:end],
            finish_reason="length",
            stop_reason=None,
        )
