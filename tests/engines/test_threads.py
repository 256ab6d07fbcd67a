"""llama.cpp's default thread count: the CPUs the process may use, from its CPU mask and its
cgroup v2 ``cpu.max`` quota."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from server.args import ServerArgs
from server.engines import load_engine
from server.engines.base import ServingEngine
from server.engines.llamacpp import threads
from server.engines.llamacpp.threads import default_threads, quota_cpus, usable_cpus
from tests.conftest import TEST_MODEL


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2.0),
        ("150000 100000", 1.5),
        ("50000 100000", 0.5),
        ("", None),
        ("100000", None),
        ("100000 0", None),
        ("lots 100000", None),
    ],
)
def test_quota_is_read_from_cpu_max(cpu_max: str, cpus: float | None) -> None:
    assert quota_cpus(cpu_max) == cpus


@pytest.mark.parametrize(
    ("affinity", "cpu_max", "cpus"),
    [
        (8, None, 8),  # no cgroup v2 file: the mask alone
        (8, "max 100000", 8),  # no quota
        (8, "200000 100000", 2),  # a 2-CPU container on an 8-core node
        (2, "400000 100000", 2),  # the mask is the tighter limit
        (4, "150000 100000", 1),  # a thread beyond the quota's whole CPUs would be throttled
        (4, "50000 100000", 1),  # under one CPU: still one thread
        (0, None, 1),
    ],
)
def test_usable_cpus_is_the_tighter_of_mask_and_quota(
    affinity: int, cpu_max: str | None, cpus: int
) -> None:
    assert usable_cpus(affinity, cpu_max) == cpus


def threads_of(engine: ServingEngine) -> tuple[int, int]:
    """The llama.cpp engine's (decode, batch) threads; the engine is closed."""
    from server.engines.llamacpp.engine import LlamaCppEngine

    try:
        assert isinstance(engine, LlamaCppEngine)
        return engine.threads, engine.threads_batch
    finally:
        engine.close()


def test_default_threads_reads_this_process_mask_and_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(threads, "CPU_MAX", cpu_max)
    mask = len(os.sched_getaffinity(0))
    assert default_threads() == mask  # no such file
    cpu_max.write_text("max 100000\n")
    assert default_threads() == mask
    cpu_max.write_text("100000 100000\n")
    assert default_threads() == 1


def test_engine_without_threads_runs_as_many_as_the_quota_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not one per core of the machine: under a 1-CPU quota a second thread would only wait."""
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    monkeypatch.setattr(threads, "CPU_MAX", cpu_max)
    engine = load_engine(ServerArgs(engine="llamacpp", model=TEST_MODEL))
    assert threads_of(engine) == (1, 1)


def test_batch_threads_can_differ_from_decode_threads() -> None:
    args = ServerArgs(engine="llamacpp", model=TEST_MODEL, threads=1, threads_batch=2)
    assert threads_of(load_engine(args)) == (1, 2)


def libgomp_spin_count(**env: str) -> str:
    """The spin count libgomp settles on (as it reports it) in a fresh process that imports
    what ``ponder serve`` does before its engine, with ``env`` as its only OpenMP settings."""
    own = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", "import server.cli, server.app, server.engines.llamacpp.engine"],
        env={**own, **env, "OMP_DISPLAY_ENV": "verbose"},
        capture_output=True,
        text=True,
        check=True,
    )
    [count] = re.findall(r"GOMP_SPINCOUNT = '(\d+)'", done.stderr)
    return count


def test_llama_cpp_threads_sleep_at_barriers_instead_of_spinning() -> None:
    """A waiting thread gives its core back at once, so another process on the machine does not
    make each barrier wait a time slice (libgomp's own default spins 300000 times)."""
    assert libgomp_spin_count() == "0"
    assert libgomp_spin_count(GOMP_SPINCOUNT="1000") == "1000"  # the user's choice stands
    assert int(libgomp_spin_count(OMP_WAIT_POLICY="active")) > 300000
