"""Graceful shutdown: uvicorn's server, taught to drain ponder's searches on SIGTERM.

uvicorn on its own stops listening, waits for open responses, and after
``timeout_graceful_shutdown`` cancels whatever is left, dropping those requests.  Here the
signal first starts the service's drain (no new searches; running ones may go on for
``--drain-seconds``, then end with their best path), so every request gets a response; uvicorn's
own timeout stays as a backstop a little later.  sse-starlette's habit of closing every event
stream at the first signal is turned off: the drain ends the streams, each with its answer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn
from sse_starlette.sse import AppStatus

BACKSTOP_SECONDS = 10  # after the drain: time for cut searches to send their answers


class DrainingServer(uvicorn.Server):
    """A uvicorn server that calls ``drain`` (in its event loop) on the first exit signal."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], None]) -> None:
        super().__init__(config)
        AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
        self._drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """Remember the loop the signal handler must hand the drain to."""
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start the drain, then let uvicorn stop listening and wait for open responses."""
        if not self.should_exit and self._loop is not None:
            self._loop.call_soon_threadsafe(self._drain)
        super().handle_exit(sig, frame)
