"""How the results pages format what the benchmarks saved: one result file's JSON, read once,
and the cells and tables every kind of block is made of (:mod:`bench.pages`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

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


def rows_table(rows: list[dict[str, Any]]) -> str:
    header = list(dict.fromkeys(key for row in rows for key in row))
    return table(header, [[cell(row.get(key)) for key in header] for row in rows])
