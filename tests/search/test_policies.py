import math

import pytest

from search.policies import backpropagate, best_child, select_leaf, uct_score
from search.tree import Step, Trajectory, Tree


def step(token: int, *confidences: float) -> Step:
    return Step((token,), (), confidences)


def test_uct_matches_the_formula_by_hand() -> None:
    tree = Tree()
    child = tree.add_child(tree.root, step(1, 0.5), terminal=False)
    child.visits, child.value_sum = 2, 1.0
    # 1.0/2 + sqrt(2) * sqrt(ln 8 / 2) = 0.5 + 1.414214 * 1.019666
    assert uct_score(child, 8, math.sqrt(2)) == pytest.approx(1.942027, abs=1e-6)


def test_unvisited_children_come_first() -> None:
    tree = Tree()
    child = tree.add_child(tree.root, step(1), terminal=False)
    assert uct_score(child, 10, 1.0) == math.inf


def test_selection_applies_uct_at_every_level() -> None:
    tree = Tree()
    root = tree.root
    a = tree.add_child(root, step(1), terminal=False)
    b = tree.add_child(root, step(2), terminal=False)
    a1 = tree.add_child(a, step(3), terminal=False)
    a2 = tree.add_child(a, step(4), terminal=False)
    root.visits = 10
    a.visits, a.value_sum = 6, 5.4  # mean 0.9
    b.visits, b.value_sum = 4, 0.4  # mean 0.1
    a1.visits, a1.value_sum = 3, 0.3
    a2.visits, a2.value_sum = 3, 2.7
    assert select_leaf(root, exploration=0.5) is a2
    # with no exploration at all the higher means still win at both levels
    assert select_leaf(root, exploration=0.0) is a2


def test_commit_prefers_visits_then_mean_reward() -> None:
    tree = Tree()
    a = tree.add_child(tree.root, step(1), terminal=False)
    b = tree.add_child(tree.root, step(2), terminal=False)
    a.visits, a.value_sum = 3, 0.3
    b.visits, b.value_sum = 2, 1.8
    assert best_child(tree.root) is a
    b.visits, b.value_sum = 3, 0.6
    assert best_child(tree.root) is b


def test_backpropagation_updates_the_whole_path() -> None:
    tree = Tree()
    a = tree.add_child(tree.root, step(1, 0.5), terminal=False)
    leaf = tree.add_child(a, step(2, 0.7), terminal=False)
    backpropagate(Trajectory(leaf, (step(3, 0.9),), 0.8, "stop", 0))
    backpropagate(Trajectory(leaf, (), 0.2, "stop", 0))
    for node in (tree.root, a, leaf):
        assert node.visits == 2
        assert node.value_sum == pytest.approx(1.0)
        assert node.best is not None and node.best.reward == 0.8
    assert [s.confidences for s in leaf.path_steps()] == [(0.5,), (0.7,)]
    assert leaf.path_token_ids() == [1, 2]
