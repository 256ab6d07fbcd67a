"""Marco-o1 Monte Carlo Tree Search over reasoning steps, as an async stream of events.

Each round runs ``iterations`` simulations from the current root: UCT selection down to a
leaf, expansion of the leaf into ``branching`` children, a simulation from every new child to
the end of the answer, and back-propagation of the rollout's mean token confidence.  Then the
most visited child is committed: its text is streamed and it becomes the new root (its subtree
is kept).  Rounds repeat until the committed path ends.

Expansion and simulation share one engine call: each of the ``n = branching`` samples runs
from the leaf to the end of the answer (or ``rollout_tokens``); its first action becomes the
child and the rest is that child's rollout.  Sampling the action and then continuing it is the
same distribution as sampling the whole continuation at once, and it halves the engine calls.

With ``vote`` or ``consensus``, every rollout that ends casts a vote for its final answer
(:func:`search.extract.extract_answer`), weighted by its reward.  With ``vote`` the commit
follows the leading answer rather than the visit count, and with ``consensus`` the search stops
as soon as one answer clearly leads: the tree holds many finished answers, and Marco-o1's rule
used only the committed one.

A node whose children all end (whole answers: a one-line answer is one step) is widened when
selection reaches one of them: sampled again for new siblings instead of rescoring a finished
leaf, and a round whose children are all whole answers commits the one self-consistency would
choose (:meth:`MctsRun._commit_rule`).
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass

from search.budget import Budget
from search.engine import Completion, Engine
from search.events import EndReason, Expanded, SearchEvent
from search.extract import extract_answer
from search.params import SearchParams
from search.policies import (
    add_virtual_loss,
    backpropagate,
    best_child,
    leading_answer,
    path_end,
    select_leaf,
    vote_child,
)
from search.run import SearchRun
from search.selection import vote
from search.tree import NOTHING, Node, Step, Trajectory


@dataclass(frozen=True, slots=True)
class _Answer:
    """A child of the root that ends its path, as the whole-answer rules read it."""

    node: Node
    text: str
    ended: bool
    reward: float


class MctsRun(SearchRun):
    """Marco-o1's MCTS; its own state is the rollouts that ended with an answer."""

    def __init__(
        self, params: SearchParams, engine: Engine, rng: random.Random, budget: Budget
    ) -> None:
        super().__init__(params, engine, rng, budget)
        self.reflection_ids = tuple(engine.tokenizer.encode(f"\n\n{params.reflection_text}\n\n"))
        # answers are read from rollouts only when something uses their vote
        self.voting = params.vote or params.consensus is not None
        self.finished_rollouts: list[Trajectory] = []  # rollouts that ended (at a stop)

    async def search(self) -> AsyncGenerator[SearchEvent, None]:
        """The search loop: rounds of simulations, each ending in one committed step."""
        params = self.params
        root = self.tree.root
        budget_out: EndReason | None = None
        while path_end(root, self.params) is None:
            done = 0
            decided: Node | None = None  # this round's commit, streamed before the round ends
            while done < params.iterations:
                budget_out = self.budget.exhausted()
                if budget_out is not None:
                    break
                leaves, scored = self._select(root, min(params.parallel, params.iterations - done))
                done += scored
                if leaves:
                    expanded = await self._expand(leaves, root.depth + 1)
                    if expanded is None:
                        budget_out = self.budget.exhausted() or "max_search_tokens"
                        break
                    done += len(leaves)
                    for expansion in expanded:
                        yield expansion
                if decided is None and done < params.iterations:
                    decided = self._decided(root, params.iterations - done)
                    for delta in self._commit(decided):
                        yield delta
                    if decided is not None and path_end(decided, params) is not None:
                        break  # the answer is whole: no later round needs this one's visits
            if decided is not None:  # committed already; a budget that ran out answers below it
                root = decided
                if budget_out is not None:
                    break
                continue
            if budget_out is not None or not root.children:
                break
            if self._agreed(root):
                budget_out = "consensus"
                break
            root = self._commit_rule(root)
            for delta in self._commit(root):
                yield delta
        for event in self._finish(root, budget_out):
            yield event

    def _commit(self, node: Node | None) -> Iterator[SearchEvent]:
        """Stream ``node``'s step as the path's next (nothing for ``None``)."""
        if node is not None:
            last = path_end(node, self.params) is not None
            yield from self.writer.commit(node.step, last=last, stop=node.stop_reason)

    def _decided(self, root: Node, remaining: int) -> Node | None:
        """The child this round will commit, once the ``remaining`` iterations cannot change
        it: each adds at most ``branching`` visits to one child, so a lead larger than that
        is final, and an only child is final at once (a node is widened only when all its
        children end, and whole answers are chosen at the round's end).
        Its step can then stream while the round runs on, exactly as it would at the round's
        end.  Only the visit count is decided early: a vote can turn on any rollout, and
        consensus may end the search instead."""
        params = self.params
        if params.vote or params.consensus is not None or self._whole(root):
            return None
        if len(root.children) == 1:  # not a finished answer: no sibling can come
            return root.children[0]
        leader = best_child(root)
        rival = max((c.visits for c in root.children if c is not leader), default=0)
        return leader if leader.visits > rival + remaining * params.branching else None

    def _widened(self, leaf: Node) -> Node | None:
        """The node to give new children when selection reaches ``leaf``, a finished path:
        its parent, while every child of it is a finished path and it has fewer than one round
        can sample (``iterations`` x ``branching``).  Rescoring a finished leaf learns nothing,
        so a short answer (one step: the root's children all end) gets as many siblings as the
        iterations allow, and a round that reaches only whole answers chooses among them as
        self-consistency does (:meth:`_commit_rule`), not by visits: a widened node's visits
        count how often an answer was sampled, not how well it scored."""
        parent, params = leaf.parent, self.params
        if parent is None or len(parent.children) >= params.iterations * params.branching:
            return None
        return parent if self._whole(parent) else None

    def _whole(self, root: Node) -> bool:
        """Whether every child of ``root`` ends its path: whole answers, not steps."""
        return bool(root.children) and all(
            path_end(child, self.params) is not None for child in root.children
        )

    def _commit_rule(self, root: Node) -> Node:
        """The child to commit at a round's end: when the children are whole answers, the one
        self-consistency would choose of them (a vote over their final answers, consensus
        over free text: :func:`search.selection.vote`); else the most visited (the leading
        answer's, under ``vote``)."""
        params = self.params
        if not self._whole(root):
            return vote_child(root) if params.vote else best_child(root)
        tokenizer = self.engine.tokenizer
        wholes = [
            _Answer(c, tokenizer.decode(c.path_token_ids()), c.terminal, c.mean_value)
            for c in root.children
        ]
        # a child sampled twice was merged: it votes once per visit
        answers = [a for a in wholes for _ in range(max(a.node.visits, 1))]
        chosen, self.chosen_by = vote(answers, params.voting, params.keep)
        return chosen.node

    def _agreed(self, root: Node) -> bool:
        """Whether the rollouts below ``root`` agree enough to stop (``consensus``): one
        answer holds that share of the vote among at least one round's worth of them."""
        consensus = self.params.consensus
        leader = leading_answer(root)
        if consensus is None or leader is None:
            return False
        return root.voters >= self.params.iterations * self.params.branching and (
            leader[1] >= consensus
        )

    def _select(self, root: Node, want: int) -> tuple[list[Node], int]:
        """Up to ``want`` distinct leaves to expand together, each chosen by UCT with virtual
        loss on the paths already chosen.  A leaf whose path has ended is scored on the spot
        (it counts as an iteration: the second number returned)."""
        leaves: list[Node] = []
        scored = 0
        while len(leaves) + scored < want:
            leaf = select_leaf(root, self.params.exploration)
            leaf_end = path_end(leaf, self.params)
            wider = None if leaf_end is None else self._widened(leaf)
            if wider is not None:  # a finished answer: sample new siblings of it instead
                if wider in leaves:
                    break
                leaves.append(wider)
                add_virtual_loss(wider)
                continue
            if leaf_end is not None:  # nothing to expand: score the path directly
                reward = self.reward(leaf.path_steps())
                backpropagate(Trajectory(leaf, (), reward, leaf_end[0], leaf.stop_reason))
                self.iterations += 1
                scored += 1
                continue
            if leaf in leaves:  # the tree offers no other leaf until this one is expanded
                break
            leaves.append(leaf)
            add_virtual_loss(leaf)
        for leaf in leaves:
            add_virtual_loss(leaf, -1)
        return leaves, scored

    async def _expand(self, leaves: list[Node], round_: int) -> list[Expanded] | None:
        """Sample ``branching`` continuations of every leaf in one engine call; add children,
        score, back-propagate.  Returns ``None`` when a budget stopped the engine call."""
        params = self.params
        share = self.budget.remaining_tokens() // (params.branching * len(leaves))
        requests = []
        for leaf in leaves:
            room = min(params.rollout_tokens, params.max_tokens - leaf.path_tokens)
            if min(room, share) < 1:
                return None
            requests.append(
                params.generation(
                    leaf.path_token_ids(),
                    min(room, share),
                    self.rng.getrandbits(31),
                    n=params.branching,
                )
            )
        outputs = await self.budget.generate(self.engine, requests)
        if outputs is None:
            return None
        return [
            self._grow(leaf, completions, round_)
            for leaf, completions in zip(leaves, outputs, strict=True)
        ]

    def _grow(self, leaf: Node, completions: list[Completion], round_: int) -> Expanded:
        """Add one expansion's children under ``leaf`` and back-propagate their rollouts."""
        action_tokens = rollout_tokens = 0
        for completion in completions:
            trajectory = self._add_child(leaf, completion)
            backpropagate(trajectory)
            rollout = len(trajectory.tail_token_ids)
            action_tokens += len(completion.token_ids) - rollout
            rollout_tokens += rollout
        self.iterations += 1
        best = self.tree.root.best
        return self.expanded(
            leaf,
            action_tokens=action_tokens,
            rollout_tokens=rollout_tokens,
            best_reward=best.reward if best is not None else 0.0,
            round_=round_,
        )

    def _add_child(self, leaf: Node, completion: Completion) -> Trajectory:
        """Make (or reuse) the child for the first action and return its scored rollout."""
        action, *tail = self.cutter.split(completion.token_ids, completion.logprobs)
        terminal = not tail and completion.finish_reason == "stop"
        child = next((c for c in leaf.children if c.token_ids == action.token_ids), None)
        if child is None:
            stop_reason = completion.stop_reason if terminal else None
            child = self.tree.add_child(leaf, action, terminal=terminal, stop_reason=stop_reason)
        reward = self.reward([*child.path_steps(), *tail])
        self._maybe_reflect(leaf, completion, reward)
        answer = None
        if self.voting and completion.finish_reason == "stop":
            ids = [*child.path_token_ids(), *(t for step in tail for t in step.token_ids)]
            answer = extract_answer(self.engine.tokenizer.decode(ids))
        trajectory = Trajectory(
            child, tuple(tail), reward, completion.finish_reason, completion.stop_reason, answer
        )
        if completion.finish_reason == "stop":
            self.finished_rollouts.append(trajectory)
        return trajectory

    def _maybe_reflect(self, leaf: Node, completion: Completion, reward: float) -> None:
        """Give a weak finished answer a sibling that asks the model to rethink it: the whole
        answer sampled from ``leaf`` (``completion``: its child's step and the rollout after
        it), then the reflection prompt, as one step that a later iteration expands.
        Marco-o1 reflects at the end of a thought; reflecting only on an expanded step that
        itself ends the answer almost never happened, since a rollout, not a node, is what
        usually ends it."""
        params = self.params
        ended_on_eos = isinstance(completion.stop_reason, int)
        if not (params.reflection and ended_on_eos and reward < params.reflection_threshold):
            return
        if leaf.reflections >= params.max_reflections:
            return
        eos = self.engine.tokenizer.eos_token_ids
        token_ids = completion.token_ids
        keep = len(token_ids)
        while keep and token_ids[keep - 1] in eos:
            keep -= 1
        answer = Step.of(token_ids[:keep], completion.logprobs[:keep])
        prompt = answer.token_ids + self.reflection_ids
        reflected = Step(prompt, answer.logprobs, answer.confidences)
        if any(c.token_ids == reflected.token_ids for c in leaf.children):
            return  # the same answer was sampled twice: one rethinking of it is enough
        self.tree.add_child(leaf, reflected, terminal=False, reflections=1)

    def _final_rollout(self, root: Node, best: Trajectory) -> Trajectory:
        """The rollout that completes a path cut short: the most rewarded one below ``root``
        that finished (a whole answer), or under voting the most rewarded one that gives the
        leading answer; ``best`` (the most rewarded of all) when none finished."""
        leader = leading_answer(root) if self.voting else None
        answer = None if leader is None else leader[0]
        finished = [
            t
            for t in self.finished_rollouts
            if _below(t.node, root) and (answer is None or t.answer == answer)
        ]
        return max(finished, key=lambda t: t.reward) if finished else best

    def _finish(self, root: Node, budget_out: EndReason | None) -> Iterator[SearchEvent]:
        """Close the path: after a budget ran out, the best rollout found so far completes it."""
        end = path_end(root, self.params)
        chosen = root
        if end is not None:
            finish_reason, ended_by = end
            reward = self.reward(root.path_steps())
        elif root.best is not None:
            best = self._final_rollout(root, root.best)
            chosen = best.node
            steps = [node.step for node in best.node.path()[root.depth :]]
            steps += [best.tail_step] if best.tail else []
            yield from self.writer.commit_path(steps, stop=best.stop_reason)
            finish_reason, reward = best.finish_reason, best.reward
            ended_by = budget_out or "completed"
        else:
            yield from self.writer.commit(NOTHING, last=True)
            finish_reason, reward = "length", self.reward(root.path_steps())
            ended_by = budget_out or "completed"
        yield self.finished(chosen, finish_reason=finish_reason, ended_by=ended_by, reward=reward)


def _below(node: Node | None, root: Node) -> bool:
    """Whether ``root`` is ``node`` or one of its ancestors."""
    while node is not None:
        if node is root:
            return True
        node = node.parent
    return False
