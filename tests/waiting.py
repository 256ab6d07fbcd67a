"""Waiting on what a test can observe (a gauge in ``/metrics``, an engine's counters), never on
how long something usually takes: the suite must pass on a busy 2-core machine.

A deadline here only turns a hang into a failure, so it is generous (a minute); the polls in
between are short so a quick machine is not slowed down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

PATIENCE = 60.0  # seconds before a condition that never holds fails the test
POLL = 0.02


def wait_for(condition: Callable[[], bool], what: str, seconds: float = PATIENCE) -> None:
    """Return once ``condition()`` holds; fail, naming ``what``, after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL)


async def until(
    condition: Callable[[], bool], what: str, seconds: float = PATIENCE, poll: float = POLL
) -> None:
    """:func:`wait_for` inside an event loop: the loop keeps running while it polls (every
    ``poll`` seconds: shorter where the state it waits for lasts only moments)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(poll)


def metric(base: str, name: str) -> float:
    """The value of one series (``name`` with its labels) in the server's ``/metrics``; 0 if
    it has not been exported yet."""
    for line in httpx.get(f"{base}/metrics", timeout=PATIENCE).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
