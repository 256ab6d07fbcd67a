"""A local ponder server for a benchmark, a test or a script: the one at ``--url``, or a fresh
``ponder serve`` process on a free loopback port (bench/ and tests/ both start servers, and
tests import nothing from bench/)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx


def spawn_server(serve_args: Sequence[str] = ()) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``ponder serve`` on a free loopback port; return it and its base URL once healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen([*command, "--uvicorn-log-level", "warning", *serve_args])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ponder serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("ponder serve did not come up in 10 minutes")
        time.sleep(0.2)


@contextmanager
def live_server(url: str | None, serve_args: Sequence[str] = ()) -> Iterator[str]:
    """Yield the base URL of a running server, starting one (and stopping it after) if needed."""
    if url:
        yield url.rstrip("/")
        return
    proc, base = spawn_server(serve_args)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)
