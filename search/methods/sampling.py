"""Methods ``best_of_n`` and ``self_consistency``: sample ``samples`` whole answers in one
engine call, then keep one.

``best_of_n`` keeps the answer with the highest reward.  ``self_consistency`` extracts each
answer's final result (:mod:`search.extract`), takes the majority, and breaks ties (and picks
the answer shown) by reward.  The chosen answer is split into steps under the request's
granularity, so reasoning and answer come apart exactly as for MCTS.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from search.answer import PathWriter
from search.budget import Budget
from search.engine import Completion, Engine, FinishReason
from search.events import Finished, SearchEvent, Started, StopReason
from search.extract import extract_answer
from search.params import SearchParams
from search.reward import REWARDS
from search.steps import StepCutter
from search.trace import trace_tree
from search.tree import Step, Tree


@dataclass(frozen=True, slots=True)
class Candidate:
    """One sampled answer, cut into steps and scored."""

    completion: Completion
    steps: list[Step]
    reward: float


Chooser = Callable[[list[Candidate]], Candidate]


def highest_reward(candidates: list[Candidate]) -> Candidate:
    """Best-of-n: the most rewarded answer."""
    return max(candidates, key=lambda c: c.reward)


def majority_vote(candidates: list[Candidate]) -> Candidate:
    """Self-consistency: the most common final answer; reward breaks ties and picks the text."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        answer = extract_answer(candidate.completion.text)
        if answer is not None:
            groups.setdefault(answer, []).append(candidate)
    if not groups:
        return highest_reward(candidates)
    winner = max(groups.values(), key=lambda g: (len(g), highest_reward(g).reward))
    return highest_reward(winner)


async def run_best_of_n(
    params: SearchParams, engine: Engine, rng: random.Random, budget: Budget
) -> AsyncGenerator[SearchEvent, None]:
    """Sample ``params.samples`` answers and return the most rewarded."""
    async for event in _run_sampled(params, engine, rng, budget, highest_reward):
        yield event


async def run_self_consistency(
    params: SearchParams, engine: Engine, rng: random.Random, budget: Budget
) -> AsyncGenerator[SearchEvent, None]:
    """Sample ``params.samples`` answers and return the majority's most rewarded."""
    async for event in _run_sampled(params, engine, rng, budget, majority_vote):
        yield event


async def _run_sampled(
    params: SearchParams,
    engine: Engine,
    rng: random.Random,
    budget: Budget,
    choose: Chooser,
) -> AsyncGenerator[SearchEvent, None]:
    yield Started(method=params.method, prompt_tokens=len(params.prompt_token_ids))
    cutter = StepCutter(params, engine.tokenizer)
    reward = REWARDS[params.reward]
    writer = PathWriter(engine.tokenizer, params, implicit="last_step")
    max_tokens = min(params.max_tokens, budget.remaining_tokens() // params.samples)
    outputs = None
    if max_tokens >= 1:
        request = params.generation((), max_tokens, rng.getrandbits(31), n=params.samples)
        outputs = await budget.generate(engine, [request])
    finish_reason: FinishReason = "length"
    tree = Tree()
    chosen_node = tree.root
    if outputs is None:
        stop_reason: StopReason = budget.exhausted() or "max_search_tokens"
        chosen_reward = 0.0
        for event in writer.commit((), last=True):
            yield event
    else:
        candidates, nodes = [], []
        for completion in outputs[0]:
            steps = cutter.split(completion.token_ids, completion.logprobs)
            candidate = Candidate(completion, steps, reward(steps))
            whole = Step.of(completion.token_ids, completion.logprobs)
            node = tree.add_child(tree.root, whole, terminal=completion.finish_reason == "stop")
            node.visits, node.value_sum = 1, candidate.reward
            candidates.append(candidate)
            nodes.append(node)
        chosen = choose(candidates)
        chosen_node = nodes[candidates.index(chosen)]
        chosen_ids = [step.token_ids for step in chosen.steps]
        for event in writer.commit_path(chosen_ids, stop=chosen.completion.stop_reason):
            yield event
        finish_reason = chosen.completion.finish_reason
        budget_cut = max_tokens < params.max_tokens
        stop_reason = (
            "completed"
            if finish_reason == "stop"
            else ("max_search_tokens" if budget_cut else "max_tokens")
        )
        chosen_reward = chosen.reward
    yield Finished(
        writer.result(
            params,
            finish_reason=finish_reason,
            stop_reason=stop_reason,
            generated_tokens=budget.generated,
            reward=chosen_reward,
            iterations=tree.size - 1,
            nodes=tree.size,
            tree=trace_tree(tree, chosen_node, engine.tokenizer),
        )
    )
