"""Choosing one of several whole answers: best-of-n's rule (the most rewarded) and
self-consistency's (a vote over final answers, or consensus over free text), shared by the
sampling methods and by MCTS when every child of its root is a whole answer.

A sample cut at its token bound states no final answer, so the answers that ended are chosen
among first (all of them when none did).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from search.consensus import is_free_text, most_central
from search.events import ChosenBy
from search.extract import answer_region, final_answer
from search.params import Voting
from search.vote import elected, most_rewarded


class WholeAnswer(Protocol):
    """What the rules read of an answer: its text, whether the model ended it, its reward."""

    @property
    def text(self) -> str: ...

    @property
    def ended(self) -> bool: ...

    @property
    def reward(self) -> float: ...


A = TypeVar("A", bound=WholeAnswer)


def highest_reward(answers: list[A]) -> A:
    """Best-of-n: the most rewarded answer that ended, else the most rewarded."""
    return max(answers, key=lambda a: (a.ended, a.reward))


def ended(answers: list[A]) -> list[A]:
    """The answers the model ended itself (not cut at a token bound)."""
    return [a for a in answers if a.ended]


def vote(answers: list[A], voting: Voting, keep: float) -> tuple[A, ChosenBy]:
    """Self-consistency: the elected final answer's best sample, among the answers that ended
    (all, when none did); the best of them when none states a final answer; the consensus
    sample when most answers are free text.  And which of the three it was."""
    answers = ended(answers) or answers
    found = [final_answer(a.text) for a in answers]
    if is_free_text([f.kind if f else None for f in found]):
        return consensus(answers, voting, keep), "consensus"
    values = [f.value if f else None for f in found]
    winner = elected(values, [a.reward for a in answers], voting, keep)
    if winner is None:
        return highest_reward(answers), "reward"
    chosen = [a for a, v in zip(answers, values, strict=True) if v == winner]
    return highest_reward(chosen), "vote"


def consensus(answers: list[A], voting: Voting, keep: float) -> A:
    """The answer closest to the others (:func:`search.consensus.most_central`), each other's
    say its reward unless ``voting`` is ``majority``, among the ``keep`` most rewarded if it is
    ``filtered``."""
    if voting == "filtered":
        answers = [answers[i] for i in most_rewarded([a.reward for a in answers], keep)]
    texts = [answer_region(a.text) for a in answers]
    weights = [1.0 if voting == "majority" else a.reward for a in answers]
    return answers[most_central(texts, weights)]
