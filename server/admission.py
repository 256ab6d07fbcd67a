"""Admission: at most ``--max-concurrent-searches`` searches run and ``--max-queued-searches``
more requests wait; beyond that 429 with ``Retry-After``, and 503 once the server drains.  A
request of ``n`` choices runs ``n`` searches and takes ``n`` slots (all of them when ``n`` is
larger: it then runs alone), so asking for many choices cannot get round the cap.

Admission is also the app's lifecycle, the same for every surface: :meth:`Admission.drain`
closes it and, once the drain's time is up, sets :attr:`Admission.interrupt`, which cuts every
running search short; and :attr:`Admission.alone`, read once a request holds its slots, is what
``--adaptive-parallel`` decides by.

:func:`admitted` is the one way a route holds a slot: it waits for one (giving up if the client
leaves), builds the response, and gives the slot back once that response has been sent, whether
it is one JSON body or a stream that runs for minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request, Response
from starlette.types import Receive, Scope, Send

from server.errors import PonderError
from server.metrics import QUEUE_FULL, SHUTTING_DOWN, Metrics

T = TypeVar("T")
logger = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # nginx's status for a client that went away; seen in metrics and logs only


class TooBusy(PonderError):
    """Every search slot and queue place is taken; try again shortly."""

    status_code = 429
    error_type = "rate_limit_error"
    headers = {"Retry-After": "1"}  # noqa: RUF012 - read-only class constant


class ShuttingDown(PonderError):
    """The server is draining before it stops; another replica should take the request."""

    status_code = 503
    error_type = "service_unavailable_error"
    headers = {"Retry-After": "1"}  # noqa: RUF012 - read-only class constant


class _ClientGone(Exception):
    """The client disconnected while its request was waiting or running."""


class _Slots:
    """``total`` slots taken several at a time, first come first served: a request waits until
    the slots it needs are free and nobody waits before it, so a wide request is not starved by
    narrow ones that keep arriving."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, count: int) -> None:
        """Take ``count`` slots, waiting for them; a cancelled wait takes none."""
        if not self._waiters and self._free >= count:
            self._free -= count
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (count, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(count)  # granted in the instant the wait was cancelled
            else:
                if entry in self._waiters:  # _wake may have dropped it already
                    self._waiters.remove(entry)
                self._wake()  # those behind it may fit now
            raise

    def release(self, count: int) -> None:
        """Give ``count`` slots back, waking the waiters they let through, in order."""
        self._free += count
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self._free:
            count, waiter = self._waiters.popleft()
            if waiter.cancelled():  # its task is being cancelled: it takes nothing
                continue
            self._free -= count
            waiter.set_result(None)


class Admission:
    """At most ``running`` searches at once and ``queued`` more requests waiting; 429 beyond,
    503 once :meth:`close` has been called (the waiting ones too)."""

    def __init__(self, running: int, queued: int, metrics: Metrics) -> None:
        self._slots = _Slots(running)
        self._capacity = running + queued
        self._admitted = 0  # running plus waiting
        self._closed = asyncio.Event()
        self._metrics = metrics
        self.interrupt = asyncio.Event()  # set when a drain runs out: searches end early

    @property
    def idle(self) -> bool:
        """Whether no request runs or waits."""
        return self._admitted == 0

    @property
    def alone(self) -> bool:
        """Whether the request asking, admitted, is the only one running or waiting.  Read
        after :meth:`acquire`, so two requests that arrive together cannot both see it."""
        return self._admitted == 1

    def slots_for(self, searches: int) -> int:
        """The slots a request of ``searches`` searches takes: one each, at most all."""
        return min(searches, self._slots.total)

    async def acquire(self, slots: int = 1) -> None:
        """Wait for ``slots`` search slots (see :meth:`slots_for`); :class:`TooBusy` when the
        queue is full, :class:`ShuttingDown` when the server is draining."""
        if self._closed.is_set():
            self._refuse_closed()
        if self._admitted >= self._capacity:
            self._metrics.rejected.labels(QUEUE_FULL).inc()
            raise TooBusy(
                "The server is busy: every search slot and queue place is taken.",
                code="server_busy",
            )
        self._admitted += 1
        queued_at = time.monotonic()
        slot = asyncio.ensure_future(self._slots.acquire(slots))
        closed = asyncio.ensure_future(self._closed.wait())
        got_slot = False
        self._metrics.queued.inc()
        try:
            await asyncio.wait({slot, closed}, return_when=asyncio.FIRST_COMPLETED)
            got_slot = slot.done()
        finally:
            self._metrics.queued.dec()
            closed.cancel()
            if not got_slot:
                self._admitted -= 1
                if slot.done() and not slot.cancelled():
                    self._slots.release(slots)  # granted in the instant the wait was cancelled
                slot.cancel()
        if not got_slot:  # woken by close()
            self._refuse_closed()
        self._metrics.queue_seconds.observe(time.monotonic() - queued_at)

    def _refuse_closed(self) -> None:
        self._metrics.rejected.labels(SHUTTING_DOWN).inc()
        raise ShuttingDown(
            "The server is shutting down and takes no new searches; retry on another replica.",
            code="shutting_down",
        )

    def close(self) -> None:
        """Stop admitting: new and waiting requests get 503; running ones are not touched."""
        self._closed.set()

    def drain(self, seconds: float) -> None:
        """Begin a graceful shutdown: admit nothing more, let running searches go on for
        ``seconds``, then cut them short so each still answers with its best path."""
        self.close()
        logger.info("draining: no new searches; running ones are cut short in %.1fs", seconds)
        asyncio.get_running_loop().call_later(seconds, self.interrupt.set)

    def release(self, slots: int = 1) -> None:
        """Give the slots back (once per successful :meth:`acquire`, as many as it took)."""
        self._slots.release(slots)
        self._admitted -= 1


async def _disconnect(receive: Receive) -> None:
    """Return once the ASGI server reports ``http.disconnect``: the body has been read by
    then, so the next message is that one, sent the moment the connection closes."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and so its engine calls) if the client goes away first:
    :class:`_ClientGone`.  Work that finished anyway in that instant is returned, so a slot it
    took is not lost."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request.receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if task.cancelled():
                raise _ClientGone
        return task.result()
    finally:
        task.cancel()
        gone.cancel()


class _Releasing(Response):
    """Serves the wrapped response, then calls ``release``, however the sending ended."""

    def __init__(self, inner: Response, release: Callable[[], None]) -> None:
        super().__init__()
        self._inner = inner
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the wrapped response, then release."""
        try:
            await self._inner(scope, receive, send)
        finally:
            self._release()


async def admitted(
    request: Request,
    admission: Admission,
    respond: Callable[[], Awaitable[Response]],
    searches: int = 1,
) -> Response:
    """Wait for the slots of ``searches`` searches, then ``respond`` in them; they are held
    until the response has been sent (a JSON body, or a stream to its end) and given back
    however that ends.  A client that leaves while its request waits or runs gets 499 (nobody
    reads it) and frees the slots.
    """
    acquired = False
    slots = admission.slots_for(searches)
    try:
        await _unless_disconnected(request, admission.acquire(slots))
        acquired = True
        response = await _unless_disconnected(request, respond())
    except BaseException as exc:
        if acquired:
            admission.release(slots)
        if isinstance(exc, _ClientGone):
            return Response(status_code=CLIENT_CLOSED)
        raise
    return _Releasing(response, lambda: admission.release(slots))
