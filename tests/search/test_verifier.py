"""The verifier on scripted engines: which answer a judge's P(True) makes the sampling methods
choose, what it is asked, and what a failing judge does (choice arithmetic only; the live
judge is in tests/server/test_verifier.py)."""

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from search import AnswerDelta, ReasoningDelta, SearchParams, run_search
from search.engine import Completion, EngineFault, GenerationRequest, TokenLogprob
from search.events import Finished, SearchEvent, SearchResult
from search.params import SearchConfigError
from search.verifier import JUDGE_LOGPROBS, Verifier, VerifierFault, p_yes
from tests.scripted import CharTokenizer, ScriptedEngine, scored

PROMPT = tuple(CharTokenizer().encode("Q? "))
YES, NO, OTHER = 1, 2, 3


class JudgeTokenizer(CharTokenizer):
    """Characters, but token 1 reads " Yes", 2 "no" and 3 "Maybe" (a judge's first token)."""

    def decode(self, token_ids: Sequence[int]) -> str:
        words = {YES: " Yes", NO: "no", OTHER: "Maybe"}
        return "".join(words.get(t, chr(t)) for t in token_ids)


@dataclass
class Judge:
    """A judge that trusts each answer as ``trust`` says (by its text), and records its calls;
    ``broken`` fails every call as an engine would."""

    trust: dict[str, float]
    broken: bool = False
    model_name: str = "judge"
    tokenizer: JudgeTokenizer = field(default_factory=JudgeTokenizer)
    requests: list[GenerationRequest] = field(default_factory=list)
    calls: int = 0

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        self.calls += 1
        self.requests.extend(requests)
        if self.broken:
            raise EngineFault("the judge's engine is down")
        return [[self._verdict(CharTokenizer().decode(r.prompt_token_ids))] for r in requests]

    def _verdict(self, answer: str) -> Completion:
        p = self.trust[answer]
        top = ((YES, math.log(p)), (NO, math.log(1 - p)))
        return Completion((YES,), " Yes", (TokenLogprob(YES, math.log(p), top),), "length", None)


def verifier(judge: Judge) -> Verifier:
    """The judge reading each answer's text as its whole prompt."""
    return Verifier(judge, CharTokenizer().encode, judge.model_name)


def run(engine: ScriptedEngine, **overrides: object) -> tuple[str, SearchResult]:
    options: dict[str, object] = {"prompt_token_ids": PROMPT, "seed": 3, "rollout_tokens": 64}
    options.update(overrides)

    async def collect() -> list[SearchEvent]:
        return [e async for e in run_search(SearchParams(**options), engine)]  # type: ignore[arg-type]

    events = asyncio.run(collect())
    assert isinstance(events[-1], Finished)
    text = "".join(e.text for e in events if isinstance(e, ReasoningDelta | AnswerDelta))
    return text, events[-1].result


def test_best_of_n_keeps_the_answer_the_judge_trusts_not_the_most_confident() -> None:
    engine = ScriptedEngine([scored("so 7", 0.9), scored("so 12", 0.5), scored("so 3", 0.7)])
    judge = Judge({"so 7": 0.2, "so 12": 0.8, "so 3": 0.6})
    text, result = run(engine, method="best_of_n", samples=3, verifier=verifier(judge))
    assert text == "so 12"
    assert result.reward == pytest.approx(0.8)  # the judge's P(True) is the answer's score
    assert result.chosen_by == "verifier"
    assert judge.calls == 1  # every answer in one call: one forward pass and one token each
    assert [r.max_tokens for r in judge.requests] == [1, 1, 1]
    assert {(r.temperature, r.logprobs, r.n) for r in judge.requests} == {(0.0, JUDGE_LOGPROBS, 1)}


def test_a_weighted_vote_counts_the_judges_trust_and_a_majority_only_its_tie_break() -> None:
    def samples() -> ScriptedEngine:
        return ScriptedEngine([scored("so 7", 0.9), scored("it is 7", 0.9), scored("so 12", 0.3)])

    judge = Judge({"so 7": 0.1, "it is 7": 0.3, "so 12": 0.9})
    weighted, _ = run(samples(), samples=3, voting="weighted", verifier=verifier(judge))
    assert weighted == "so 12"  # 0.9 against 0.1 + 0.3
    majority, result = run(samples(), samples=3, verifier=verifier(judge))
    assert majority == "it is 7"  # two votes for 7; of them, the judge trusts this one more
    assert result.chosen_by == "vote"


def test_only_answers_that_ended_are_judged() -> None:
    engine = ScriptedEngine([scored("so 7", 0.9), scored("so 12 and", 0.9, eos=False)])
    judge = Judge({"so 7": 0.4})
    text, _ = run(engine, method="best_of_n", samples=2, verifier=verifier(judge))
    assert text == "so 7"
    assert len(judge.requests) == 1


def test_a_failing_judge_is_a_verifier_fault_never_an_unjudged_answer() -> None:
    engine = ScriptedEngine([scored("so 7", 0.9), scored("so 12", 0.5)])
    judge = Judge({}, broken=True)
    with pytest.raises(VerifierFault, match="verifier \\(judge\\)") as raised:
        run(engine, method="best_of_n", samples=2, verifier=verifier(judge))
    assert isinstance(raised.value, EngineFault)


@pytest.mark.parametrize("method", ["mcts", "beam", "none"])
def test_a_verifier_on_a_method_that_does_not_choose_whole_answers_is_refused(
    method: str,
) -> None:
    with pytest.raises(SearchConfigError) as refused:
        SearchParams(prompt_token_ids=PROMPT, method=method, verifier=verifier(Judge({})))
    assert refused.value.param == "verifier"


def test_p_yes_weighs_yes_against_no_in_any_spelling_and_is_even_without_either() -> None:
    tokenizer = JudgeTokenizer()

    def verdict(*top: tuple[int, float]) -> Completion:
        return Completion((top[0][0],), "", (TokenLogprob(top[0][0], top[0][1], top),), "length")

    p = p_yes(verdict((YES, math.log(0.6)), (NO, math.log(0.2)), (OTHER, math.log(0.2))), tokenizer)
    assert p == pytest.approx(0.6 / 0.8)
    assert p_yes(verdict((OTHER, 0.0)), tokenizer) == 0.5
