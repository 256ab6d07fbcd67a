"""MCTS arithmetic on a scripted engine (a real model cannot force a tree shape)."""

import asyncio
import random

import pytest

from search import (
    AnswerDelta,
    Budget,
    Expanded,
    Finished,
    ReasoningDelta,
    SearchParams,
    Started,
)
from search.events import SearchEvent, SearchResult
from search.methods.mcts import MctsRun
from search.params import REFLECTION_TEXT
from tests.scripted import CharTokenizer, ScriptedEngine, scored

PROMPT = tuple(CharTokenizer().encode("Q? "))


def run(
    engine: ScriptedEngine, interrupt_at_call: int | None = None, **overrides: object
) -> list[SearchEvent]:
    """The events of an MCTS run on ``engine``, its budget on the engine's clock; with
    ``interrupt_at_call``, the interrupt is set once that call has reached the engine.  Its
    2-token mini-steps write one paragraph: the answer is the whole path, whose decided steps
    have streamed as reasoning too."""
    options: dict[str, object] = {
        "prompt_token_ids": PROMPT,
        "granularity": "mini_step",
        "step_tokens": 2,
        "iterations": 1,
        "branching": 2,
        "rollout_tokens": 64,
        "seed": 7,
    }
    options.update(overrides)

    async def collect() -> list[SearchEvent]:
        params = SearchParams(**options)  # type: ignore[arg-type]
        interrupt = asyncio.Event()

        async def interrupt_once_started(call: int) -> None:
            await engine.started(call)
            interrupt.set()

        watcher = None
        if interrupt_at_call is not None:
            watcher = asyncio.create_task(interrupt_once_started(interrupt_at_call))
        budget = Budget(params, interrupt, engine.clock)
        events = [
            e async for e in MctsRun(params, engine, random.Random(params.seed), budget).events()
        ]
        if watcher is not None:
            await watcher
        return events

    return asyncio.run(collect())


def text_of(events: list[SearchEvent]) -> tuple[str, str, SearchResult]:
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    finished = events[-1]
    assert isinstance(finished, Finished)
    return reasoning, answer, finished.result


def test_commits_the_more_confident_branch_step_by_step() -> None:
    engine = ScriptedEngine(
        [
            scored("abcd", 0.9),
            scored("xyzw", 0.3),  # expand root
            scored("cd", 0.8),
            scored("ce", 0.4),  # expand "ab"
        ]
    )
    events = run(engine)
    reasoning, answer, result = text_of(events)
    assert isinstance(events[0], Started)
    assert (reasoning, answer) == ("ab", "abcd")
    assert result.finish_reason == "stop" and result.ended_by == "completed"
    assert result.token_ids == (*tuple(CharTokenizer().encode("abcd")), 0)
    assert result.iterations == 2 and result.nodes == 5
    # the trace is the tree: ids, parents, visits, and the chosen path
    tree = {n.id: n for n in result.tree}
    assert {i: (n.parent, n.visits, n.text) for i, n in tree.items()} == {
        0: (None, 4, ""),
        1: (0, 3, "ab"),
        2: (0, 1, "xy"),
        3: (1, 1, "cd"),
        4: (1, 1, "ce"),
    }
    assert [i for i, n in tree.items() if n.chosen] == [0, 1, 3]
    assert result.reward == pytest.approx((0.9 * 2 + 0.8 * 3) / 5)
    # every reasoning delta precedes every answer delta
    kinds = [type(e) for e in events if isinstance(e, ReasoningDelta | AnswerDelta)]
    assert kinds == sorted(kinds, key=lambda k: k is AnswerDelta)
    # expansion asked the engine for `branching` samples of the leaf's path in one call
    assert [r.n for r in engine.requests] == [2, 2]
    assert engine.requests[1].prompt_token_ids == PROMPT + tuple(CharTokenizer().encode("ab"))


def test_deeper_evidence_overturns_a_lucky_first_rollout() -> None:
    engine = ScriptedEngine(
        [
            scored("abcd", 0.6),
            scored("xyzw", 0.7),  # root: "xy" looks better at first
            scored("zw", 0.2),
            scored("zq", 0.2),  # expanding "xy" reveals weak rollouts
            scored("cd", 0.9),
            scored("ce", 0.9),  # expanding "ab" reveals strong ones
            *[scored("cd", 0.9)] * 6,  # round 2: both children end, so "ab" widens thrice
        ]
    )
    events = run(engine, iterations=3)
    reasoning, answer, result = text_of(events)
    root_expansions = [e for e in events if isinstance(e, Expanded) and e.depth == 0]
    assert len(root_expansions) == 1  # later iterations went deeper, not wider
    assert (reasoning, answer) == ("ab", "abcd")
    assert result.iterations == 6


