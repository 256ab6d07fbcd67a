"""API keys: ``Authorization: Bearer <key>`` on every ``/v1/*`` route (and ``/metrics`` when
asked); ``/health`` stays open for probes.  Keys are compared in constant time."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from server.args import ServerArgs
from server.protocol import ErrorResponse


def load_keys(args: ServerArgs) -> tuple[str, ...]:
    """Keys from ``--api-key``/``PONDER_API_KEYS`` and ``--api-key-file`` (one per line)."""
    keys = list(args.api_keys)
    if args.api_key_file:
        lines = Path(args.api_key_file).read_text(encoding="utf-8").splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return tuple(keys)


def _authorised(header: str | None, keys: tuple[str, ...]) -> bool:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    # compare against every key, so the time taken does not tell which one nearly matched
    matches = [secrets.compare_digest(token.encode(), key.encode()) for key in keys]
    return any(matches)


def install_auth(app: FastAPI, keys: tuple[str, ...], *, protect_metrics: bool) -> None:
    """Reject unauthenticated calls with OpenAI's 401; does nothing when there are no keys."""
    if not keys:
        return
    guarded = ("/v1/", "/metrics") if protect_metrics else ("/v1/",)

    @app.middleware("http")
    async def require_key(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith(guarded) and not _authorised(request.headers.get("authorization"), keys):
            body = ErrorResponse.of(
                "Missing or invalid API key: send `Authorization: Bearer <key>`.",
                "authentication_error",
                None,
                "invalid_api_key",
            )
            return JSONResponse(
                body.model_dump(), status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return await call_next(request)
