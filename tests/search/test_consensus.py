"""Consensus over free-text answers: the sample closest to the others, in bounded time."""

import pytest

from search import consensus
from search.consensus import MAX_PAIRS, is_free_text, most_central, similarity
from search.extract import final_answer
from tests.scripted import ScriptedEngine, scored
from tests.search.test_methods import run

TRANSLATIONS = [
    "I'm so tired I could sleep for a week.",
    "I am so tired that I could sleep for a whole week.",
    "Bananas are yellow and sweet.",
    "I'm so exhausted I could sleep a week.",
]


def test_the_rule_that_found_an_answer_says_whether_samples_can_agree_on_it() -> None:
    assert [final_answer(t).kind for t in ("so \\boxed{7}", "#### 12", "it is 7")] == [  # type: ignore[union-attr]
        "marked",
        "marked",
        "number",
    ]
    assert final_answer("I'm exhausted.") == final_answer("\n I'm exhausted. \n")
    assert final_answer("I'm exhausted.").kind == "text"  # type: ignore[union-attr]
    assert final_answer("") is None


def test_free_text_is_what_most_answers_are() -> None:
    assert is_free_text(["text", "text", "number"])
    assert not is_free_text(["text", "number"])  # half is not most
    assert not is_free_text(["text", None, None])  # no answer counts against
    assert not is_free_text([])


def test_similarity_is_chrf_in_the_unit_interval() -> None:
    assert similarity(TRANSLATIONS[0], TRANSLATIONS[0]) == pytest.approx(1.0)
    assert 0 <= similarity(TRANSLATIONS[2], TRANSLATIONS[0]) < similarity(*TRANSLATIONS[:2]) < 1
    assert similarity("", TRANSLATIONS[0]) == 0.0
    assert 0 < similarity("我累得能睡一个星期", "我累得可以睡一周") < 1  # any script


def test_the_most_central_text_is_the_one_the_others_agree_with() -> None:
    assert most_central(TRANSLATIONS, [1.0] * 4) in (0, 3)
    assert most_central(TRANSLATIONS, [1.0] * 4) != 2
    # weights say how much each other text counts: with the outlier alone trusted, the text
    # most like it wins
    outlier_like = [*TRANSLATIONS, "Bananas are yellow and very sweet."]
    assert most_central(outlier_like, [0.0, 0.0, 1.0, 0.0, 0.0]) == 4


def test_a_lone_identical_or_empty_set_never_raises() -> None:
    assert most_central(["only"], [0.3]) == 0
    assert most_central(["same", "same", "same"], [0.2, 0.9, 0.5]) == 1  # tie: the heaviest
    assert most_central(["", "", ""], [1.0, 1.0, 1.0]) == 0
    assert most_central(["a", "b"], [0.0, 0.0]) == 0


def test_many_long_samples_cost_a_bounded_number_of_comparisons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, str]] = []
    real = consensus.similarity

    def counted(hypothesis: str, reference: str) -> float:
        calls.append((hypothesis, reference))
        return real(hypothesis, reference)

    monkeypatch.setattr(consensus, "similarity", counted)
    texts = [f"answer {i} " + "word " * 2000 for i in range(64)]
    assert 0 <= most_central(texts, [1.0] * 64) < 64
    assert 64 <= len(calls) <= MAX_PAIRS  # each compared with at least one other
    # only the last MAX_CHARS characters are compared: where the answer stands
    tail = "z" * consensus.MAX_CHARS
    assert real("a" * 5000 + tail, "b" * 5000 + tail) == pytest.approx(1.0)


def test_self_consistency_over_free_text_answers_with_the_consensus() -> None:
    # the most confident sample is the outlier; a vote of four distinct lines would pick it
    samples = [
        scored(TRANSLATIONS[0], 0.5),
        scored(TRANSLATIONS[1], 0.5),
        scored(TRANSLATIONS[2], 0.9),
        scored(TRANSLATIONS[3], 0.5),
    ]
    *_, answer, result = run(ScriptedEngine(list(samples)), method="self_consistency", samples=4)
    assert answer in (TRANSLATIONS[0], TRANSLATIONS[3])
    assert result.chosen_by == "consensus"
    *_, best, result = run(ScriptedEngine(list(samples)), method="best_of_n", samples=4)
    assert best == TRANSLATIONS[2]
    assert result.chosen_by == "reward"
    # filtered to the top quarter, only the outlier is left to choose
    *_, filtered, _ = run(
        ScriptedEngine(list(samples)),
        method="self_consistency",
        samples=4,
        voting="filtered",
        keep=0.25,
    )
    assert filtered == TRANSLATIONS[2]
