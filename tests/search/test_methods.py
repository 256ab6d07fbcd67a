"""best_of_n, self_consistency and beam on a scripted engine (choice arithmetic only)."""

import asyncio

import pytest

from search import AnswerDelta, Finished, ReasoningDelta, SearchParams, run_search
from search.engine import Constraint
from search.events import SearchEvent, SearchResult
from search.params import SearchConfigError
from tests.scripted import CharTokenizer, ScriptedEngine, scored

PROMPT = tuple(CharTokenizer().encode("Q? "))


def run(
    engine: ScriptedEngine, **overrides: object
) -> tuple[list[SearchEvent], str, str, SearchResult]:
    options: dict[str, object] = {"prompt_token_ids": PROMPT, "seed": 3, "rollout_tokens": 64}
    options.update(overrides)

    async def collect() -> list[SearchEvent]:
        return [e async for e in run_search(SearchParams(**options), engine)]  # type: ignore[arg-type]

    events = asyncio.run(collect())
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert isinstance(events[-1], Finished)
    return events, reasoning, answer, events[-1].result


def test_best_of_n_keeps_the_most_confident_answer_in_one_call() -> None:
    engine = ScriptedEngine([scored("abcd", 0.5), scored("wxyz", 0.9), scored("pq", 0.7)])
    _, reasoning, answer, result = run(
        engine, method="best_of_n", samples=3, granularity="mini_step", step_tokens=2
    )
    assert (reasoning, answer) == ("wx", "wxyz")
    assert result.reward == pytest.approx(0.9)
    assert [r.n for r in engine.requests] == [3]
    assert (result.iterations, result.nodes, result.finish_reason) == (3, 4, "stop")


def test_self_consistency_follows_the_majority_answer() -> None:
    engine = ScriptedEngine([scored("so 12", 0.9), scored("so 7", 0.6), scored("it is 7", 0.5)])
    _, _, answer, result = run(engine, method="self_consistency", samples=3)
    assert answer == "so 7"
    assert result.reward == pytest.approx(0.6)
    assert result.chosen_by == "vote"


def test_self_consistency_breaks_ties_by_reward() -> None:
    engine = ScriptedEngine([scored("so 7", 0.6), scored("so 12", 0.9)])
    _, _, answer, _ = run(engine, method="self_consistency", samples=2)
    assert answer == "so 12"


def test_a_weighted_vote_follows_reward_and_a_filtered_one_drops_the_least_rewarded() -> None:
    samples = [scored("so 7", 0.3), scored("so 7", 0.35), scored("so 12", 0.9), scored("so 7", 0.3)]
    for voting, keep, expected in [
        ("majority", 0.5, "so 7"),
        ("weighted", 0.5, "so 7"),  # 0.95 against 0.9
        ("filtered", 0.5, "so 12"),  # the top two: 12 at 0.9 against 7 at 0.35
        ("filtered", 1.0, "so 7"),
    ]:
        engine = ScriptedEngine(list(samples))  # the engine pops its script
        *_, answer, result = run(
            engine, method="self_consistency", samples=4, voting=voting, keep=keep
        )
        assert answer == expected, (voting, keep)
        assert [r.n for r in engine.requests] == [4]
        assert result.iterations == 4


@pytest.mark.parametrize(("knob", "value"), [("keep", 0.0), ("keep", 1.5), ("window", 0)])
def test_vote_and_signal_knobs_out_of_range_name_their_field(knob: str, value: float) -> None:
    with pytest.raises(SearchConfigError) as raised:
        SearchParams(prompt_token_ids=PROMPT, **{knob: value})  # type: ignore[arg-type]
    assert raised.value.param == knob


def test_min_step_reward_changes_the_choice() -> None:
    # fluent on average but with one shaky step, against steadily middling
    shaky = [(ord(c), 0.99) for c in "abcdef"] + [(ord("g"), 0.1), (ord("h"), 0.1), (0, 0.99)]
    steady = scored("stuvwxyz", 0.7)
    mean_choice = run(
        ScriptedEngine([shaky, steady]),
        method="best_of_n",
        samples=2,
        granularity="mini_step",
        step_tokens=2,
    )
    min_choice = run(
        ScriptedEngine([shaky, steady]),
        method="best_of_n",
        samples=2,
        granularity="mini_step",
        step_tokens=2,
        reward="min_step",
    )
    assert mean_choice[2] == "abcdefgh"
    assert min_choice[2] == "stuvwxyz"
    assert min_choice[3].reward == pytest.approx(0.7)


def test_beam_keeps_the_best_paths_and_streams_what_they_share() -> None:
    engine = ScriptedEngine(
        [
            scored("ab", 0.9, eos=False),
            scored("xy", 0.5, eos=False),  # expand the root
            scored("c", 0.9),
            scored("e", 0.2),  # expand "ab"
            scored("z", 0.3),
            scored("w", 0.3),  # expand "xy"
        ]
    )
    events, reasoning, answer, result = run(
        engine, method="beam", beam_width=2, branching=2, granularity="mini_step", step_tokens=2
    )
    assert (reasoning, answer) == ("ab", "abc")
    assert [len(r.prompt_token_ids) - len(PROMPT) for r in engine.requests] == [0, 2, 2]
    assert (result.iterations, result.nodes, result.finish_reason) == (3, 7, "stop")
    assert result.reward == pytest.approx(0.9)
    deltas = [e for e in events if isinstance(e, ReasoningDelta | AnswerDelta)]
    assert isinstance(deltas[0], ReasoningDelta) and isinstance(deltas[-1], AnswerDelta)


