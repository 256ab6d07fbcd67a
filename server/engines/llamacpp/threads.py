"""How many CPU threads llama.cpp runs when ``--threads`` is not given: the CPUs this process
may really use, not the machine's.

``os.cpu_count()`` counts every core of the machine, also those a CPU mask (``taskset``, a
cpuset) keeps from the process or a cgroup quota (a container's CPU limit) only lends it in
slices.  llama.cpp's threads wait for each other at every layer, so one thread more than the
process gets runs at the pace of the kernel's scheduler, not of the cores.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" in µs, or "max <period>"


def quota_cpus(cpu_max: str) -> float | None:
    """The CPUs a cgroup v2 ``cpu.max`` line allows (``"200000 100000"``: 2.0); ``None`` for
    no limit (``"max 100000"``) or a line that is not one."""
    fields = cpu_max.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields) or int(fields[1]) == 0:
        return None
    return int(fields[0]) / int(fields[1])


def usable_cpus(affinity: int, cpu_max: str | None) -> int:
    """The whole CPUs a process may run on at once: its CPU mask's ``affinity`` cores, fewer
    when the cgroup's ``cpu.max`` (``None``: no such file) allows less; at least 1.  A quota of
    1.5 CPUs gives 1: a second thread would be throttled every period."""
    quota = None if cpu_max is None else quota_cpus(cpu_max)
    cpus = affinity if quota is None else min(affinity, math.floor(quota))
    return max(cpus, 1)


def default_threads() -> int:
    """:func:`usable_cpus` of this process (where there is no CPU mask: the machine's cores)."""
    if hasattr(os, "sched_getaffinity"):
        affinity = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        affinity = os.cpu_count() or 1
    try:
        cpu_max: str | None = CPU_MAX.read_text()
    except OSError:
        cpu_max = None
    return usable_cpus(affinity, cpu_max)
