"""The statistics an accuracy table needs: a 95% interval for a proportion (Wilson), the paired
test of two methods on the same problems (exact McNemar), a bootstrap interval of a mean, and
how well a score ranks right answers above wrong ones (AUROC).  Standard library only: a few
lines each."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``successes / trials``; ``(0, 1)`` for no trials.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 or all successes,
    which small accuracy tables hit.
    """
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    shrink = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / shrink
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / shrink
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int, float]:
    """Exact McNemar test of paired outcomes: ``(a_only, b_only, two-sided p)``.

    Only the problems the two disagree on carry information; under "no difference" each is
    equally likely to favour either, so the p-value is a binomial tail with p = 1/2.
    """
    if len(a) != len(b):
        raise ValueError("paired outcomes must be equally many")
    a_only = sum(x and not y for x, y in zip(a, b, strict=True))
    b_only = sum(y and not x for x, y in zip(a, b, strict=True))
    n = a_only + b_only
    if n == 0:
        return 0, 0, 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2**n
    return a_only, b_only, min(1.0, 2 * tail)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a random right answer scores above a random wrong one (ties count
    half); ``None`` when either class is empty (nothing to rank)."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in positives for q in negatives)
    return wins / (len(positives) * len(negatives))


def mean_interval(
    values: Sequence[float], resamples: int = 4000, seed: int = 0
) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the mean of ``values`` (e.g. per-problem paired
    differences: the problems are what is sampled, not the replays of one problem)."""
    if not values:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    size = len(values)
    means = sorted(sum(rng.choices(values, k=size)) / size for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]
