"""How a ``generate`` call travels from the caller's event loop to an engine's scheduler thread
and back.  Both CPU engines batch every call in flight on one thread; this is the hand-over
they share: a queue the thread sleeps on, and a call that settles on its caller's loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Self, TypeVar

from search.engine import Completion, GenerationRequest, RequestRejected
from server.engines.constraints import Guide


@dataclass(eq=False)
class Call:
    """One ``generate`` call: its requests, its caller's future, and whether it was cancelled."""

    requests: list[GenerationRequest]
    future: asyncio.Future[list[list[Completion]]]
    loop: asyncio.AbstractEventLoop
    cancelled: threading.Event = field(default_factory=threading.Event)
    settled: bool = False
    guides: Sequence[Guide | None] = ()  # each request's, before its samples (none: free)

    @classmethod
    def start(cls, requests: Sequence[GenerationRequest], guides: Sequence[Guide | None]) -> Self:
        """A call from the running event loop (``guides``: see :mod:`.constraints`)."""
        loop = asyncio.get_running_loop()
        return cls(list(requests), loop.create_future(), loop, guides=guides)

    def guide(self, request: int) -> Guide | None:
        """A fresh guide for a sample of request ``request``; ``None`` when it is free."""
        start = self.guides[request] if self.guides else None
        return None if start is None else start.copy()

    def settle(self, result: list[list[Completion]] | BaseException) -> None:
        """Hand the result (or error) to the caller's event loop, unless it has gone; once:
        a call's first result stands (several of its rows can finish, or fail, in one step)."""
        if self.settled:
            return
        self.settled = True

        def resolve() -> None:
            if self.future.done():
                return
            if isinstance(result, BaseException):
                self.future.set_exception(result)
            else:
                self.future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the caller has gone, its loop closed
            self.loop.call_soon_threadsafe(resolve)


C = TypeVar("C", bound=Call)


class CallQueue(Generic[C]):
    """Calls waiting for an engine's scheduler thread, and the condition it sleeps on (held
    while the thread reads ``incoming`` or ``closing``)."""

    def __init__(self) -> None:
        self.wake = threading.Condition()
        self.incoming: list[C] = []
        self.closing = False

    async def submit(self, call: C) -> list[list[Completion]]:
        """Queue ``call`` and wait for it; a cancelled caller marks it for the thread to drop."""
        self.notify(lambda: self.incoming.append(call))
        try:
            return await call.future
        except asyncio.CancelledError:
            call.cancelled.set()
            self.notify()
            raise

    def notify(self, change: Callable[[], object] | None = None) -> None:
        """Wake the scheduler thread, after making ``change`` under the lock."""
        with self.wake:
            if change is not None:
                change()
            self.wake.notify()

    def close(self) -> None:
        """Ask the scheduler thread to stop."""
        with self.wake:
            self.closing = True
            self.wake.notify()


def check_prompts(requests: Sequence[GenerationRequest], vocab: int) -> None:
    """Refuse a prompt the model cannot read (empty, or ids outside its vocabulary) before it
    reaches a batch that other calls share."""
    if not all(r.prompt_token_ids for r in requests):
        raise RequestRejected("a generation request needs at least one prompt token", "prompt")
    if any(not 0 <= t < vocab for r in requests for t in r.prompt_token_ids):
        raise RequestRejected(f"prompt token ids must be in [0, {vocab})", "prompt")