def test_a_decided_step_streams_before_its_round_ends() -> None:
    """Once the round's last iterations cannot overturn the most visited child, its step is
    streamed then; the round still runs its iterations, so the search is unchanged."""
    engine = ScriptedEngine(
        [
            scored("abcdef", 0.9, eos=False),
            scored("xyzw", 0.3, eos=False),  # expand root
            scored("cdef", 0.9, eos=False),
            scored("cgef", 0.8, eos=False),  # expand "ab": 3 visits against 1
            scored("efgh", 0.9, eos=False),
            scored("eggh", 0.8, eos=False),  # expand "abcd": 5 against 1, one iteration left
            scored("xx", 0.9),
            scored("xy", 0.9),  # that iteration, after "ab" has streamed
            *[scored("xx", 0.9)] * 24,  # later rounds: every iteration widens "ef" (2 samples)
        ]
    )
    events = run(engine, iterations=4, exploration=0.0)
    order = [
        "expanded" if isinstance(e, Expanded) else e.text
        for e in events
        if isinstance(e, Expanded | ReasoningDelta)
    ]
    assert order[:5] == ["expanded", "expanded", "expanded", "ab", "expanded"]
    assert text_of(events)[:2] == ("abcdef", "abcdefxx")
    expansions = [e for e in events if isinstance(e, Expanded)]
    assert [e.round for e in expansions[:4]] == [1, 1, 1, 1]  # round 1 ran all four iterations


def test_a_decided_final_step_ends_its_round() -> None:
    """A decided child that ends the answer leaves nothing for the round's other iterations."""
    engine = ScriptedEngine([scored("a", 0.9), scored("xyzw", 0.3, eos=False)])
    reasoning, answer, result = text_of(run(engine, iterations=10, exploration=0.0))
    assert (reasoning, answer) == ("", "a")
    # "a" gains a visit per iteration: 8 against 1 with two left (at most 4 more for "xy")
    assert result.iterations == 8


def test_an_only_child_streams_as_soon_as_its_parent_is_expanded() -> None:
    """Samples that agree on the first step leave the root one child: no later iteration
    can give it a rival, so its step streams before the round's other iterations run."""
    engine = ScriptedEngine(
        [
            scored("abcd", 0.9, eos=False),
            scored("abef", 0.8, eos=False),  # expand root: both begin with "ab"
            scored("cd", 0.9),
            scored("ce", 0.8),  # expand "ab", after it has streamed
            scored("cd", 0.9),
            scored("cf", 0.5),  # both ended: widen "ab"; "cd" is chosen twice
        ]
    )
    events = run(engine, iterations=2)
    order = [
        "expanded" if isinstance(e, Expanded) else e.text
        for e in events
        if isinstance(e, Expanded | ReasoningDelta)
    ]
    assert order[:3] == ["expanded", "ab", "expanded"]
    assert text_of(events)[:2] == ("ab", "abcd")


def test_step_granularity_cuts_at_the_separator() -> None:
    engine = ScriptedEngine(
        [
            scored("One.\n\nTwo.", 0.9),
            scored("Uno.\n\nDos.", 0.5),
            scored("Two.", 0.9),
            scored("Two!", 0.5),
        ]
    )
    events = run(engine, granularity="step", step_tokens=64, iterations=1)
    reasoning, answer, _ = text_of(events)
    assert reasoning == "One.\n\n"
    assert answer == "Two."


def test_search_token_budget_returns_the_best_rollout_so_far() -> None:
    engine = ScriptedEngine([scored("abcdefgh", 0.9), scored("uvwxyzst", 0.5)])
    events = run(engine, iterations=4, max_search_tokens=18)
    _, answer, result = text_of(events)
    assert result.ended_by == "max_search_tokens"
    assert answer == "abcdefgh"
    assert result.generated_tokens <= 18
    assert result.finish_reason == "stop"


def test_a_budget_cut_answers_with_a_finished_rollout_over_a_likelier_unfinished_one() -> None:
    # the more confident rollout runs out of tokens mid-answer; the other one ends
    engine = ScriptedEngine([scored("abcdef", 0.9, eos=False), scored("uvwx", 0.5)])
    events = run(engine, iterations=4, rollout_tokens=8, max_search_tokens=12)
    _, answer, result = text_of(events)
    assert result.ended_by == "max_search_tokens"
    assert (answer, result.finish_reason) == ("uvwx", "stop")


