"""Which costs less for ``n`` answers at equal quality: ``n`` searches, or the ``n`` best distinct
finished paths of one search?  ``python -m bench.eval --choices N --config ...``.

ponder answers a request for ``n`` choices with ``n`` searches run at once (``search.choices``).
The alternative spends one search's tokens and returns, beside its answer, the most rewarded
other paths that ended (MCTS: rollouts that reached the end of the answer; best-of-n and
self-consistency: the other samples).  Both are measured here on an engine loaded in this
process (the finished paths live inside the search, not in the API), on the same problems and
seeds: the ``n`` searches are exactly the ``n`` choices the server would run, and the one search
is their choice 0, so both sides share its answer.  Two ways of picking the other paths:
distinct text, and distinct final answers (more likely to add a right answer that choice 0
missed, less likely to be right each).

Per configuration: the mean accuracy of a choice, pass@n (some choice right, what a client that
checks answers gets) and generated tokens per request.  Records are kept in
``NAME.records.json`` after every problem; a rerun resumes from them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.eval import Config, answer_budget
from bench.inprocess import bench_engine, saved_records, user_prompt, write_results
from bench.problems import Problem
from bench.stats import wilson
from search import Finished, SearchParams, SearchResult
from search.budget import Budget
from search.choices import choice_seed
from search.engine import Engine
from search.extract import extract_answer
from search.methods import METHODS
from search.methods.mcts import MctsRun
from search.methods.sampling import SamplingRun
from search.run import SearchRun
from search.vote import elected

logger = logging.getLogger("bench.studies.choices")
PICKS = ("searches", "paths", "answers")  # n searches; one search's distinct paths / answers


def finished_paths(run: SearchRun) -> list[tuple[float, tuple[int, ...]]]:
    """Every path of ``run`` that reached the end of an answer, as (reward, token ids), the most
    rewarded first."""
    if isinstance(run, MctsRun):
        found = [
            (t.reward, (*t.node.path_token_ids(), *t.tail_token_ids)) for t in run.finished_rollouts
        ]
    elif isinstance(run, SamplingRun):
        found = [
            (node.value_sum, node.token_ids) for node in run.tree.root.children if node.terminal
        ]
    else:
        raise SystemExit(
            f"--choices measures mcts and the sampling methods, not {run.params.method}"
        )
    return sorted(found, key=lambda item: -item[0])


def pick(first: str, others: Sequence[str], n: int, key: Callable[[str], object]) -> list[str]:
    """``first`` and then the first of ``others`` whose ``key`` no chosen text has yet, until
    there are ``n``; texts already chosen are never repeated, whatever their key."""
    chosen, keys = [first], {key(first)}
    for text in others:
        if len(chosen) == n:
            break
        if text not in chosen and key(text) not in keys:
            chosen.append(text)
            keys.add(key(text))
    return chosen


async def _search(params: SearchParams, engine: Engine) -> tuple[SearchRun, SearchResult]:
    """One search to its end, as ``run_search`` runs it, and the run (for its finished paths)."""
    run = METHODS[params.method](params, engine, random.Random(params.seed), Budget(params, None))
    async for event in run.events():
        if isinstance(event, Finished):
            return run, event.result
    raise AssertionError("a search ended without its Finished event")


async def answer(
    engine: Engine, problem: Problem, config: Config, args: argparse.Namespace
) -> dict[str, Any]:
    """One problem under one configuration: the ``n`` searches' answers (at once, as the server
    runs them) and choice 0's distinct finished paths, each graded."""
    params = replace(
        SearchParams(prompt_token_ids=user_prompt(engine, problem.prompt)),
        temperature=config.request.get("temperature", args.temperature),
        max_tokens=config.request.get("max_tokens", args.max_tokens),
        seed=args.seed,
        **answer_budget(config, args.max_tokens),
    )
    runs = await asyncio.gather(
        *(
            _search(replace(params, seed=choice_seed(args.seed, i)), engine)
            for i in range(args.choices)
        )
    )
    decode = engine.tokenizer.decode
    texts = [decode(list(result.token_ids)) for _, result in runs]
    others = [decode(list(ids)) for _, ids in finished_paths(runs[0][0])]
    picked = {
        "searches": texts,
        "paths": pick(texts[0], others, args.choices, key=lambda text: text),
        "answers": pick(texts[0], others, args.choices, key=extract_answer),
    }
    return {
        "problem": problem.id,
        "config": config.label,
        "gold": problem.gold,
        "tokens": [result.generated_tokens for _, result in runs],
        "finished_paths": len(others),
        **{name: [extract_answer(text) for text in chosen] for name, chosen in picked.items()},
    }


