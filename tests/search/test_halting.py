"""DeepConf online's halting rule (:mod:`search.halting`): the bar a warm-up sets, and one rule
whether the engine asks it token by token or the search applies it to a finished sample."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search.engine import Completion, FinishReason, TokenLogprob
from search.halting import LowWindow, bar, confidences, lowest_window
from tests.scripted import CharTokenizer


def tokens(confidences: np.ndarray) -> tuple[TokenLogprob, ...]:
    """A token per value, its top 5 logprobs spread around it (DeepConf's C reads them all)."""
    return tuple(
        TokenLogprob(97, -c, tuple((97 + j, -c - j) for j in range(5))) for c in confidences
    )


def completion(logprobs: tuple[TokenLogprob, ...], finish_reason: FinishReason) -> Completion:
    ids = tuple(t.token_id for t in logprobs)
    return Completion(ids, CharTokenizer().decode(ids), logprobs, finish_reason)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 1.0])
def test_the_bar_is_the_warmups_quantile_that_keep_of_them_pass(keep: float) -> None:
    lows = np.random.default_rng(3).normal(2.0, 0.5, 7)
    level = bar(list(lows), keep)
    assert math.isclose(level, float(np.percentile(lows, 100 * (1 - keep))), rel_tol=1e-12)
    assert min(lows) <= level <= max(lows) and bar(list(lows), 1.0) == min(lows)
    assert bar(list(lows), keep / 2) >= level  # a smaller share keeps fewer: a higher bar


@pytest.mark.parametrize("finish_reason", ["stop", "length"])
@pytest.mark.parametrize("seed", range(8))
def test_a_finished_sample_is_cut_where_the_engine_would_have_stopped_it(
    finish_reason: FinishReason, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    logprobs = tokens(rng.uniform(0.05, 2.0, 40))
    halt = LowWindow(window=6, bar=float(rng.uniform(0.6, 1.1)))
    whole = completion(logprobs, finish_reason)
    last = len(logprobs) - (finish_reason == "stop")  # a stop token ends before any halt
    asked = [k for k in range(1, last + 1) if halt(logprobs[:k])]
    ended = finish_reason == "stop"
    assert halt.halted_at(confidences(logprobs), ended) == (asked[0] if asked else None)
    cut = halt.cut(whole, CharTokenizer())
    if asked:
        assert cut.token_ids == whole.token_ids[: asked[0]] and cut.logprobs == logprobs[: asked[0]]
        assert (cut.finish_reason, cut.stop_reason, cut.text) == ("length", None, "a" * asked[0])
        assert halt.cut(cut, CharTokenizer()) == cut  # what a halting engine returned stays
    else:
        assert cut == whole
    assert all(k >= 6 for k in asked)  # never judged on less than a window


def test_a_sample_shorter_than_a_window_has_its_mean_as_its_lowest_window() -> None:
    values = np.array([1.0, 2.0, 3.0])
    logprobs = tokens(values)
    assert math.isclose(lowest_window(confidences(logprobs), 8), float(np.mean(values + 2)))
    assert math.isclose(lowest_window(confidences(logprobs), 2), float(np.mean(values[:2] + 2)))
    assert LowWindow(8, 100.0).halted_at(confidences(logprobs), ended=False) is None
