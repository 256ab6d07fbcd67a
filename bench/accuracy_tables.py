"""The results blocks of accuracy runs, reward calibrations and open-ended runs
(``bench.eval``'s files), for :mod:`bench.pages`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from itertools import combinations
from typing import Any

from bench.stats import auroc, mcnemar, wilson
from bench.tables import (
    Selection,
    chosen,
    configs_line,
    interval,
    load,
    percent,
    selections,
    table,
)

CHOOSERS = {
    "pass": "pass@k (some answer right: the ceiling)",
    "majority": "majority (self-consistency)",
}


def accuracy_rows(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    """(run, config, summary row) triples as one table; a run column when there are several,
    a source column when a run asked more than one."""
    several_runs = len({run for run, _, _ in rows}) > 1
    several_sources = len({row["source"] for _, _, row in rows}) > 1
    header = ["run"] * several_runs + ["source"] * several_sources
    header += ["config", "problems", "right", "accuracy (95% CI)"]
    header += ["tokens / problem", "seconds / problem"]
    body = [
        [f"`{run}`"] * several_runs
        + [row["source"]] * several_sources
        + [config, str(row["problems"]), str(row["correct"])]
        + [f"{percent(row['accuracy'])} {interval(row['low'], row['high'])}"]
        + [f"{row['generated_tokens']:,.0f}", f"{row['seconds']:,.0f}"]
        for run, config, row in rows
    ]
    return table(header, body)


def summary(args: list[str], options: dict[str, str]) -> str:
    rows, used = [], []
    for name, configs in selections(args):
        run = load(name)
        by_config = defaultdict(list)
        for row in run["summary"]:
            by_config[row["config"]].append(row)
        for config in chosen(run, configs):
            rows += [(name.removesuffix(".json"), config, row) for row in by_config[config]]
            used.append((run, config))
    return accuracy_rows(rows) + "\n\n" + configs_line(used)


def answers(selected: list[Selection]) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """Each (file, config)'s outcomes by problem."""
    found: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for name, configs in selected:
        run = load(name)
        for config in chosen(run, configs):
            found[(name, config)] = {
                o["problem"]: o for o in run["outcomes"] if o["config"] == config
            }
    return found


def common(args: list[str], options: dict[str, str]) -> str:
    selected = selections(args)
    found = answers(selected)
    shared = set.intersection(*(set(outcomes) for outcomes in found.values()))
    rows = []
    for (name, config), outcomes in found.items():
        items = [outcomes[problem] for problem in shared]
        right = sum(o["correct"] for o in items)
        low, high = wilson(right, len(items))
        row = {
            "source": ", ".join(
                r["source"] for r in load(name)["summary"] if r["config"] == config
            ),
            "problems": len(items),
            "correct": right,
            "accuracy": right / len(items),
            "low": low,
            "high": high,
            "generated_tokens": sum(o["generated_tokens"] for o in items) / len(items),
            "seconds": sum(o["seconds"] for o in items) / len(items),
        }
        rows.append((name.removesuffix(".json"), config, row))
    used = [(load(name), config) for name, config in found]
    return accuracy_rows(rows) + "\n\n" + configs_line(used)


def pairs(args: list[str], options: dict[str, str]) -> str:
    """Each two of the first file's configs on the problems all of them answered (exact
    McNemar), a column per file and, with several, one that pools them."""
    selected = selections(args)
    configs = chosen(load(selected[0][0]), selected[0][1])
    columns: list[tuple[str, dict[str, dict[str, bool]]]] = []
    for name, asked in selected:
        found = answers([(name, asked or configs)])
        shared = set.intersection(*(set(outcomes) for outcomes in found.values()))
        sources = ", ".join(dict.fromkeys(row["source"] for row in load(name)["summary"]))
        correct = {c: {k: o[k]["correct"] for k in shared} for (_, c), o in found.items()}
        columns.append((f"{sources}, {len(shared)} problems", correct))
    if len(columns) > 1:
        pooled = {c: {k: v for _, column in columns for k, v in column[c].items()} for c in configs}
        columns.append(("together", pooled))
    body = []
    for a, b in combinations(configs, 2):
        cells = []
        for _, column in columns:
            problems = sorted(column[a])
            a_only, b_only, p = mcnemar(
                [column[a][k] for k in problems], [column[b][k] for k in problems]
            )
            cells.append(f"{a_only} to {b_only} (p {round(p, 2)})")
        body.append([f"{a} vs {b}", *cells])
    return table(["a vs b (only a right to only b right)", *(label for label, _ in columns)], body)


def reported_pairs(run: dict[str, Any]) -> str:
    """The pairs an eval run reported, each on the problems both of its configs answered."""
    counts = ("problems", "a_only", "b_only")
    body = [
        [f"{p['a']} vs {p['b']}", *(str(p[k]) for k in counts), f"{p['p']:.2f}"]
        for p in run["pairs"]
    ]
    header = ["a vs b", "problems", "only a right", "only b right", "McNemar p"]
    return table(header, body)