def test_a_constrained_search_continues_its_path_within_the_constraint() -> None:
    """Every engine request carries the constraint, resumed after the path it continues; the
    answer is the whole path, and reflection (text the grammar did not write) is refused."""
    engine = ScriptedEngine(
        [
            scored("ab", 0.9, eos=False),
            scored("xy", 0.5, eos=False),
            scored("c", 0.9),
            scored("e", 0.2),
            scored("z", 0.3),
            scored("w", 0.3),
        ]
    )
    constraint = Constraint("start: %json {}")
    _, reasoning, answer, _ = run(
        engine,
        method="beam",
        beam_width=2,
        granularity="mini_step",
        step_tokens=2,
        constraint=constraint,
    )
    assert (reasoning, answer) == ("", "abc")
    for request in engine.requests:
        assert request.constraint is not None and request.constraint.grammar == constraint.grammar
        assert request.constraint.done == request.prompt_token_ids[len(PROMPT) :]
    with pytest.raises(SearchConfigError) as refused:
        SearchParams(prompt_token_ids=PROMPT, constraint=constraint, reflection=True)
    assert refused.value.param == "reflection"


def test_beam_respects_the_search_token_budget() -> None:
    engine = ScriptedEngine([scored("ab", 0.9, eos=False)] * 50)
    *_, result = run(
        engine, method="beam", granularity="mini_step", step_tokens=2, max_search_tokens=12
    )
    assert result.ended_by == "max_search_tokens"
    assert result.generated_tokens <= 12
    assert result.token_ids  # the best partial path is still returned


def test_best_of_n_prefers_an_answer_that_ended() -> None:
    engine = ScriptedEngine([scored("abcdefgh", 0.9, eos=False), scored("pq", 0.5)])
    *_, answer, result = run(
        engine, method="best_of_n", samples=2, max_tokens=4, max_search_tokens=8
    )
    assert answer == "pq"  # the cut "abcd" was more confident
    assert (result.finish_reason, result.reward) == ("stop", pytest.approx(0.5))


def test_beam_cut_by_its_budget_answers_with_a_path_that_ended() -> None:
    engine = ScriptedEngine(
        [
            scored("ab", 0.5),  # a whole answer
            scored("xy", 0.9, eos=False),  # a likelier start, still open
            *[scored("zz", 0.9, eos=False)] * 4,
        ]
    )
    *_, answer, result = run(
        engine,
        method="beam",
        beam_width=2,
        branching=2,
        granularity="mini_step",
        step_tokens=3,
        max_search_tokens=8,
    )
    assert answer == "ab"
    assert (result.finish_reason, result.ended_by) == ("stop", "max_search_tokens")


def test_unknown_method_and_reward_are_rejected() -> None:
    with pytest.raises(SearchConfigError) as excinfo:
        SearchParams(prompt_token_ids=PROMPT, reward="vibes")
    assert excinfo.value.param == "reward"
    with pytest.raises(SearchConfigError):
        run_search(SearchParams(prompt_token_ids=PROMPT, method="magic"), ScriptedEngine([]))


def collect_choices(engine: ScriptedEngine, n: int, **overrides: object) -> list[SearchEvent]:
    options: dict[str, object] = {"prompt_token_ids": PROMPT, "seed": 3, "rollout_tokens": 64}
    options.update(overrides)

    async def collect() -> list[SearchEvent]:
        params = SearchParams(**options)  # type: ignore[arg-type]
        return [e async for e in run_search(params, engine, n=n)]

    return asyncio.run(collect())


def test_none_draws_n_answers_as_n_samples_of_one_call() -> None:
    engine = ScriptedEngine([scored("ab", 0.9), scored("cdef", 0.9, eos=False), scored("g", 0.9)])
    events = collect_choices(engine, 2, method="none", step_tokens=4)
    assert [(r.n, r.prompt_token_ids) for r in engine.requests[:1]] == [(2, PROMPT)]
    assert len(engine.calls) == 2  # then the unfinished answer alone continues
    answers = {
        i: "".join(e.text for e in events if isinstance(e, AnswerDelta) and e.choice == i)
        for i in (0, 1)
    }
    assert answers == {0: "ab", 1: "cdefg"}
    results = {e.choice: e.result for e in events if isinstance(e, Finished)}
    assert sorted(results) == [0, 1]
    assert (results[0].generated_tokens, results[1].generated_tokens) == (3, 6)


def test_n_searches_run_at_once_with_distinct_reproducible_seeds() -> None:
    def seeds() -> list[int | None]:
        engine = ScriptedEngine([scored("ab", 0.9)] * 4)
        events = collect_choices(engine, 2, method="best_of_n", samples=2)
        finished = [e for e in events if isinstance(e, Finished)]
        assert sorted(e.choice for e in finished) == [0, 1]
        return sorted(r.seed for r in engine.requests if r.seed is not None)

    first = seeds()
    assert len(set(first)) == 2 and first == seeds()


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "self_consistency", "samples": 3},
        {"method": "beam", "beam_width": 2, "granularity": "mini_step", "step_tokens": 2},
        {"method": "mcts", "iterations": 2, "granularity": "mini_step", "step_tokens": 2},
        {"method": "none"},
    ],
)
def test_the_result_carries_each_path_tokens_own_logprob(overrides: dict[str, object]) -> None:
    engine = ScriptedEngine([scored("abcd", 0.8), scored("abxy", 0.6), scored("zz", 0.7)] * 8)
    *_, result = run(engine, **overrides)
    assert result.token_ids
    assert [lp.token_id if lp else None for lp in result.logprobs] == list(result.token_ids)