def replay(records: list[dict[str, Any]], k: int, n: int, draws: int = 200) -> dict[str, Any]:
    """Self-consistency of ``k`` samples, ``n`` answers, replayed from calibration records
    (``bench.studies.calibration``: i.i.d. samples per problem with answer, correctness, tokens and
    confidence): ``n`` searches are ``n`` disjoint groups of ``k`` samples, one search is the
    first group and its most confident other samples (distinct answers: other answers first),
    and ``pooled`` one search of all ``n * k`` samples with its most confident others (the same
    tokens as ``n`` searches).
    Averaged over ``draws`` seeded shuffles of each problem's samples."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_problem.setdefault(record["problem"], []).append(record)
    rng = random.Random(0)
    totals = {
        name: [0.0, 0.0, 0.0] for name in (*PICKS, "pooled")
    }  # choice accuracy, pass@n, tokens
    for samples in by_problem.values():
        if len(samples) < n * k:
            raise SystemExit(f"{n} searches of {k} samples need {n * k} samples per problem")
        for _ in range(draws):
            order = rng.sample(samples, len(samples))
            groups = [order[i * k : (i + 1) * k] for i in range(n)]
            first, others = _majority(groups[0])
            distinct = [s for s in others if s["answer"] != first["answer"]]
            pooled, rest = _majority(order[: n * k])
            picked = {
                "searches": ([_majority(g)[0] for g in groups], n * k),
                "paths": ([first, *others][:n], k),
                "answers": ([first, *distinct, *(s for s in others if s not in distinct)][:n], k),
                "pooled": ([pooled, *rest][:n], n * k),
            }
            for name, (chosen, tokens) in picked.items():
                right = [s["correct"] for s in chosen]
                totals[name][0] += sum(right) / n
                totals[name][1] += any(right)
                totals[name][2] += sum(s["tokens"] for s in order[:tokens])
    draws_all = draws * len(by_problem)
    return {
        "problems": len(by_problem),
        **{name: [value / draws_all for value in sums] for name, sums in totals.items()},
    }


def _majority(samples: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Self-consistency's pick (:func:`search.methods.sampling.vote`) among records, and the
    other samples, the most confident first."""
    answers = [s["answer"] for s in samples]
    winner = elected(answers, [s["rewards"]["confidence"] for s in samples], "majority", 1.0)
    pool = [s for s in samples if s["answer"] == winner] if winner is not None else samples
    chosen = max(pool, key=lambda s: (s["finish_reason"] == "stop", s["rewards"]["confidence"]))
    rest = sorted(
        (s for s in samples if s is not chosen), key=lambda s: -s["rewards"]["confidence"]
    )
    return chosen, rest


def _label(pick: str, n: int) -> str:
    """How a table names a way of picking ``n`` answers."""
    return {
        "searches": f"{n} searches",
        "paths": "1 search, distinct paths",
        "answers": "1 search, distinct answers",
        "pooled": f"1 search of {n}x the samples",
    }[pick]


