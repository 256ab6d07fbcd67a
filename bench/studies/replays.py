"""Replays of a calibration's stored answers (``NAME.records.json``), no engine needed: what a
chooser would have picked at k answers, and what self-consistency would have cost and scored
had it stopped early (a vote that settles), stopped samples mid-answer (DeepConf online), or
been held to a client's ``max_tokens``; :mod:`bench.studies.calibration` reports them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.stats import mean_interval
from search.extract import extract_answer
from search.halting import LowWindow, bar, lowest_window
from search.methods.sampling import next_wave
from search.params import SearchParams, Voting
from search.vote import elected

STOPPING = ((1, 1.0), (2, 1.0), (2, 0.6), (4, 0.75), (8, 1.0))  # (wave, share) replayed
# (warm-up, samples, halt_keep) replayed as DeepConf online; None: every sample finished
ONLINE = ((2, 4, None), (2, 4, 0.9), (2, 4, 0.5), (4, 8, None), (4, 8, 0.9), (4, 8, 0.5))
ONLINE_WINDOW = 32  # the window whose tail ranked answers best (docs/selection.md)
BUDGETS = (256, 512, 1024)  # a client's max_tokens, replayed up to the run's own bound
DEFAULT_SAMPLES = SearchParams.__dataclass_fields__["samples"].default


def choose(records: list[dict[str, Any]], rule: str) -> bool:
    """Whether the answer one rule picks from ``records`` (one problem's) is right."""
    if rule == "pass":
        return any(r["correct"] for r in records)
    kind, _, reward = rule.partition(":")
    records = [r for r in records if r["finish_reason"] == "stop"] or records  # as the server
    if kind == "best":
        return bool(max(records, key=lambda r: r["rewards"][reward])["correct"])
    voting: Voting = "majority" if kind == "majority" else "weighted"
    keep = 1.0
    if kind.startswith("top"):
        voting, keep = "filtered", int(kind[3:]) / 100
    scores = [r["rewards"][reward or "confidence"] for r in records]
    top = elected([r["answer"] for r in records], scores, voting, keep)
    return top is not None and any(r["correct"] for r in records if r["answer"] == top)


def budget_replay(problems: list[list[dict[str, Any]]], budget: int) -> dict[str, Any]:
    """One sample against the default's waves (:func:`search.methods.sampling.next_wave`) at a
    client's ``max_tokens`` of ``budget``, replayed from each stored answer of every problem in
    turn: the mean accuracy of each, and of their difference per problem with its interval."""
    none_right, default_right, differences = [], [], []
    drawn = tokens = none_tokens = 0.0
    for records in problems:
        replays = [records[start:] + records[:start] for start in range(len(records))]
        one = [_within(order[0], budget) for order in replays]
        waves = [_waves(order, budget) for order in replays]
        none_right.append(sum(r["correct"] for r in one) / len(replays))
        default_right.append(sum(choose(t, "majority") for t in waves) / len(replays))
        differences.append(default_right[-1] - none_right[-1])
        none_tokens += sum(r["tokens"] for r in one) / len(replays)
        drawn += sum(len(t) for t in waves) / len(replays)
        tokens += sum(r["tokens"] for t in waves for r in t) / len(replays)
    count = max(len(problems), 1)
    low, high = mean_interval(differences)
    return {
        "budget": budget,
        "problems": len(problems),
        "none": sum(none_right) / count,
        "default": sum(default_right) / count,
        "difference": sum(differences) / count,
        "low": low,
        "high": high,
        "samples": drawn / count,
        "tokens": tokens / count,
        "none_tokens": none_tokens / count,
    }


def _within(record: dict[str, Any], bound: int) -> dict[str, Any]:
    """A stored answer as a sample bounded at ``bound`` tokens gets it: itself if it ended
    within the bound, else cut there.  A cut answer states what the text before the cut does
    (its characters in the share of tokens kept: a few tokens either way), right only if the
    whole answer was right and states the same; without the text, nothing."""
    if record["finish_reason"] == "stop" and record["tokens"] <= bound:
        return record
    answer = None
    if "text" in record:
        text = record["text"]
        answer = extract_answer(text[: len(text) * bound // max(record["tokens"], 1)])
    correct = record["correct"] and answer is not None and answer == record["answer"]
    return record | {
        "answer": answer,
        "correct": correct,
        "finish_reason": "length",
        "tokens": bound,
    }


def _waves(order: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The default's samples at ``budget``, drawn from ``order`` in the server's waves."""
    taken: list[dict[str, Any]] = []
    left = budget
    while wave := next_wave(
        DEFAULT_SAMPLES - len(taken),
        left,
        budget,
        max((r["tokens"] for r in taken if r["finish_reason"] == "stop"), default=None),
    ):
        drawn = [_within(r, min(budget, left // wave)) for r in order[len(taken) :][:wave]]
        taken += drawn
        left -= sum(r["tokens"] for r in drawn)
    return taken


def online_stopping(
    problems: list[list[dict[str, Any]]], warmup: int, samples: int, halt_keep: float | None
) -> dict[str, Any]:
    """Replay DeepConf online as ``self_consistency`` runs it (:mod:`search.halting`) over each
    problem's first ``samples`` stored answers: the first ``warmup`` whole set the bar, each
    later one is cut where it would have stopped; the majority's accuracy, and the samples
    halted and the tokens spent per problem."""
    right = halted = tokens = 0
    for records in problems:
        taken = records[:samples]
        if halt_keep is not None:
            lows = [lowest_window(r["confidences"], ONLINE_WINDOW) for r in taken[:warmup]]
            halt = LowWindow(ONLINE_WINDOW, bar(lows, halt_keep))
            later = []
            for r in taken[warmup:]:
                end = halt.halted_at(r["confidences"], r["finish_reason"] == "stop")
                # a sample cut at its bound where its last window fell short was not halted
                stopped = end is not None and end < r["tokens"]
                later.append(_within(r, end) if stopped else r)
                halted += stopped
            taken = taken[:warmup] + later
        right += choose(taken, "majority")
        tokens += sum(r["tokens"] for r in taken)
    count = max(len(problems), 1)
    return {
        "warmup": warmup,
        "samples": samples,
        "halt_keep": halt_keep,
        "problems": len(problems),
        "right": right,
        "halted": halted / count,
        "tokens": tokens / count,
    }


def early_stopping(problems: list[list[dict[str, Any]]], wave: int, share: float) -> dict[str, Any]:
    """Replay sampling in waves of ``wave`` over each problem's stored answers, in order: stop
    once the majority's leader holds ``share`` of at least two votes cast (1.0: all of them
    agree), or when the samples left could not overtake it; the accuracy of the majority at
    the stop, and the samples and tokens it took."""
    right = drawn = tokens = 0
    for records in problems:
        taken = records[:wave]
        while len(taken) < len(records) and not _settled(taken, len(records) - len(taken), share):
            taken = records[: len(taken) + wave]
        right += choose(taken, "majority")
        drawn += len(taken)
        tokens += sum(r["tokens"] for r in taken)
    count = max(len(problems), 1)
    return {
        "wave": wave,
        "share": share,
        "problems": len(problems),
        "right": right,
        "samples": drawn / count,
        "tokens": tokens / count,
    }


def _settled(taken: list[dict[str, Any]], left: int, share: float) -> bool:
    """Whether the answers drawn so far settle the vote (see :func:`early_stopping`)."""
    votes = Counter(r["answer"] for r in taken if r["answer"] is not None)
    if not votes:
        return False
    lead, runner = [*(count for _, count in votes.most_common(2)), 0][:2]
    cast = sum(votes.values())
    return lead > runner + left or (cast >= 2 and lead >= share * cast)
