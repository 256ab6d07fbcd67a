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
- ``contention FILE...``, ``hotpath FILE...``: bench/studies/contention.py's and
  bench/studies/hotpath.py's;
- ``every``: every result file, for docs/results.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # mkdocs imports a hook by its path, outside the package
    sys.path.insert(0, str(ROOT))

from bench.accuracy_tables import (  # noqa: E402
    budgets,
    calibration,
    common,
    eval_run,
    online,
    open_ended,
    pairs,
    summary,
)
from bench.tables import RESULTS, cell, load, percent, rows_table, selections, table  # noqa: E402

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- results: (.*?) -->\n).*?(<!-- /results -->)", re.DOTALL)


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
