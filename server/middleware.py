"""ASGI middleware: request ids, the body-size limit and API keys.

Each is plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, so a route sees the server's
own ``receive`` (its ``http.disconnect`` cancels a search) and streams pass through untouched.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.args import ServerArgs
from server.logs import VALID_REQUEST_ID, request_id
from server.openai.protocol import ErrorResponse


async def _send_error(
    send: Send, status: int, body: ErrorResponse, headers: dict[str, str] | None = None
) -> None:
    """Answer with an OpenAI error before the app has seen the request."""
    content = json.dumps(body.model_dump()).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


class RequestIdMiddleware:
    """Accepts a well-formed ``X-Request-Id`` or makes one, and echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the id for the request's lifetime (its logs, its stream)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class BodySizeLimit:
    """A body past ``limit`` bytes is answered 413 before it is parsed."""

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
        message = f"The request body is larger than {self.limit} bytes."
        body = ErrorResponse.of(message, "invalid_request_error", None, "request_too_large")
        await _send_error(send, 413, body)


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


class ApiKeys:
    """``Authorization: Bearer <key>`` on every ``/v1/*`` route (and ``/metrics`` when
    ``protect_metrics``); ``/health`` stays open for probes.  Keys are compared in constant
    time; a request without a valid one gets OpenAI's 401."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], protect_metrics: bool) -> None:
        self.app = app
        self.keys = keys
        self.guarded = ("/v1/", "/metrics") if protect_metrics else ("/v1/",)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass an authorised (or unguarded) request on; answer any other with 401."""
        if scope["type"] != "http" or not scope["path"].startswith(self.guarded):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if _authorised(header, self.keys):
            await self.app(scope, receive, send)
            return
        body = ErrorResponse.of(
            "Missing or invalid API key: send `Authorization: Bearer <key>`.",
            "authentication_error",
            None,
            "invalid_api_key",
        )
        await _send_error(send, 401, body, {"WWW-Authenticate": "Bearer"})