SLOW = [scored("abcdefgh", 0.9), scored("uvwxyzst", 0.5)] * 10


def test_wall_time_budget_stops_a_slow_search() -> None:
    engine = ScriptedEngine(SLOW, call_seconds=0.3)  # the second call ends past the deadline
    events = run(engine, iterations=10, max_seconds=0.5)
    _, answer, result = text_of(events)
    assert result.ended_by == "max_seconds"
    assert answer == "abcdefgh"
    assert len(engine.requests) == 2 and engine.cancelled == 0  # no third call was made


def test_a_call_that_outlives_the_deadline_is_cut_with_the_best_rollout_so_far() -> None:
    engine = ScriptedEngine(SLOW, gated=True, call_seconds=0.3)
    engine.release(1)  # the first call alone ever answers: the second is held until cut
    events = run(engine, iterations=10, max_seconds=0.5)
    _, answer, result = text_of(events)
    assert result.ended_by == "max_seconds"
    assert answer == "abcdefgh"
    assert len(engine.requests) == 2 and engine.cancelled == 1


def test_an_interrupt_ends_the_search_with_the_best_rollout_so_far() -> None:
    engine = ScriptedEngine(SLOW, gated=True)
    engine.release(1)
    events = run(engine, interrupt_at_call=2, iterations=10)
    _, answer, result = text_of(events)
    assert result.ended_by == "interrupted"
    assert answer == "abcdefgh"
    assert len(engine.requests) == 2 and engine.cancelled == 1  # the second call was cut


def test_parallel_leaves_are_chosen_with_virtual_loss_and_expanded_in_one_call() -> None:
    engine = ScriptedEngine(
        [
            scored("abcd", 0.9),
            scored("xyzw", 0.3),  # the root alone: it is the only leaf
            scored("cd", 0.8),
            scored("ce", 0.4),  # "ab" ...
            scored("zw", 0.3),
            scored("zq", 0.3),  # ... and "xy", which virtual loss on "ab" makes UCT pick
        ]
    )
    events = run(engine, iterations=3, parallel=2)  # parallel=1 is pinned by the tests above
    *_, result = text_of(events)
    assert engine.calls[:2] == [1, 2]
    decode = CharTokenizer().decode
    assert [decode(r.prompt_token_ids) for r in engine.requests[1:3]] == ["Q? ab", "Q? xy"]
    assert result.iterations >= 3 and result.finish_reason == "stop"
    expansions = [e for e in events if isinstance(e, Expanded)]
    assert [e.iterations for e in expansions[:3]] == [1, 2, 3]


def test_max_tokens_ends_the_path_with_length() -> None:
    engine = ScriptedEngine(
        [scored("abcdefgh", 0.9, eos=False), scored("abcdefgh", 0.9, eos=False)] * 4
    )
    events = run(engine, max_tokens=4)
    *_, result = text_of(events)
    assert result.finish_reason == "length" and result.ended_by == "max_tokens"
    assert len(result.token_ids) == 4
    assert all(r.max_tokens <= 4 for r in engine.requests)


def test_reflection_gives_a_weak_answer_a_rethinking_sibling() -> None:
    engine = ScriptedEngine(
        [scored("no", 0.2), scored("no", 0.2), scored("ok", 0.95), scored("ok", 0.95)]
    )
    events = run(engine, iterations=2, reflection=True, reflection_threshold=0.5, step_tokens=4)
    reasoning, answer, result = text_of(events)
    assert result.finish_reason == "stop"
    assert REFLECTION_TEXT in reasoning
    assert answer == "ok"
    reflected = engine.requests[1].prompt_token_ids
    assert CharTokenizer().decode(reflected).endswith(f"no\n\n{REFLECTION_TEXT}\n\n")


def test_reflection_rethinks_a_weak_answer_that_a_rollout_finished() -> None:
    """The answer "nono" ends in its rollout (two 2-token steps), not in the expanded step: the
    whole answer, then the reflection prompt, is the sibling the next iteration expands."""
    engine = ScriptedEngine(
        [scored("nono", 0.2), scored("okok", 0.95), scored("okok", 0.95), scored("okok", 0.95)]
    )
    events = run(engine, iterations=2, reflection=True, reflection_threshold=0.5)
    *_, result = text_of(events)
    assert result.finish_reason == "stop"
    rethought = CharTokenizer().decode(engine.requests[1].prompt_token_ids)
    assert rethought == f"Q? nono\n\n{REFLECTION_TEXT}\n\n"
    # a strong answer is not reflected on, and without the flag nothing is
    quiet = ScriptedEngine([scored("nono", 0.2), scored("okok", 0.95)] * 2)
    run(quiet, iterations=2)
    assert all(
        REFLECTION_TEXT not in CharTokenizer().decode(r.prompt_token_ids) for r in quiet.requests
    )


