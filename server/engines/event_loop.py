"""An event loop on a thread of the engine's own, for async resources that are bound to the
loop they were made on (an httpx connection pool, an ``asyncio.Semaphore``): the engine makes
them there once, and callers on any loop (the server's, a benchmark's ``asyncio.run``) hand
their work to it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from search.engine import EngineFault

_T = TypeVar("_T")


class EngineLoop:
    """A running event loop on a daemon thread; :meth:`run` awaits a coroutine on it from the
    caller's loop.  To close: :meth:`cancel_all`, release what lives on the loop (through
    :meth:`call`), then :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._tasks: set[asyncio.Task[Any]] = set()  # touched on the engine's loop only
        self._stopping = False

    def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the engine's loop and wait for it here (not from that loop)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coroutine`` on the engine's loop; cancelling the caller cancels it there, and
        one that :meth:`cancel_all` cancels fails its caller with an :class:`EngineFault`."""
        future = asyncio.run_coroutine_threadsafe(self._tracked(coroutine), self._loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if self._stopping and not _caller_cancelled():
                raise EngineFault("the engine closed during the call") from None
            raise

    async def _tracked(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await coroutine
        finally:
            self._tasks.discard(task)

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every coroutine :meth:`run` still runs, and wait until each has unwound (their
        callers get an :class:`EngineFault`): the first step of closing an engine."""
        self._stopping = True

        async def cancel() -> None:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self._loop).result(timeout=timeout)

    def stop(self, timeout: float = 10) -> None:
        """Stop the loop and its thread (after :meth:`cancel_all` and any cleanup on it)."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=timeout)
        if not self._thread.is_alive():
            self._loop.close()


def _caller_cancelled() -> bool:
    """Whether the task awaiting the call is itself being cancelled (its client went away)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
