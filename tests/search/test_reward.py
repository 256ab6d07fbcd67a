import math

import pytest

from search.engine import TokenLogprob
from search.reward import (
    REWARDS,
    bottom_groups_reward,
    bounded,
    confidence_reward,
    deepconf_confidence,
    deepconf_reward,
    group_confidences,
    lowest_group_reward,
    mean_confidence,
    min_step_reward,
    tail_reward,
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
    assert set(REWARDS) == {
        "confidence",
        "min_step",
        "deepconf",
        "lowest_group",
        "bottom_groups",
        "tail",
    }


def test_deepconf_confidence_is_minus_the_mean_top_k_logprob() -> None:
    token = TokenLogprob(1, math.log(0.5), TOP5)
    expected = -sum(math.log(p) for p in (0.5, 0.2, 0.1, 0.1, 0.05)) / 5
    assert deepconf_confidence(token) == pytest.approx(expected)
    # no alternatives returned: the chosen token's own logprob
    assert deepconf_confidence(TokenLogprob(7, math.log(0.3), ())) == pytest.approx(-math.log(0.3))


def test_groups_are_sliding_window_means() -> None:
    assert group_confidences([1, 2, 3, 4, 5], 2) == pytest.approx([1.5, 2.5, 3.5, 4.5])
    assert group_confidences([1, 2, 3], 3) == pytest.approx([2.0])
    assert group_confidences([1, 2, 3], 10) == pytest.approx([2.0])  # shorter: one group
    assert group_confidences([], 4) == []


def test_bounded_keeps_order_within_the_unit_interval() -> None:
    values = [0.0, 0.5, 1.0, 7.0, 1e6]
    mapped = [bounded(v) for v in values]
    assert mapped == sorted(mapped) and len(set(mapped)) == len(mapped)
    assert mapped[0] == 0.0 and all(0 <= m < 1 for m in mapped)
    assert bounded(1.0) == pytest.approx(0.5)


def lone(logprob: float) -> TokenLogprob:
    """A token whose DeepConf confidence is ``-logprob`` (no alternatives returned)."""
    return TokenLogprob(0, logprob, ())


def deepconf_steps(*values: tuple[float, ...]) -> list[Step]:
    """Steps whose tokens have the given DeepConf confidences."""
    return [Step(tuple(range(len(v))), tuple(lone(-c) for c in v), ()) for v in values]


def test_window_rewards_see_the_weak_stretch_a_mean_hides() -> None:
    path = deepconf_steps((4.0, 4.0, 4.0), (1.0, 1.0), (4.0, 4.0, 4.0, 4.0, 4.0))
    values = [4.0] * 3 + [1.0] * 2 + [4.0] * 5
    assert deepconf_reward(path) == pytest.approx(bounded(sum(values) / 10))
    assert lowest_group_reward(path, 2) == pytest.approx(bounded(1.0))
    assert lowest_group_reward(path, 4) == pytest.approx(bounded((4 + 1 + 1 + 4) / 4))
    # nine windows of 2: the lowest tenth is the single lowest
    assert bottom_groups_reward(path, 2) == pytest.approx(bounded(1.0))
    assert tail_reward(path, 3) == pytest.approx(bounded(4.0))
    assert tail_reward(path, 6) == pytest.approx(bounded((1 + 20) / 6))
    assert lowest_group_reward(path, 2) < deepconf_reward(path) < tail_reward(path, 3)


def test_bottom_groups_average_the_lowest_tenth() -> None:
    values = tuple(float(v) for v in range(1, 22))  # 21 tokens, windows of 1: 21 groups
    path = deepconf_steps(values)
    assert bottom_groups_reward(path, 1) == pytest.approx(bounded(1.5))  # 21 // 10 = 2 lowest


def test_every_reward_scores_an_empty_path_zero() -> None:
    for make in REWARDS.values():
        assert make(8)([]) == 0.0
        assert make(8)([Step((5,), (), ())]) == 0.0  # forced tokens only