def calibration(args: list[str], options: dict[str, str]) -> str:
    """The AUROC of each reward against correctness (over all answers, and within a problem,
    which is what a chooser of one problem's answers faces), then each chooser at k answers."""
    ((name, _),) = selections(args)
    run = load(name)
    records = run["records"]
    by_problem = defaultdict(list)
    for record in records:
        by_problem[record["problem"]].append(record)
    rewards = []
    for reward, overall in run["auroc"].items():
        scores = [
            auroc([r["rewards"][reward] for r in items], [r["correct"] for r in items])
            for items in by_problem.values()
        ]
        mixed = [s for s in scores if s is not None]
        within = f"{sum(mixed) / len(mixed):.3f}" if mixed else "-"
        rewards.append([f"`{reward}`", f"{overall:.3f}", within])
    ks = options.get("k", ",".join(next(iter(run["accuracy"].values())))).split(",")
    rules = options.get("choosers", ",".join(run["accuracy"])).split(",")
    choosers = []
    for rule in rules:
        cells = []
        for k in ks:
            right, total = run["accuracy"][rule][k]
            cells.append(percent(right / total))
        cells[-1] += " " + interval(*wilson(right, total))
        choosers.append([CHOOSERS.get(rule, f"`{rule}`"), *cells])
    right = sum(r["correct"] for r in records)
    return "\n\n".join(
        [
            f"{len(by_problem)} problems, {len(records)} answers, {right} right "
            f"({percent(right / len(records))}).",
            table(["reward", "AUROC, all answers", "AUROC within a problem"], rewards),
            table(["chooser, of k answers", *(f"@{k}" for k in ks)], choosers),
        ]
    )


def replayed(
    args: list[str], key: str, note: str, header: list[str], cells: Callable[[Any], list[str]]
) -> str:
    """The rows a calibration's replay ``key`` saved, one line of cells each, after a line
    saying how many problems and ``note``."""
    ((name, _),) = selections(args)
    rows = load(name)[key]
    body = [cells(r) for r in rows]
    return f"{rows[0]['problems']} problems, {note}.\n\n" + table(header, body)


def budgets(args: list[str], options: dict[str, str]) -> str:
    """One sample against the default at each client budget, replayed from a calibration's
    answers (bench/studies/replays.py's ``budget_replay``)."""
    header = ["max_tokens", "none", "default", "default - none, points (95% CI)", "samples"]
    return replayed(
        args,
        "budgets",
        "every stored answer replayed first in turn",
        [*header, "tokens: none / default"],
        lambda r: [
            str(r["budget"]),
            percent(r["none"]),
            percent(r["default"]),
            f"{100 * r['difference']:+.1f} ({100 * r['low']:+.1f} to {100 * r['high']:+.1f})",
            f"{r['samples']:.2f}",
            f"{r['none_tokens']:.0f} / {r['tokens']:.0f}",
        ],
    )


def online(args: list[str], options: dict[str, str]) -> str:
    """Samples that stop mid-answer against finishing them, replayed from a calibration's
    answers (bench/studies/replays.py's ``online_stopping``)."""
    header = ["warmup", "samples", "halt_keep", "accuracy (95% CI)", "halted / problem"]
    return replayed(
        args,
        "online",
        "majority vote",
        [*header, "tokens / problem"],
        lambda r: [
            str(r["warmup"]),
            str(r["samples"]),
            str(r["halt_keep"] or "- (all finished)"),
            f"{percent(r['right'] / r['problems'])} {interval(*wilson(r['right'], r['problems']))}",
            f"{r['halted']:.2f}",
            f"{r['tokens']:.0f}",
        ],
    )


def open_ended(args: list[str], options: dict[str, str]) -> str:
    """An open-ended run's configs (``bench.eval --open``): corpus chrF with its 95% bootstrap
    interval, the paired bootstrap's p against the first config, mean item chrF, length.
    Several runs (other seeds) are pooled into one corpus, paired against the first config
    named."""
    if len(args) > 1:
        return pooled_open(args)
    ((name, configs),) = selections(args)
    run = load(name)
    rows = {r["config"]: r for r in run["summary"]}
    labels = chosen(run, configs)
    first = run["summary"][0]["config"]  # what every p is against
    body = [
        [
            f"`{label}`",
            f"{r['chrf']:.1f} (±{r['ci']:.1f})",
            "-" if r["p"] is None else f"{r['p']:.3f}",
            f"{r['item_chrf']:.1f}",
            f"{r['words']:.1f}",
            f"{r['generated_tokens']:,.0f}",
        ]
        for label in labels
        for r in [rows[label]]
    ]
    flags = run["args"]
    header = ["config", "corpus chrF (95% CI)", f"p vs {first}", "item chrF", "words", "tokens"]
    return "\n\n".join(
        [
            f"{run['model']}, `{flags['open']}`, {rows[first]['items']} items, seed "
            f"{flags['seed']}, temperature {flags['temperature']}.",
            table(header, body),
            configs_line((run, label) for label in labels),
        ]
    )


def pooled_open(args: list[str]) -> str:
    """Open-ended runs of one task pooled: each config's corpus chrF over all their items."""
    from bench.openended import pooled

    runs = [load(name) for name, _ in selections(args)]
    labels = selections(args)[0][1] or chosen(runs[0], [])
    rows = pooled(runs, labels)
    body = [
        [
            f"`{r['config']}`",
            f"{r['chrf']:.1f} (±{r['ci']:.1f})",
            "-" if r["p"] is None else f"{r['p']:.3f}",
        ]
        for r in rows
    ]
    seeds = ", ".join(str(run["args"]["seed"]) for run in runs)
    return "\n\n".join(
        [
            f"{runs[0]['model']}, `{runs[0]['args']['open']}`, seeds {seeds} pooled: "
            f"{rows[0]['items']} answers per config.",
            table(["config", "corpus chrF (95% CI)", f"p vs {labels[0]}"], body),
        ]
    )


def eval_run(name: str, run: dict[str, Any]) -> list[str]:
    flags = run["args"]
    note = (
        f"{run['model']}, seed {flags['seed']}, temperature {flags['temperature']} (unless a "
        f"config sets it), max_tokens {flags['max_tokens']}, {flags['concurrency']} requests "
        "at once."
    )
    parts = [note, summary([name], {})]
    if run["pairs"]:
        parts.append(reported_pairs(run))
    return parts
