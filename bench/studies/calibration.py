"""Does a reward know right from wrong?  ``python -m bench.eval --calibration``.

Samples ``--samples`` plain answers per problem on an engine loaded in this process (the
rewards need every token's top-k logprobs, which the HTTP API does not return for chat), scores
each answer with every reward, and reports per reward the AUROC of reward against correctness,
and at k answers per problem: pass@k (some answer right: the ceiling of any chooser), majority@k
(self-consistency), the most rewarded answer (best-of-n) and the reward-weighted vote.  What a
search can gain by trusting a reward is bounded by how well the reward ranks answers.

The answers so far are kept in ``NAME.records.json`` after every problem; a rerun with the same
name resumes from them (``--fresh`` starts over), and ``--report`` summarises them without
sampling (a run stopped early).

``--judge MODEL`` adds ``judge``, the P(True) of every stored answer asked of a second model
(:func:`judge_all`), to a run's records.

Rewards scored: ``p_true``, the model's own judgement of each answer (:func:`self_judge`), every
one of :data:`search.reward.REWARDS` (the windowed DeepConf ones at each
of :data:`WINDOWS`, named ``lowest_group/32``), ``last_step`` (the mean confidence of the last
step, where the answer is stated) and ``answer`` (the mean confidence of the tokens that spell
the final answer).  The choosers replayed are self-consistency's votes (:mod:`search.vote`):
``majority``, ``vote:R`` (weighted by reward R) and ``top50:R`` (the top half by R, weighted;
each share of :data:`FILTER_KEEPS`), beside best-of-n (``best:R``) and pass@k.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.inprocess import bench_engine, saved_records, user_prompt, write_results
from bench.problems import Problem
from bench.stats import auroc, wilson
from bench.studies.replays import (
    BUDGETS,
    DEFAULT_SAMPLES,
    ONLINE,
    ONLINE_WINDOW,
    STOPPING,
    budget_replay,
    choose,
    early_stopping,
    online_stopping,
)
from search.answer import count_tokens_within
from search.engine import Completion, Engine, GenerationRequest, Tokenizer
from search.extract import extract_answer
from search.params import SearchParams
from search.reward import REWARDS, WINDOWED, deepconf_confidence, mean_confidence
from search.steps import StepCutter
from search.tree import Step
from search.verifier import Verifier

logger = logging.getLogger("bench.studies.calibration")
_BOXED = re.compile(r"\\boxed\{")
WINDOWS = (16, 32, 64, 128)  # DeepConf's 2048 would cover a whole answer of this model's
FILTER_KEEPS = (0.25, 0.5, 0.75)  # the shares a filtered vote keeps, replayed as topNN:R


def answer_span(text: str, answer: str | None) -> tuple[int, int] | None:
    """Character span of the final answer in ``text``: the last ``\\boxed{...}``, else the last
    place the answer's text occurs; ``None`` when it cannot be found."""
    boxed = list(_BOXED.finditer(text))
    if boxed:
        start = boxed[-1].end()
        end = text.find("}", start)
        return start, end if end > start else len(text)
    if answer:
        start = text.rfind(answer)
        if start >= 0:
            return start, start + len(answer)
    return None


def rewards(completion: Completion, steps: list[Step], tokenizer: Tokenizer) -> dict[str, float]:
    """Every reward of one answer."""
    scored = [step for step in steps if step.confidences]
    span = answer_span(completion.text, extract_answer(completion.text))
    confidences = [c for step in steps for c in step.confidences]
    answer = scored[-1].confidences if scored else ()
    if span is not None:  # the tokens that end past the span's start and start before its end
        first = count_tokens_within(tokenizer, completion.token_ids, span[0] + 1) - 1
        last = count_tokens_within(tokenizer, completion.token_ids, span[1])
        answer = tuple(confidences[max(first, 0) : last]) or answer
    found = {name: REWARDS[name](WINDOWS[0])(steps) for name in REWARDS if name not in WINDOWED}
    for name in sorted(WINDOWED):
        found |= {f"{name}/{w}": REWARDS[name](w)(steps) for w in WINDOWS}
    return found | {
        "last_step": mean_confidence(scored[-1].confidences) if scored else 0.0,
        "answer": mean_confidence(answer),
    }


