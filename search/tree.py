"""A search tree: the steps of a path, its nodes, the tree that owns them, and finished
rollouts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from search.engine import FinishReason, TokenLogprob
from search.reward import token_confidence


@dataclass(frozen=True, slots=True)
class Step:
    """One action of a path.  ``logprobs``/``confidences`` cover its *generated* tokens only
    (forced tokens, such as the reflection prompt after an answer, are at the end of
    ``token_ids`` but are not scored)."""

    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...]
    confidences: tuple[float, ...]

    @classmethod
    def of(cls, token_ids: Sequence[int], logprobs: Sequence[TokenLogprob]) -> Step:
        """A fully generated step; confidences are computed once, here."""
        return cls(tuple(token_ids), tuple(logprobs), tuple(map(token_confidence, logprobs)))

    def scored(self) -> tuple[TokenLogprob | None, ...]:
        """Each token's logprob, ``None`` for a forced one."""
        return self.logprobs + (None,) * (len(self.token_ids) - len(self.logprobs))


NOTHING = Step((), (), ())  # an empty action: the root's, or a path ended with nothing more


@dataclass(frozen=True, slots=True)
class Trajectory:
    """A finished rollout: the tree path to ``node`` plus the ``tail`` steps sampled after it."""

    node: Node
    tail: tuple[Step, ...]
    reward: float
    finish_reason: FinishReason
    stop_reason: str | int | None
    answer: str | None = None  # a finished rollout's final answer, when the search votes

    @property
    def tail_token_ids(self) -> tuple[int, ...]:
        """Token ids sampled after ``node``."""
        return tuple(t for step in self.tail for t in step.token_ids)

    @property
    def tail_step(self) -> Step:
        """The steps sampled after ``node`` as one (committed whole: the path's answer)."""
        return Step(
            self.tail_token_ids,
            tuple(t for step in self.tail for t in step.logprobs),
            tuple(c for step in self.tail for c in step.confidences),
        )


@dataclass(eq=False, slots=True)
class Node:
    """A partial reasoning path: its parent's path plus one action, ``step``."""

    id: int
    parent: Node | None
    step: Step
    terminal: bool
    depth: int
    path_tokens: int
    reflections: int = 0
    stop_reason: str | int | None = None
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    best: Trajectory | None = None
    votes: dict[str, float] = field(default_factory=dict)  # answer -> reward of rollouts below
    voters: int = 0  # finished rollouts below with an answer

    @property
    def token_ids(self) -> tuple[int, ...]:
        """The action's token ids."""
        return self.step.token_ids

    @property
    def mean_value(self) -> float:
        """Mean back-propagated reward, 0.0 before the first visit."""
        return self.value_sum / self.visits if self.visits else 0.0

    def path(self) -> list[Node]:
        """Nodes from the tree root's first child down to this node."""
        nodes: list[Node] = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def path_steps(self) -> list[Step]:
        """The actions from the tree root to this node."""
        return [node.step for node in self.path()]

    def path_token_ids(self) -> list[int]:
        """All action tokens from the tree root to this node."""
        return [tid for node in self.path() for tid in node.token_ids]


class Tree:
    """Owns the nodes of one search and their id counter."""

    def __init__(self) -> None:
        self.root = Node(id=0, parent=None, step=NOTHING, terminal=False, depth=0, path_tokens=0)
        self.size = 1

    def add_child(
        self,
        parent: Node,
        step: Step,
        *,
        terminal: bool,
        stop_reason: str | int | None = None,
        reflections: int = 0,
    ) -> Node:
        """Attach a new node for ``parent``'s path plus ``step``."""
        child = Node(
            id=self.size,
            parent=parent,
            step=step,
            terminal=terminal,
            depth=parent.depth + 1,
            path_tokens=parent.path_tokens + len(step.token_ids),
            reflections=parent.reflections + reflections,
            stop_reason=stop_reason,
        )
        parent.children.append(child)
        self.size += 1
        return child