def table(records: list[dict[str, Any]], n: int) -> tuple[str, list[dict[str, Any]]]:
    """Per configuration and way of picking: mean choice accuracy, pass@n, tokens per request."""
    rows = []
    for label in dict.fromkeys(r["config"] for r in records):
        mine = [r for r in records if r["config"] == label]
        for name in PICKS:
            right = [[a == r["gold"] for a in r[name]] + [False] * (n - len(r[name])) for r in mine]
            hits, trials = sum(map(sum, right)), n * len(mine)
            passed = sum(map(any, right))
            spent = [sum(r["tokens"]) if name == "searches" else r["tokens"][0] for r in mine]
            rows.append(
                {
                    "config": label,
                    "pick": name,
                    "problems": len(mine),
                    "choice_accuracy": hits / trials,
                    "choice_ci": wilson(hits, trials),
                    "choice0_accuracy": sum(r[0] for r in right) / len(mine),
                    "pass_at_n": passed / len(mine),
                    "pass_ci": wilson(passed, len(mine)),
                    "tokens": sum(spent) / len(mine),
                    "short": sum(len(r[name]) < n for r in mine),
                }
            )
    lines = [
        f"| config | n answers from | problems | a choice right (95% CI) | choice 0 right "
        f"| some choice right (pass@{n}) | tokens / request | requests with < {n} answers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lo, hi = row["choice_ci"]
        plo, phi = row["pass_ci"]
        lines.append(
            f"| {row['config']} | {_label(row['pick'], n)} | {row['problems']} "
            f"| {row['choice_accuracy']:.1%} ({lo:.0%}-{hi:.0%}) | {row['choice0_accuracy']:.1%} "
            f"| {row['pass_at_n']:.1%} ({plo:.0%}-{phi:.0%}) | {row['tokens']:.0f} "
            f"| {row['short']} |"
        )
    return "\n".join(lines), rows


def compare(problems: list[Problem], args: argparse.Namespace, configs: list[Config]) -> None:
    """Answer every (problem, configuration) not yet in ``NAME.records.json`` (only summarise
    with ``--report``), then write ``bench/results/<name>.{md,json}``."""
    partial, records = saved_records(args)
    model = args.model or "the default model"
    if not args.report:
        engine = bench_engine(args)
        model = engine.model_name
        done = {(r["problem"], r["config"]) for r in records}
        gate = asyncio.Semaphore(args.concurrency)

        async def one(problem: Problem, config: Config) -> None:
            async with gate:
                record = await answer(engine, problem, config, args)
            records.append(record)
            partial.write_text(json.dumps(records, ensure_ascii=False))  # survives a kill
            logger.info(
                "%d %s %s: %s (gold %s) tokens %s",
                len(records),
                problem.id,
                config.label,
                {k: record[k] for k in PICKS},
                problem.gold,
                record["tokens"],
            )

        async def run_all() -> None:
            await asyncio.gather(
                *(one(p, c) for p in problems for c in configs if (p.id, c.label) not in done)
            )

        try:
            asyncio.run(run_all())
        finally:
            engine.close()
    text, rows = table(records, args.choices)
    title = (
        f"{model}: n = {args.choices}, temperature {args.temperature}, max_tokens "
        f"{args.max_tokens}, seed {args.seed}, {args.concurrency} problems at once. Configs: "
        + "; ".join(f"`{c.spec}`" for c in configs)
    )
    write_results(args, model, f"{title}\n\n{text}", {"summary": rows}, records)


def main() -> None:
    """``python -m bench.studies.choices RECORDS... --samples K --n N``: the replay of
    self-consistency from calibration records (no engine), one table row per file and way of
    picking."""
    parser = argparse.ArgumentParser(description=replay.__doc__)
    parser.add_argument(
        "records", nargs="+", type=Path, help="bench.studies.calibration NAME.records.json"
    )
    parser.add_argument("--samples", type=int, default=4, help="samples per search (k)")
    parser.add_argument("--n", type=int, default=2, help="answers per request")
    args = parser.parse_args()
    print(
        f"| records | self_consistency, samples={args.samples}, n={args.n}: answers from "
        f"| problems | a choice right | some choice right (pass@{args.n}) | tokens / request |"
    )
    print("|---|---|---|---|---|---|")
    for path in args.records:
        found = replay(json.loads(path.read_text()), args.samples, args.n)
        for name in (*PICKS, "pooled"):
            accuracy, passed, tokens = found[name]
            print(
                f"| {path.name} | {_label(name, args.n)} | {found['problems']} "
                f"| {accuracy:.1%} | {passed:.1%} | {tokens:.0f} |"
            )


if __name__ == "__main__":
    main()
