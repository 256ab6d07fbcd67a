"""How ``self_consistency`` counts its samples' final answers: the request's ``voting``.

``majority`` gives each sample one vote (Wang et al.'s self-consistency).  ``weighted`` gives
each its reward (CISC, DeepConf offline), so a confident minority can outvote a shaky majority.
``filtered`` first drops all but the ``keep`` share of samples with the highest rewards, then
weighs the rest (DeepConf's filtering: the least confident traces are the likeliest wrong).
Only samples that state a final answer vote; ties go to the answer whose best sample is the
most rewarded.  The calibration (``bench.studies.calibration``) replays the same rules
offline.  Free-text answers, which a vote cannot count, are chosen by consensus
(:mod:`search.consensus`) under the same ``voting``: each sample's say weighted by its reward
unless ``majority``, and only the ``keep`` share if ``filtered``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from search.params import Voting


def elected(
    answers: Sequence[str | None], rewards: Sequence[float], voting: Voting, keep: float
) -> str | None:
    """The final answer the vote elects among samples' ``answers`` (``None`` where a sample
    states none) scored ``rewards``; ``None`` when no sample states one."""
    ballots = [(a, r) for a, r in zip(answers, rewards, strict=True) if a is not None]
    if voting == "filtered":
        ballots = [ballots[i] for i in most_rewarded([r for _, r in ballots], keep)]
    counts: dict[str, float] = {}
    best: dict[str, float] = {}
    for answer, reward in ballots:
        counts[answer] = counts.get(answer, 0.0) + (1.0 if voting == "majority" else reward)
        best[answer] = max(best.get(answer, reward), reward)
    return max(counts, key=lambda a: (counts[a], best[a]), default=None)


def most_rewarded(rewards: Sequence[float], keep: float) -> list[int]:
    """The indices of the ``keep`` share of ``rewards`` that are highest (at least one, when
    there are any), highest first; ties keep their order."""
    order = sorted(range(len(rewards)), key=lambda i: rewards[i], reverse=True)
    return order[: max(1, math.ceil(keep * len(rewards)))] if order else []
