"""The results tables of the README and docs/, rendered from ``bench/results/*.json``.

A table the docs show is a block, ``<!-- results: KIND ARG... -->`` ... ``<!-- /results -->``,
whose body this module writes from the JSON the benchmarks saved, so no number in it is typed
by hand.  ``python -m bench.pages`` rewrites every block in README.md and docs/*.md;
``--check`` only says which are stale (a test runs it).  mkdocs loads this file as a hook
(mkdocs.yml) and renders the blocks again as it builds, so the site is never staler than the
JSON.  An ARG is ``FILE`` (under bench/results/) or ``FILE:CONFIG,CONFIG`` (those configs, in
that order).  Kinds:

- ``summary FILE...``: an eval run's accuracy (95% Wilson interval), tokens and seconds per
  problem, each config over the problems it answered;
- ``common FILE...``: the same on only the problems every listed config answered;
- ``pairs FILE...``: each two configs on the problems all of them answered (exact McNemar),
  per file and pooled;
- ``calibration FILE``: a reward calibration's AUROCs and its choosers' accuracy at k answers
  (options ``k=1,4,8`` and ``choosers=pass,majority,...``);
- ``budgets FILE``: a calibration's replay of one sample against the default at each client
  ``max_tokens``;
- ``online FILE``: a calibration's replay of samples that stop mid-answer (DeepConf online);
- ``streaming FILE``: bench/streaming.py's first text of streamed default requests;
- ``speed DIR...``: ``make bench``'s headline numbers from one model's results folder;
- ``contention FILE...``, ``hotpath FILE...``: bench/contention.py's and bench/hotpath.py's;
- ``every``: every result file, for docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # mkdocs imports a hook by its path, outside the package
    sys.path.insert(0, str(ROOT))

from bench.stats import auroc, mcnemar, wilson  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- results: (.*?) -->\n).*?(<!-- /results -->)", re.DOTALL)
CHOOSERS = {
    "pass": "pass@k (some answer right: the ceiling)",
    "majority": "majority (self-consistency)",
}

Table = list[list[str]]
Selection = tuple[str, list[str]]  # a result file, and the configs asked of it (empty: all)


@cache
def load(name: str) -> dict[str, Any]:
    """A result file's JSON, read once per process (a build renders many blocks from it)."""
    data: dict[str, Any] = json.loads((RESULTS / name).read_text())
    return data


def table(header: list[str], rows: Table) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def percent(share: float) -> str:
    return f"{share:.1%}"


def interval(low: float, high: float) -> str:
    return f"({100 * low:.0f}-{100 * high:.0f}%)"


def cell(value: Any) -> str:
    """A number as the benchmarks print it (3 significant digits), anything else as text."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:#.3g}".rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, list):
        return "-".join(cell(v) for v in value)
    return str(value)


def selections(args: list[str]) -> list[Selection]:
    files = []
    for arg in args:
        name, _, configs = arg.partition(":")
        files.append((name, configs.split(",") if configs else []))
    return files


def chosen(run: dict[str, Any], configs: list[str]) -> list[str]:
    """The configs a block asks of a run, in its order; all the run's when it names none."""
    return configs or [row["config"] for row in run["summary"]]