async def sample(
    engine: Engine, problem: Problem, args: argparse.Namespace, cutter: StepCutter
) -> list[dict[str, Any]]:
    """``args.samples`` answers to one problem, each with its answer, correctness and rewards."""
    prompt = user_prompt(engine, problem.prompt)
    request = GenerationRequest(
        prompt, args.max_tokens, n=args.samples, temperature=args.temperature, seed=args.seed
    )
    (completions,) = await engine.generate([request])
    judged = await self_judge(engine, problem.prompt).judge([c.text for c in completions])
    assert judged is not None  # no budget: nothing cuts the call
    records = []
    for completion, yes in zip(completions, judged, strict=True):
        answer = extract_answer(completion.text)
        steps = cutter.split(completion.token_ids, completion.logprobs)
        records.append(
            {
                "problem": problem.id,
                "answer": answer,
                "correct": answer == problem.gold,
                "tokens": len(completion.token_ids),
                "finish_reason": completion.finish_reason,
                "rewards": rewards(completion, steps, engine.tokenizer) | {"p_true": yes},
                "text": completion.text,  # for replays that read answers (consensus, a judge)
                # every token's DeepConf C, to replay a stop mid-answer (DeepConf online)
                "confidences": [round(deepconf_confidence(t), 4) for t in completion.logprobs],
            }
        )
    return records


def self_judge(engine: Engine, question: str) -> Verifier:
    """P(True) of answers to ``question`` on ``engine`` (:mod:`search.verifier`): the model
    that answered, or a judge beside it, asked in a chat whether each answer is correct."""
    template: Callable[[list[dict[str, Any]]], list[int]] = engine.tokenizer.apply_chat_template  # type: ignore[attr-defined]
    return Verifier.in_chat(engine, template, [{"role": "user", "content": question}])


