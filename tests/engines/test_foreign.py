"""Mapping a continuation generated elsewhere (vLLM, an upstream) into a ``Completion``."""

from __future__ import annotations

import pytest

from search.engine import EngineFault
from server.engines.foreign import foreign_completion
from tests.scripted import EOS, CharTokenizer


def test_alternatives_are_ranked_and_cut_to_k_and_the_text_covers_every_token() -> None:
    a, b = ord("a"), ord("b")
    positions = [
        (a, -0.1, [(b, -2.5), (a, -0.1), (7, -3.0)]),
        (b, -3.0, [(b, -3.0), (a, -0.2), (7, -1.0)]),  # the chosen token is outside the top 2
    ]
    completion = foreign_completion(positions, "stop", "b", 2, CharTokenizer())
    assert completion.token_ids == (a, b) and completion.text == "ab"
    assert [p.top for p in completion.logprobs] == [
        ((a, -0.1), (b, -2.5)),
        ((a, -0.2), (7, -1.0)),
    ]
    assert (completion.finish_reason, completion.stop_reason) == ("stop", "b")


def test_a_stop_with_no_reason_ended_on_its_last_token() -> None:
    completion = foreign_completion([(EOS, -0.5, [])], "stop", None, 0, CharTokenizer())
    assert completion.stop_reason == EOS and completion.logprobs[0].top == ()
    cut = foreign_completion([(ord("a"), -0.5, [])], "length", None, 0, CharTokenizer())
    assert (cut.finish_reason, cut.stop_reason) == ("length", None)


@pytest.mark.parametrize("reason", ["abort", "error", "repetition"])
def test_a_sample_that_did_not_finish_is_a_fault(reason: str) -> None:
    with pytest.raises(EngineFault, match=reason):
        foreign_completion([(1, -0.5, [])], reason, None, 1, CharTokenizer())
