import math

import pytest

from search.engine import TokenLogprob
from search.reward import mean_confidence, token_confidence

TOP5 = (
    (1, math.log(0.5)),
    (2, math.log(0.2)),
    (3, math.log(0.1)),
    (4, math.log(0.1)),
    (5, math.log(0.05)),
)


def test_confidence_is_softmax_over_top_k() -> None:
    token = TokenLogprob(1, math.log(0.5), TOP5)
    assert token_confidence(token) == pytest.approx(0.5 / 0.95)


def test_confidence_of_a_lower_ranked_choice() -> None:
    token = TokenLogprob(3, math.log(0.1), TOP5)
    assert token_confidence(token) == pytest.approx(0.1 / 0.95)


def test_chosen_token_outside_top_k_joins_the_denominator() -> None:
    token = TokenLogprob(9, math.log(0.01), TOP5)
    assert token_confidence(token) == pytest.approx(0.01 / 0.96)


def test_confidence_is_stable_for_very_negative_logprobs() -> None:
    top = tuple((i, -1000.0 - i) for i in range(5))
    token = TokenLogprob(0, -1000.0, top)
    expected = 1 / sum(math.exp(-i) for i in range(5))
    assert token_confidence(token) == pytest.approx(expected)


def test_without_alternatives_a_token_is_fully_confident() -> None:
    assert token_confidence(TokenLogprob(7, math.log(0.3), ())) == 1.0


def test_rollout_reward_is_the_mean_confidence() -> None:
    assert mean_confidence([0.2, 0.4, 0.9]) == pytest.approx(0.5)
    assert mean_confidence([]) == 0.0