def report(
    records: list[dict[str, Any]], samples: int, title: str, bound: int
) -> tuple[str, dict[str, Any]]:
    """Markdown tables and their numbers: AUROC per reward; accuracy per chooser and k; early
    stopping; and at each client budget up to ``bound`` (the answers' own), none against the
    default."""
    names = list(records[0]["rewards"]) if records else []
    labels = [r["correct"] for r in records]
    aurocs = {n: auroc([r["rewards"][n] for r in records], labels) for n in names}
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_problem[r["problem"]].append(r)
    within: dict[str, float | None] = {}
    for n in names:  # among one problem's answers: what a chooser of that problem faces
        scores = [
            auroc([r["rewards"][n] for r in items], [r["correct"] for r in items])
            for items in by_problem.values()
        ]
        mixed = [a for a in scores if a is not None]
        within[n] = sum(mixed) / len(mixed) if mixed else None
    ks = sorted({k for k in (1, 2, 4, samples) if k <= samples})
    kinds = ("best", "vote", *(f"top{round(keep * 100)}" for keep in FILTER_KEEPS))
    rules = ["pass", "majority", *(f"{kind}:{n}" for kind in kinds for n in names)]
    accuracy: dict[str, dict[int, tuple[int, int]]] = {}
    for rule in rules:
        accuracy[rule] = {}
        for k in ks:
            hits = [choose(items[:k], rule) for items in by_problem.values()]
            accuracy[rule][k] = (sum(hits), len(hits))
    lines = [
        title,
        "",
        f"{len(records)} answers, {sum(labels)} right ({sum(labels) / max(len(labels), 1):.1%}).",
        "",
        "| reward | AUROC, all answers | AUROC within a problem (mean over mixed ones) |",
        "|---|---|---|",
        *(f"| {n} | {_num(aurocs[n])} | {_num(within[n])} |" for n in names),
        "",
        "| chooser | " + " | ".join(f"@{k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for rule in rules:
        cells = []
        for k in ks:
            right, total = accuracy[rule][k]
            low, high = wilson(right, total)
            cells.append(f"{right / max(total, 1):.1%} ({low:.0%}-{high:.0%})")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    stopping = [early_stopping(list(by_problem.values()), w, share) for w, share in STOPPING]
    lines += [
        "",
        f"Sampling that stops (of {samples}, in waves of w, once the leading answer holds a share "
        "of the votes or cannot be overtaken by the samples left; majority vote):",
        "",
        "| waves of | stop at share | accuracy (95% CI) | samples / problem | tokens / problem |",
        "|---|---|---|---|---|",
    ]
    for row in stopping:
        lines.append(
            f"| {row['wave']} | {row['share']} | {_accuracy(row)} | {row['samples']:.2f} "
            f"| {row['tokens']:.0f} |"
        )
    online = [
        online_stopping(list(by_problem.values()), *row)
        for row in ONLINE
        if row[1] <= samples and all("confidences" in r for r in records)
    ]
    if online:
        lines += [
            "",
            f"Samples that stop mid-answer (DeepConf online, window {ONLINE_WINDOW}): the first "
            "`warmup` of each problem's samples set the bar (the lowest window that `halt_keep` "
            "of them pass), each later one stops at its first window below it and votes only "
            "when none ended; majority vote:",
            "",
            "| warmup | samples | halt_keep | accuracy (95% CI) | halted / problem "
            "| tokens / problem |",
            "|---|---|---|---|---|---|",
        ]
        for row in online:
            lines.append(
                f"| {row['warmup']} | {row['samples']} | {row['halt_keep'] or '-'} | "
                f"{_accuracy(row)} | {row['halted']:.2f} | {row['tokens']:.0f} |"
            )
    budgeted = [budget_replay(list(by_problem.values()), b) for b in BUDGETS if b <= bound]
    if budgeted:
        lines += [
            "",
            "A client's `max_tokens` bounds the whole search: one sample (`none`) against the "
            f"default (self-consistency of {DEFAULT_SAMPLES}, in the server's waves), replayed "
            "from every sample of each problem in turn; an answer longer than its bound is cut "
            "and states what its text before the cut does; the difference's 95% bootstrap "
            "interval is over problems:",
            "",
            "| max_tokens | none | default | default - none (95% CI) | samples "
            "| tokens: none / default |",
            "|---|---|---|---|---|---|",
        ]
        for row in budgeted:
            lines.append(
                f"| {row['budget']} | {row['none']:.1%} | {row['default']:.1%} | "
                f"{row['difference']:+.1%} ({row['low']:+.1%} to {row['high']:+.1%}) | "
                f"{row['samples']:.2f} | {row['none_tokens']:.0f} / {row['tokens']:.0f} |"
            )
    numbers = {
        "auroc": aurocs,
        "accuracy": {r: {str(k): v for k, v in a.items()} for r, a in accuracy.items()},
        "stopping": stopping,
        "online": online,
        "budgets": budgeted,
    }
    return "\n".join(lines), numbers


def _accuracy(row: dict[str, Any]) -> str:
    """A replay's share of problems right, with its 95% Wilson interval."""
    low, high = wilson(row["right"], row["problems"])
    return f"{row['right'] / max(row['problems'], 1):.1%} ({low:.0%}-{high:.0%})"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def calibrate(problems: list[Problem], args: argparse.Namespace) -> None:
    """Sample every problem not yet in ``NAME.records.json`` on an engine loaded here (only
    summarise them with ``--report``), then write ``bench/results/<name>.{md,json}``."""
    partial, records = saved_records(args)
    model = args.model or "the default model"
    if not args.report:
        model = _sample_all(problems, args, records, partial)
    if args.judge:
        judge_all(problems, args, records, partial)
    title = (
        f"{model}: {args.samples} answers per problem, temperature "
        f"{args.temperature}, max_tokens {args.max_tokens}, seed {args.seed}"
    )
    asked = {p.id for p in problems}  # a --limit below the run's reports on its first ones
    reported = [r for r in records if r["problem"] in asked]
    text, numbers = report(reported, args.samples, title, args.max_tokens)
    write_results(args, model, text, numbers, reported)


def judge_all(
    problems: list[Problem], args: argparse.Namespace, records: list[dict[str, Any]], partial: Path
) -> None:
    """Score every stored answer not yet judged with ``judge``, the P(True) of ``args.judge``
    (a second model, on the same engine kind), one engine call per problem; ``partial`` is
    saved after each, so a rerun resumes."""
    prompts = {p.id: p.prompt for p in problems}
    todo: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if "judge" not in record["rewards"] and record["problem"] in prompts:
            todo[record["problem"]].append(record)
    if not todo:
        return
    engine = bench_engine(argparse.Namespace(**vars(args) | {"model": args.judge}))
    gate = asyncio.Semaphore(args.concurrency)

    async def one(problem: str, items: list[dict[str, Any]]) -> None:
        async with gate:
            judged = await self_judge(engine, prompts[problem]).judge([r["text"] for r in items])
        assert judged is not None  # no budget: nothing cuts the call
        for record, score in zip(items, judged, strict=True):
            record["rewards"]["judge"] = score
        partial.write_text(json.dumps(records, ensure_ascii=False))
        logger.info("judged %s (%d answers)", problem, len(items))

    async def run_all() -> None:
        await asyncio.gather(*(one(problem, items) for problem, items in todo.items()))

    try:
        asyncio.run(run_all())
    finally:
        engine.close()


def _sample_all(
    problems: list[Problem], args: argparse.Namespace, records: list[dict[str, Any]], partial: Path
) -> str:
    """Answer the problems not in ``records`` yet, appending to it and saving ``partial`` after
    every problem (a rerun resumes a killed run); the engine's model name."""
    engine = bench_engine(args)
    cutter = StepCutter(SearchParams(prompt_token_ids=(0,), granularity="step"), engine.tokenizer)
    gate = asyncio.Semaphore(args.concurrency)
    done_before = {r["problem"] for r in records}
    todo = [p for p in problems if p.id not in done_before]

    async def one(problem: Problem) -> None:
        async with gate:
            found = await sample(engine, problem, args, cutter)
        records.extend(found)
        partial.write_text(json.dumps(records, ensure_ascii=False))  # survives a kill
        right = sum(r["correct"] for r in found)
        done = len(records) // args.samples
        logger.info("%d/%d %s: %d/%d right", done, len(problems), problem.id, right, len(found))

    async def run_all() -> None:
        await asyncio.gather(*(one(p) for p in todo))

    try:
        asyncio.run(run_all())
    finally:
        engine.close()
    return engine.model_name
