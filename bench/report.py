"""How every benchmark reports: an aligned table on stdout and JSON under ``bench/results/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "-" if value is None else str(value)


def report(name: str, rows: list[dict[str, Any]], **facts: Any) -> None:
    """Print ``rows`` (dicts with the same keys) as a table; write them and ``facts`` to
    ``bench/results/<name>.json``."""
    columns = list(rows[0]) if rows else []
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{name}" + "".join(f"  {k}={v}" for k, v in facts.items()))
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**facts, "rows": rows}, indent=2) + "\n")
