"""A finished search's tree as plain records, for ``return_tree`` and the trace viewer."""

from __future__ import annotations

from dataclasses import dataclass

from search.engine import Tokenizer
from search.tree import Node, Tree


@dataclass(frozen=True, slots=True)
class TraceNode:
    """One node: its action's text and size, its statistics, and whether the answer took it.

    ``value`` is the mean back-propagated reward (a beam's path score; a sample's reward);
    ``reward`` is the best rollout seen through the node (``value`` where there were none).
    """

    id: int
    parent: int | None
    depth: int
    text: str
    tokens: int
    visits: int
    value: float
    reward: float
    terminal: bool
    chosen: bool


def trace_tree(tree: Tree, chosen: Node, tokenizer: Tokenizer) -> tuple[TraceNode, ...]:
    """Every node of ``tree`` in breadth-first order; ``chosen`` ends the returned path."""
    on_path = {tree.root.id} | {node.id for node in chosen.path()}
    records: list[TraceNode] = []
    queue = [tree.root]
    while queue:
        node = queue.pop(0)
        queue.extend(node.children)
        records.append(
            TraceNode(
                id=node.id,
                parent=node.parent.id if node.parent is not None else None,
                depth=node.depth,
                text=tokenizer.decode(node.token_ids),
                tokens=len(node.token_ids),
                visits=node.visits,
                value=node.mean_value,
                reward=node.best.reward if node.best is not None else node.mean_value,
                terminal=node.terminal,
                chosen=node.id in on_path,
            )
        )
    return tuple(records)
