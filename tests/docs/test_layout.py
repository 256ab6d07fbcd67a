"""docs/layout.md against the tree: each directory's section lists exactly its modules, and
nothing under tests/ imports bench/ (a helper both need lives in the package)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _sections() -> dict[str, set[str]]:
    """The modules each ``## `dir/` `` section of the layout page lists."""
    listed: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in (ROOT / "docs" / "layout.md").read_text().splitlines():
        if heading := re.fullmatch(r"## `(.+)/`", line):
            current = listed.setdefault(heading[1], set())
        elif line.startswith("## "):
            current = None
        elif current is not None and (item := re.match(r"- `([^`]+\.py)`: \S", line)):
            current.add(item[1])
    return listed


def test_the_layout_page_lists_every_module_of_each_directory_it_names() -> None:
    sections = _sections()
    assert {"search", "search/methods", "server", "server/openai", "bench"} <= set(sections)
    for directory, listed in sections.items():
        modules = {p.name for p in (ROOT / directory).glob("*.py") if p.name != "__init__.py"}
        assert listed == modules, directory


def test_every_package_directory_has_a_section() -> None:
    sections = set(_sections())
    for top in ("search", "server", "bench", "terminal"):
        for init in (ROOT / top).rglob("__init__.py"):
            assert init.parent.relative_to(ROOT).as_posix() in sections


def test_no_test_imports_bench() -> None:
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "bench" or n.startswith("bench.") for n in names), path