def configs_line(items: Iterable[tuple[dict[str, Any], str]]) -> str:
    specs = dict.fromkeys(f"`{run['configs'][config]}`" for run, config in items)
    return "Configs: " + "; ".join(specs) + "."


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
    answers (bench/calibration.py's ``budget_replay``)."""
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
    answers (bench/calibration.py's ``online_stopping``)."""
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


def streaming(args: list[str], options: dict[str, str]) -> str:
    """Each streamed default request's wall time and first text (bench/streaming.py)."""
    ((name, _),) = selections(args)
    run = load(name)
    body = [
        [
            f"`{r['question']}`",
            str(r["seed"]),
            f"{r['wall_s']:.1f} s",
            f"{r['first_text_s']:.2f} s",
            percent(r["first_text_share"]),
            "yes" if r["same_answer_unstreamed"] else "no",
        ]
        for r in run["rows"]
    ]
    header = ["question", "seed", "wall time", "first text", "share of wall time"]
    return f"{run['model']}.\n\n" + table([*header, "answer = unstreamed"], body)


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


def speed(args: list[str], options: dict[str, str]) -> str:
    """One row per model: the engine's tokens/s by batch size, and what the search makes of
    it (against a naive driver, 8 searches at once, its own cost)."""
    body = []
    sizes: list[str] = []
    for folder in args:
        engines = [r for r in load(f"{folder}/engines.json")["rows"] if r["mode"] == "one call"]
        sizes = [str(r["sequences"]) for r in engines]
        naive = load(f"{folder}/naive.json")
        load_rows = {(r["clients"], r["mode"]): r for r in load(f"{folder}/load.json")["rows"]}
        together, alone = load_rows[(8, "concurrent")], load_rows[(8, "sequential")]
        overheads = [r["overhead_pct"] for r in load(f"{folder}/overhead.json")["rows"]]
        body.append(
            [
                load(f"{folder}/latency.json")["model"],
                " / ".join(f"{r['tokens_per_s']:.0f}" for r in engines),
                f"{naive['ponder_over_naive']:.2f}x ({naive['parallel_over_naive']:.2f}x)",
                f"{together['tokens_per_s'] / alone['tokens_per_s']:.2f}x",
                f"{sum(overheads) / len(overheads):.2f}%",
            ]
        )
    header = [
        "model (llama.cpp, Q4_K_M)",
        f"tokens/s at {' / '.join(sizes)} sequences",
        "MCTS vs a naive driver, tokens/s (`parallel=4`)",
        "8 searches at once vs one after another",
        "orchestration overhead (wall - engine time)",
    ]
    return table(header, body)


def contention(args: list[str], options: dict[str, str]) -> str:
    body = []
    for name in args:
        run = load(name)
        for row in run["rows"]:
            body.append(
                [f"`{name.removesuffix('.json')}`", run["model"], f"`{row['config']}`"]
                + [cell(row["busy0_tok_s"]), cell(row["busy1_tok_s"])]
                + [f"{row[key]:.0f}%" for key in ("busy_vs_idle_pct", "idle_vs_today_pct")]
            )
    header = ["run", "model", "config", "idle tok/s", "1 core busy", "busy/idle"]
    return table([*header, "idle vs `2:spin`"], body)


def hotpath(args: list[str], options: dict[str, str]) -> str:
    """Each sampling function's ms per row (median / least), then the engine's tokens/s and
    sampling's share of its time at each row count, one column per run."""
    runs = [load(name)["rows"] for name in args]
    measures = dict.fromkeys(r["measure"] for rows in runs for r in rows if r["ms_per_row"])
    body = []
    for measure in measures:
        cells = []
        for rows in runs:
            row = next((r for r in rows if r["measure"] == measure), None)
            cells.append(f"{row['ms_per_row']:.2f} / {row['least_ms_per_row']:.2f}" if row else "-")
        body.append([f"`{measure}`", *cells])
    engine = [[r for r in rows if r["sequences"]] for rows in runs]
    counts = " / ".join(str(r["sequences"]) for r in engine[0])
    body.append(
        [f"engine tokens/s at {counts} rows"]
        + [" / ".join(f"{r['tokens_per_s']:.1f}" for r in rows) for rows in engine]
    )
    body.append(
        [f"sampling's share of the engine's time at {counts} rows"]
        + [" / ".join(f"{r['sampling_pct']:.1f}" for r in rows) + "%" for rows in engine]
    )
    header = ["ms per row, median / least", *(f"`{name}`" for name in args)]
    return table(header, body)


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


def rows_table(rows: list[dict[str, Any]]) -> str:
    header = list(dict.fromkeys(key for row in rows for key in row))
    return table(header, [[cell(row.get(key)) for key in header] for row in rows])


def bench_run(name: str, run: dict[str, Any]) -> list[str]:
    facts = {k: v for k, v in run.items() if k not in ("rows", "summary", "records", "args")}
    parts = [", ".join(f"{k}: {cell(v)}" for k, v in facts.items())] if facts else []
    return [*parts, rows_table(run.get("rows") or run["summary"])]


def rows(args: list[str], options: dict[str, str]) -> str:
    """Benchmarks' rows as they were printed (:mod:`bench.report`'s files), with their facts."""
    return "\n\n".join(part for name in args for part in bench_run(name, load(name)))


def every(args: list[str], options: dict[str, str]) -> str:
    """Every summarised result file under its heading, grouped by what wrote it.  A run that
    has not reported yet (still running, or stopped) has no summary, and is left out."""
    groups: dict[str, list[str]] = {
        "Accuracy runs (`bench/eval.py`)": [],
        "Reward calibrations (`bench/eval.py --calibration`)": [],
        "Open-ended runs (`bench/eval.py --open`)": [],
        "Benchmarks (`make bench` and the studies)": [],
    }
    accuracy, calibrations, open_runs, benchmarks = groups.values()
    for path in sorted(RESULTS.rglob("*.json")):
        name = path.relative_to(RESULTS).as_posix()
        if name.endswith(".records.json"):  # a calibration's answers, summarised beside them
            continue
        run = load(name)
        if "auroc" in run:
            found, parts = calibrations, [calibration([name], {})]
        elif run.get("args", {}).get("open"):
            if "summary" not in run:
                continue
            found, parts = open_runs, [open_ended([name], {})]
        elif "configs" in run:
            if "summary" not in run:
                continue
            found, parts = accuracy, eval_run(name, run)
        else:
            found, parts = benchmarks, bench_run(name, run)
        found.append("\n\n".join([f"### {name.removesuffix('.json')}", *parts]))
    return "\n\n".join(f"## {group}\n\n" + "\n\n".join(runs) for group, runs in groups.items())


KINDS: dict[str, Callable[[list[str], dict[str, str]], str]] = {
    "summary": summary,
    "common": common,
    "pairs": pairs,
    "calibration": calibration,
    "budgets": budgets,
    "online": online,
    "streaming": streaming,
    "open": open_ended,
    "speed": speed,
    "contention": contention,
    "hotpath": hotpath,
    "rows": rows,
    "every": every,
}


def block(spec: str) -> str:
    """One block's body from its spec (``KIND ARG... key=value...``)."""
    kind, *words = spec.split()
    options = dict(w.split("=", 1) for w in words if "=" in w)
    return KINDS[kind]([w for w in words if "=" not in w], options)


def render(text: str) -> str:
    """``text`` with every results block's body rendered afresh."""
    return BLOCK.sub(lambda m: f"{m[1]}\n{block(m[2])}\n\n{m[3]}", text)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs' hook: each page is built with its blocks rendered from the JSON of now."""
    return render(markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list the stale pages")
    check = parser.parse_args().check
    stale = []
    for page in PAGES:
        text = page.read_text()
        fresh = render(text)
        if fresh != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not check:
                page.write_text(fresh)
    if stale:
        print(("stale: " if check else "rewrote: ") + ", ".join(stale))
    sys.exit(1 if stale and check else 0)


if __name__ == "__main__":
    main()