def test_seeded_searches_send_the_same_engine_seeds() -> None:
    seeds = []
    for _ in range(2):
        engine = ScriptedEngine([scored("abcd", 0.9), scored("xyzw", 0.3)])
        run(engine)
        seeds.append([r.seed for r in engine.requests])
    assert seeds[0] == seeds[1]


def test_invalid_parameters_name_the_field() -> None:
    from search import SearchConfigError

    with pytest.raises(SearchConfigError) as excinfo:
        SearchParams(prompt_token_ids=PROMPT, iterations=0)
    assert excinfo.value.param == "iterations"
    with pytest.raises(SearchConfigError) as excinfo:
        SearchParams(
            prompt_token_ids=PROMPT, granularity="mini_step", step_tokens=64, rollout_tokens=8
        )
    assert excinfo.value.param == "rollout_tokens"


def test_voting_commits_toward_the_answer_most_rollouts_reach() -> None:
    root = [scored("ab7", 0.9), scored("cd3", 0.5), scored("ce3", 0.5)]

    def last(digit: str) -> list[list[tuple[int, float]]]:
        return [scored(digit, 0.9)] * 3

    reasoning, answer, _ = text_of(run(ScriptedEngine([*root, *last("7")]), branching=3))
    assert (reasoning, answer) == ("ab", "ab7")  # Marco-o1: most visits, then most reward
    engine = ScriptedEngine([*root, *last("3")])
    reasoning, answer, result = text_of(run(engine, branching=3, vote=True))
    assert (reasoning, answer) == ("cd", "cd3")  # two rollouts say 3: their reward outweighs 0.9
    assert result.ended_by == "completed"


def test_consensus_stops_once_the_rollouts_agree() -> None:
    engine = ScriptedEngine([scored("ab4", 0.6), scored("cd4", 0.8), scored("xx", 0.1)])
    reasoning, answer, result = text_of(run(engine, consensus=0.9))
    assert (reasoning, answer) == ("cd", "cd4")  # the more rewarded of the agreeing rollouts
    assert result.ended_by == "consensus" and result.finish_reason == "stop"
    assert engine.calls == [1]  # one expansion, then no more engine work


def test_consensus_waits_for_a_round_of_rollouts_and_a_clear_lead() -> None:
    split = [scored("ab4", 0.6), scored("cd5", 0.8), scored("4", 0.9), scored("5", 0.9)]
    engine = ScriptedEngine(split)
    result = text_of(run(engine, consensus=0.9))[2]
    assert result.ended_by == "completed"  # 4 and 5 split the vote: the search goes on
    assert engine.calls == [1, 1]


def test_whole_answers_widen_the_root_and_are_chosen_by_their_vote() -> None:
    """One-step answers: each iteration that reaches a finished child samples new siblings
    instead of rescoring it, and the round commits the answer self-consistency would choose
    of them (a child sampled twice votes twice), not the most visited or most rewarded one."""
    engine = ScriptedEngine(
        [
            scored("so 7", 0.5),
            scored("so 9", 0.9),  # expand root: both children end
            scored("so 7", 0.6),
            scored("it is 7", 0.4),
            scored("so 9", 0.8),
            scored("so 7", 0.5),
            scored("so 3", 0.7),
            scored("so 7", 0.5),
        ]
    )
    events = run(engine, iterations=4, step_tokens=16)
    expansions = [e for e in events if isinstance(e, Expanded)]
    assert engine.calls == [1, 1, 1, 1] and [e.depth for e in expansions] == [0, 0, 0, 0]
    reasoning, answer, result = text_of(events)
    assert (reasoning, answer, result.chosen_by) == ("", "so 7", "vote")


def test_whole_free_text_answers_are_chosen_by_consensus() -> None:
    engine = ScriptedEngine(
        [
            scored("the cat sat", 0.5),
            scored("a dog ran off", 0.9),
            scored("the cat sat down", 0.4),
            scored("the cat sits", 0.3),
        ]
    )
    _, answer, result = text_of(run(engine, iterations=2, step_tokens=32))
    assert answer.startswith("the cat") and result.chosen_by == "consensus"
