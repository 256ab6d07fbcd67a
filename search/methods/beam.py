"""Method ``beam``: step-level beam search scored by the path reward.

Each round expands every live beam by ``branching`` one-action continuations (all beams in one
engine call), scores each new partial path, and keeps the ``beam_width`` best among the new
paths and the beams that have already ended.  Steps that every surviving beam shares can no
longer change, so they stream as reasoning at once; the rest of the best beam follows at the
end.  In ``step`` granularity a continuation may run past the separator (up to
``step_tokens``); what follows the first step is dropped, so steps mean the same as in MCTS.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator

from search.answer import PathWriter
from search.budget import Budget
from search.engine import Engine
from search.events import Expanded, Finished, SearchEvent, Started, StopReason
from search.params import SearchParams
from search.policies import path_end
from search.reward import REWARDS
from search.steps import StepCutter
from search.trace import trace_tree
from search.tree import Node, Step, Tree


def _shared_ancestor(root: Node, beams: list[Node]) -> Node:
    """The deepest node on every beam's path."""
    shared = root
    for nodes in zip(*(b.path() for b in beams), strict=False):
        if any(n is not nodes[0] for n in nodes):
            break
        shared = nodes[0]
    return shared


async def run_beam(
    params: SearchParams, engine: Engine, rng: random.Random, budget: Budget
) -> AsyncGenerator[SearchEvent, None]:
    """Beam search over steps; yields shared steps as they settle."""
    yield Started(method=params.method, prompt_tokens=len(params.prompt_token_ids))
    tree = Tree()
    cutter = StepCutter(params, engine.tokenizer)
    reward = REWARDS[params.reward]
    writer = PathWriter(engine.tokenizer, params, implicit="last_step")
    beams, committed = [tree.root], tree.root
    budget_out: StopReason | None = None
    expansions = 0
    best_reward = 0.0
    while live := [b for b in beams if path_end(b, params) is None]:
        budget_out = budget.exhausted()
        per_sample = budget.remaining_tokens() // (len(live) * params.branching)
        if budget_out is not None or per_sample < 1:
            budget_out = budget_out or "max_search_tokens"
            break
        requests = [
            params.generation(
                beam.path_token_ids(),
                min(params.action_tokens, params.max_tokens - beam.path_tokens, per_sample),
                rng.getrandbits(31),
                n=params.branching,
            )
            for beam in live
        ]
        outputs = await budget.generate(engine, requests)
        if outputs is None:
            budget_out = budget.exhausted() or "max_seconds"
            break
        children: list[Node] = []
        for beam, completions in zip(live, outputs, strict=True):
            generated = 0
            for completion in completions:
                cut = cutter.first_action(completion.token_ids)
                generated += len(completion.token_ids)
                step = Step.of(completion.token_ids[:cut], completion.logprobs[:cut])
                child = next((c for c in beam.children if c.token_ids == step.token_ids), None)
                if child is None:
                    terminal = (
                        cut == len(completion.token_ids) and completion.finish_reason == "stop"
                    )
                    stop = completion.stop_reason if terminal else None
                    child = tree.add_child(beam, step, terminal=terminal, stop_reason=stop)
                    child.visits, child.value_sum = 1, reward(child.path_steps())
                    children.append(child)
            expansions += 1
            best_reward = max(best_reward, *(c.mean_value for c in beam.children))
            yield Expanded(
                node_id=beam.id,
                depth=beam.depth,
                children=len(beam.children),
                action_tokens=generated,
                rollout_tokens=0,
                best_reward=best_reward,
                round=beam.depth + 1,
                iterations=expansions,
                nodes=tree.size,
            )
        pool = [b for b in beams if path_end(b, params) is not None] + children
        beams = sorted(pool, key=lambda n: n.mean_value, reverse=True)[: params.beam_width]
        settled = _shared_ancestor(tree.root, beams)
        if path_end(settled, params) is not None:  # the answer's last step waits for the end
            settled = settled.parent or settled
        for node in settled.path()[committed.depth :]:
            for event in writer.commit(node.token_ids, last=False):
                yield event
        committed = settled
    best = max(beams, key=lambda n: n.mean_value)
    end = path_end(best, params)
    finish_reason, stop_reason = end or ("length", "completed")
    stop_reason = budget_out or stop_reason  # a budget that stopped the search says so
    steps = [node.token_ids for node in best.path()[committed.depth :]]
    for event in writer.commit_path(steps, stop=best.stop_reason):
        yield event
    yield Finished(
        writer.result(
            params,
            finish_reason=finish_reason,
            stop_reason=stop_reason,
            generated_tokens=budget.generated,
            reward=reward(best.path_steps()),
            iterations=expansions,
            nodes=tree.size,
            tree=trace_tree(tree, best, engine.tokenizer),
        )
    )
