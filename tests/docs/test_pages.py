"""The README and docs/ as a reader meets them: a README that fits a few screens, links that
lead somewhere (on GitHub, where README.md and docs/*.md are read as files, as on the site,
whose own build checks them with ``mkdocs build --strict``), and results tables that say what
``bench/results/`` holds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def prose(page: Path) -> str:
    """The page without its code: a link inside code is an example, not a link."""
    return FENCED.sub("", page.read_text())


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, spaces to hyphens, and every
    character but letters, digits, ``-`` and ``_`` dropped."""
    return {
        re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        for title in HEADING.findall(prose(page))
    }


def relative_links(page: Path) -> list[str]:
    text = CODE.sub("``", prose(page))  # keeps a link whose text is code, drops code's brackets
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_the_readme_fits_300_lines() -> None:
    assert len(README.read_text().splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_its_heading(page: Path) -> None:
    links = relative_links(page)
    assert page != README or links, "the README links its docs"
    for link in links:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{link}: no {target.relative_to(ROOT)}"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target), f"{link}: no such heading"


def test_the_readme_and_the_api_page_show_one_methods_table() -> None:
    def methods(page: Path) -> str:
        start = page.read_text().index("| method | what it does |")
        return page.read_text()[start:].split("\n\n")[0]

    assert methods(README) == methods(ROOT / "docs" / "api.md")


def test_the_results_tables_are_rendered_from_bench_results() -> None:
    # the renderer is bench's: the suite runs it as a program rather than importing bench/
    done = subprocess.run(
        [sys.executable, "-m", "bench.pages", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{done.stdout}{done.stderr} (run: python -m bench.pages)"
