"""Pure tree policies: UCT selection, the commit choice, and back-propagation."""

from __future__ import annotations

import math

from search.engine import FinishReason
from search.events import EndReason
from search.params import SearchParams
from search.tree import Node, Trajectory


def path_end(node: Node, params: SearchParams) -> tuple[FinishReason, EndReason] | None:
    """Why the path through ``node`` cannot grow, or ``None`` while it can."""
    if node.terminal:
        return "stop", "completed"
    if node.path_tokens >= params.max_tokens:
        return "length", "max_tokens"
    if node.depth >= params.max_depth:
        return "length", "max_depth"
    return None


def uct_score(child: Node, parent_visits: int, exploration: float) -> float:
    """``Q/N + c * sqrt(ln N_parent / N)``; unvisited children score +inf (tried first)."""
    if child.visits == 0:
        return math.inf
    explore = math.sqrt(math.log(max(parent_visits, 1)) / child.visits)
    return child.mean_value + exploration * explore


def select_leaf(root: Node, exploration: float) -> Node:
    """Apply UCT at every level from ``root`` down to a node without children."""
    node = root
    while node.children:
        parent_visits = node.visits
        node = max(node.children, key=lambda c: uct_score(c, parent_visits, exploration))
    return node


def best_child(node: Node) -> Node:
    """The child to commit: most visits, ties broken by the higher mean reward."""
    return max(node.children, key=lambda c: (c.visits, c.mean_value))


def leading_answer(node: Node) -> tuple[str, float] | None:
    """The final answer with the most rollout reward below ``node`` and its share of the
    vote; ``None`` before any rollout below it has ended with an answer."""
    if not node.votes:
        return None
    total = sum(node.votes.values())
    answer = max(node.votes, key=lambda a: node.votes[a])
    return answer, (node.votes[answer] / total if total > 0 else 1 / len(node.votes))


def vote_child(node: Node) -> Node:
    """The child to commit under voting: the most reward for the leading answer, then
    :func:`best_child`'s order (also the whole rule while no rollout has an answer)."""
    leader = leading_answer(node)
    if leader is None:
        return best_child(node)
    return max(node.children, key=lambda c: (c.votes.get(leader[0], 0.0), c.visits, c.mean_value))


def add_virtual_loss(leaf: Node, amount: int = 1) -> None:
    """Count ``amount`` pending visits worth nothing on the path to ``leaf``, so the next
    selection of a parallel batch prefers other paths; take it back with ``-amount``."""
    node: Node | None = leaf
    while node is not None:
        node.visits += amount
        node = node.parent


def backpropagate(trajectory: Trajectory) -> None:
    """Add the trajectory's reward to every node on its path, remember the best rollout, and
    count its final answer's vote (a rollout that ended with one)."""
    node: Node | None = trajectory.node
    answer = trajectory.answer
    while node is not None:
        node.visits += 1
        node.value_sum += trajectory.reward
        if node.best is None or trajectory.reward > node.best.reward:
            node.best = trajectory
        if answer is not None:
            node.votes[answer] = node.votes.get(answer, 0.0) + trajectory.reward
            node.voters += 1
        node = node.parent
