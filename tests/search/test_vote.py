"""The votes of self-consistency (``voting``), on answers and rewards given directly."""

import pytest

from search.vote import elected

ANSWERS = ["7", "7", "7", "12", "12", None]
REWARDS = [0.3, 0.3, 0.3, 0.9, 0.8, 1.0]


def test_majority_counts_heads() -> None:
    assert elected(ANSWERS, REWARDS, "majority", 1.0) == "7"


def test_weighted_lets_a_confident_minority_win() -> None:
    assert elected(ANSWERS, REWARDS, "weighted", 1.0) == "12"  # 1.7 against 0.9


def test_filtered_keeps_the_most_rewarded_share_of_the_answers_stated() -> None:
    answers = ["7", "7", "7", "7", "12", None]
    rewards = [0.2, 0.2, 0.5, 0.45, 0.9, 1.0]
    assert elected(answers, rewards, "weighted", 1.0) == "7"  # 1.35 against 0.9
    # five answers stated: half keeps three (12 at 0.9, 7 at 0.5 and 0.45), the unanswered
    # sample never votes however confident
    assert elected(answers, rewards, "filtered", 0.5) == "7"
    assert elected(answers, rewards, "filtered", 0.4) == "12"  # two kept: 0.9 against 0.5
    assert elected(answers, rewards, "filtered", 1e-9) == "12"  # at least one is kept


def test_a_filtered_vote_keeping_everything_is_the_weighted_one() -> None:
    assert elected(ANSWERS, REWARDS, "filtered", 1.0) == elected(ANSWERS, REWARDS, "weighted", 1.0)


@pytest.mark.parametrize("voting", ["majority", "weighted", "filtered"])
def test_a_tie_goes_to_the_answer_with_the_best_sample(voting: str) -> None:
    assert elected(["7", "12"], [0.5, 0.5000001], voting, 1.0) == "12"  # type: ignore[arg-type]
    assert elected(["7", "7", "12", "12"], [0.4, 0.6, 0.5, 0.5], "majority", 1.0) == "7"


@pytest.mark.parametrize("voting", ["majority", "weighted", "filtered"])
def test_nothing_is_elected_when_no_sample_states_an_answer(voting: str) -> None:
    assert elected([None, None], [0.9, 0.1], voting, 0.5) is None  # type: ignore[arg-type]
    assert elected([], [], voting, 0.5) is None  # type: ignore[arg-type]
