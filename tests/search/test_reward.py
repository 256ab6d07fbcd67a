import math

import pytest

from search.engine import TokenLogprob
from search.reward import (
    REWARDS,
    confidence_reward,
    mean_confidence,
    min_step_reward,
    token_confidence,
)
from search.tree import Step

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


def steps(*confidences: tuple[float, ...]) -> list[Step]:
    return [Step(tuple(range(len(c))), (), c) for c in confidences]


def test_confidence_reward_averages_every_token_of_the_path() -> None:
    path = steps((0.9, 0.9), (0.3,), (0.6, 0.6, 0.6))
    assert confidence_reward(path) == pytest.approx((1.8 + 0.3 + 1.8) / 6)


def test_min_step_reward_is_the_weakest_step() -> None:
    path = steps((0.9, 0.7), (0.3, 0.5), (0.6,))
    assert min_step_reward(path) == pytest.approx(0.4)
    # forced steps (no generated tokens) do not count
    assert min_step_reward([*path, Step((5, 6), (), ())]) == pytest.approx(0.4)
    assert min_step_reward([]) == 0.0


def test_step_of_computes_confidences_from_logprobs() -> None:
    step = Step.of(
        [1, 9], [TokenLogprob(1, math.log(0.5), TOP5), TokenLogprob(9, math.log(0.01), TOP5)]
    )
    assert step.confidences == pytest.approx((0.5 / 0.95, 0.01 / 0.96))
    assert set(REWARDS) == {"confidence", "min_step"}
