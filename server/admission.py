"""Admission: at most ``--max-concurrent-searches`` requests run and ``--max-queued-searches``
more wait; beyond that 429 with ``Retry-After``, and 503 once the server drains.

:func:`admitted` is the one way a route holds a slot: it waits for one (giving up if the client
leaves), builds the response, and gives the slot back once that response has been sent, whether
it is one JSON body or a stream that runs for minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request, Response
from starlette.types import Receive, Scope, Send

from server.errors import PonderError
from server.metrics import QUEUE_FULL, SHUTTING_DOWN, Metrics

T = TypeVar("T")
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


class Admission:
    """At most ``running`` searches at once and ``queued`` more waiting; 429 beyond, 503 once
    :meth:`close` has been called (the waiting ones too)."""

    def __init__(self, running: int, queued: int, metrics: Metrics) -> None:
        self._slots = asyncio.Semaphore(running)
        self._capacity = running + queued
        self._admitted = 0  # running plus waiting
        self._closed = asyncio.Event()
        self._metrics = metrics

    async def acquire(self) -> None:
        """Wait for a search slot; :class:`TooBusy` when the queue is full,
        :class:`ShuttingDown` when the server is draining."""
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
        slot = asyncio.ensure_future(self._slots.acquire())
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
                    self._slots.release()  # granted in the instant the wait was cancelled
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

    def release(self) -> None:
        """Give a slot back (once per successful :meth:`acquire`)."""
        self._slots.release()
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
    request: Request, admission: Admission, respond: Callable[[], Awaitable[Response]]
) -> Response:
    """Wait for a slot, then ``respond`` in it; the slot is held until the response has been
    sent (a JSON body, or a stream to its end) and given back however that ends.  A client
    that leaves while its request waits or runs gets 499 (nobody reads it) and frees the slot.
    """
    acquired = False
    try:
        await _unless_disconnected(request, admission.acquire())
        acquired = True
        response = await _unless_disconnected(request, respond())
    except BaseException as exc:
        if acquired:
            admission.release()
        if isinstance(exc, _ClientGone):
            return Response(status_code=CLIENT_CLOSED)
        raise
    return _Releasing(response, admission.release)
