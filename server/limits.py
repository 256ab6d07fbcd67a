"""Server-side limits: request body size, caps on search budgets, and admission control.

A request over a cap is refused with a 400 that names the field and the cap (never silently
clamped).  At most ``--max-concurrent-searches`` searches run; ``--max-queued-searches`` more
wait behind them; beyond that a request gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.args import ServerArgs
from server.errors import InvalidRequest, PonderError
from server.metrics import Metrics
from server.protocol import ErrorResponse, SearchOptions


def _caps(args: ServerArgs) -> dict[str, int | float | None]:
    return {
        "iterations": args.max_iterations,
        "branching": args.max_branching,
        "max_search_tokens": args.max_search_tokens,
        "max_seconds": args.max_search_seconds,
    }


def capped_defaults(args: ServerArgs) -> SearchOptions:
    """The server's search defaults brought within its own caps (an unset deadline takes the
    time cap), so a request that asks for nothing always passes."""
    defaults = args.search_defaults
    update = {
        field: cap
        for field, cap in _caps(args).items()
        if cap is not None and (getattr(defaults, field) is None or getattr(defaults, field) > cap)
    }
    return defaults.model_copy(update=update)


def check_caps(options: SearchOptions, args: ServerArgs) -> None:
    """Refuse search budgets above the server's caps, naming the field and the cap."""
    for field, cap in _caps(args).items():
        value = getattr(options, field)
        if cap is not None and value is not None and value > cap:
            raise InvalidRequest(
                f"search.{field} is {value}, above this server's cap of {cap}",
                param=f"search.{field}",
                code="over_server_cap",
            )


class BodySizeLimit:
    """ASGI middleware: a body past ``limit`` bytes is answered 413 before it is parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse early when Content-Length says too much, else count the bytes as they come."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        # read the body up to the limit before the app sees it, then replay it
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = (
            ErrorResponse.of(
                f"The request body is larger than {self.limit} bytes.",
                "invalid_request_error",
                None,
                "request_too_large",
            )
            .model_dump_json()
            .encode()
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
            self._metrics.rejected.labels("queue_full").inc()
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
        self._metrics.rejected.labels("shutting_down").inc()
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
