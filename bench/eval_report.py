"""What an accuracy run reports (:mod:`bench.eval`): each config's accuracy with its 95% Wilson
interval, tokens and seconds per problem, each two configs paired (exact McNemar), as
``NAME.md``, ``NAME.json`` and the accuracy-against-tokens plot ``NAME.png``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from bench.eval import Ledger, Outcome
from bench.problems import Problem
from bench.stats import mcnemar, wilson


def summarise(outcomes: Sequence[Outcome], sources: dict[str, str]) -> list[dict[str, Any]]:
    """Accuracy with its Wilson interval, tokens and seconds, per source x configuration."""
    groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[(sources[outcome.problem], outcome.config)].append(outcome)
    rows = []
    for (source, config), items in groups.items():
        right = sum(o.correct for o in items)
        low, high = wilson(right, len(items))
        rows.append(
            {
                "source": source,
                "config": config,
                "problems": len(items),
                "correct": right,
                "accuracy": right / len(items),
                "low": low,
                "high": high,
                "generated_tokens": sum(o.generated_tokens for o in items) / len(items),
                "seconds": sum(o.seconds for o in items) / len(items),
            }
        )
    return rows


def pairs(outcomes: Sequence[Outcome], sources: dict[str, str]) -> list[dict[str, Any]]:
    """Each two configurations of a source on the problems both answered: McNemar."""
    by: dict[str, dict[str, dict[str, bool]]] = defaultdict(lambda: defaultdict(dict))
    for o in outcomes:
        by[sources[o.problem]][o.config][o.problem] = o.correct
    rows = []
    for source, configs in by.items():
        for a, b in combinations(configs, 2):
            shared = sorted(configs[a].keys() & configs[b].keys())
            if not shared:
                continue
            a_only, b_only, p = mcnemar(
                [configs[a][k] for k in shared], [configs[b][k] for k in shared]
            )
            rows.append(
                {
                    "source": source,
                    "a": a,
                    "b": b,
                    "problems": len(shared),
                    "a_only": a_only,
                    "b_only": b_only,
                    "difference": (a_only - b_only) / len(shared),
                    "p": p,
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]], pair_rows: list[dict[str, Any]], note: str) -> str:
    """The summary and the paired comparisons as markdown tables."""
    lines = [
        note,
        "",
        "| source | config | problems | accuracy (95% CI) | tokens / problem | seconds / problem |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['source']} | {r['config']} | {r['problems']} | {r['accuracy']:.1%} "
        f"({r['low']:.0%}-{r['high']:.0%}) | {r['generated_tokens']:.0f} | {r['seconds']:.1f} |"
        for r in rows
    ]
    lines += [
        "",
        "| source | a vs b | problems | only a right | only b right | a - b | McNemar p |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['source']} | {r['a']} vs {r['b']} | {r['problems']} | {r['a_only']} | "
        f"{r['b_only']} | {r['difference']:+.1%} | {r['p']:.3f} |"
        for r in pair_rows
    ]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy (with its interval) against tokens spent, one point per row, named in the
    legend (labels beside points that share a budget crossed over)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    several = len({r["source"] for r in rows}) > 1
    for row in rows:
        x, y = row["generated_tokens"], 100 * row["accuracy"]
        errors = [[max(0.0, y - 100 * row["low"])], [max(0.0, 100 * row["high"] - y)]]
        label = f"{row['config']} ({row['source']})" if several else row["config"]
        axes.errorbar(x, y, yerr=errors, fmt="o", capsize=3, label=f"{label}: {y:.1f}%")
    axes.legend(fontsize=9)
    axes.set_xscale("log")
    axes.set_xlabel("tokens generated per problem (log)")
    axes.set_ylabel("accuracy (%), 95% Wilson interval")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def report(ledger: Ledger, problems: list[Problem], stem: Path) -> None:
    """Tables of the ledger's answers to ``problems``: printed, and ``stem`` .md/.png/.json."""
    sources = {p.id: p.source for p in problems}
    outcomes = [o for o in ledger.outcomes.values() if o.problem in sources]
    rows, pair_rows = summarise(outcomes, sources), pairs(outcomes, sources)
    run = ledger.meta["args"]
    note = (
        f"{ledger.meta['model']}, seed {run['seed']}, temperature {run['temperature']} (unless a "
        f"config sets it), max_tokens {run['max_tokens']}, {run['concurrency']} requests at once. "
        "Configs: " + "; ".join(f"`{spec}`" for spec in ledger.meta["configs"].values())
    )
    text = markdown(rows, pair_rows, note)
    print(text)
    ledger.save({"summary": rows, "pairs": pair_rows})
    stem.with_suffix(".md").write_text(text + "\n")
    answered = len({o.problem for o in ledger.outcomes.values()})
    plot(rows, stem.with_suffix(".png"), f"{ledger.meta['model']}: {answered} problems")
