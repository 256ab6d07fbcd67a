"""Consensus over free text: minimum Bayes risk, for answers a vote cannot count.

Self-consistency votes on final answers that are values (a number, a boxed or "answer is"
result: :func:`search.extract.final_answer`).  Translations, prose and code are not: two good
translations of one sentence rarely agree to the letter, so a vote of such answers is a tie of
ones and picks merely the most rewarded sample.  When most samples' final answers are free text,
the chosen sample is instead the one closest to all the others (minimum Bayes risk with chrF as
the utility; Kumar and Byrne 2004, Freitag et al. 2022): the answer the samples most agree on,
phrased as the most typical of them.  Each other sample's say can be weighted by its reward.

Bounded in time whatever the answers: each sample is compared by its last :data:`MAX_CHARS`
characters (where the answer stands), with at most :data:`MAX_PAIRS` comparisons in all.
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics.chrf import CHRF

from search.extract import AnswerKind

MAX_CHARS = 1000  # chrF of two 1,000-character texts: about 2 ms on one CPU core
MAX_PAIRS = 256
_CHRF = CHRF()


def is_free_text(kinds: Sequence[AnswerKind | None]) -> bool:
    """Whether most samples' final answers are free text (a sample with none counts against)."""
    return sum(kind == "text" for kind in kinds) * 2 > len(kinds)


def similarity(hypothesis: str, reference: str) -> float:
    """chrF of ``hypothesis`` against ``reference``, in ``[0, 1]``."""
    score = _CHRF.sentence_score(hypothesis[-MAX_CHARS:], [reference[-MAX_CHARS:]]).score
    return float(score) / 100


def most_central(texts: Sequence[str], weights: Sequence[float]) -> int:
    """The index of the text with the highest ``weights``-weighted mean similarity to the
    others: each is compared with the next ``MAX_PAIRS // len(texts)`` texts (cyclically, at
    least one), so that many samples cost no more than :data:`MAX_PAIRS` comparisons.  Ties go
    to the heavier text, then the earlier one; a lone text is its own consensus."""
    n = len(texts)
    if n < 2:
        return 0
    others = max(1, min(n - 1, MAX_PAIRS // n))

    def expected(i: int) -> float:
        pairs = [(i + k) % n for k in range(1, others + 1)]
        total = sum(weights[j] for j in pairs)
        if total <= 0:
            return 0.0
        return sum(weights[j] * similarity(texts[i], texts[j]) for j in pairs) / total

    scores = [expected(i) for i in range(n)]
    return max(range(n), key=lambda i: (scores[i], weights[i], -i))
