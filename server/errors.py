"""The error tree and the one place that renders errors in OpenAI's shape.

::

    PonderError (500 internal_error)
     ├── InvalidRequest    (400 invalid_request_error)
     ├── NotFound          (404 not_found_error)
     ├── ModelNotFound     (404 invalid_request_error, code model_not_found)
     └── EngineUnavailable (503 service_unavailable_error, code engine_fault)

An engine's own errors (``search.engine.EngineError``) are mapped once, by
:func:`from_engine`: a call the engine refuses is the client's 400, a fault of the engine a 503.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from search.engine import EngineError, RequestRejected
from search.verifier import VerifierFault
from server.openai.protocol import ErrorResponse

logger = logging.getLogger(__name__)


class PonderError(Exception):
    """An error with an HTTP status, an OpenAI error type and the offending parameter."""

    status_code = 500
    error_type = "internal_error"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> ErrorResponse:
        """The OpenAI-shaped body of this error."""
        return ErrorResponse.of(self.message, self.error_type, self.param, self.code)


class InvalidRequest(PonderError):
    """The request is malformed or asks for something out of range."""

    status_code = 400
    error_type = "invalid_request_error"


class NotFound(PonderError):
    """The request names something this server does not have."""

    status_code = 404
    error_type = "not_found_error"


class ModelNotFound(PonderError):
    """The request names a model this server does not serve."""

    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist.", param="model", code="model_not_found"
        )


class EngineUnavailable(PonderError):
    """The engine failed a call it should have served; another try (or replica) may work."""

    status_code = 503
    error_type = "service_unavailable_error"
    headers = {"Retry-After": "1"}  # noqa: RUF012 - read-only class constant


def from_engine(exc: EngineError, fields: Mapping[str, str] | None = None) -> PonderError:
    """The one mapping of an engine error to an OpenAI error.

    A refused call is a 400 naming the field; engines spell it as ``/v1/completions`` does
    (``n``, ``max_tokens``, ``prompt``), and ``fields`` renames it for a route that spells it
    otherwise.  A fault is a 503 whose details go to the log, not to the client.
    """
    if isinstance(exc, RequestRejected):
        param = exc.param if exc.param is None else (fields or {}).get(exc.param, exc.param)
        return InvalidRequest(exc.message, param=param)
    logger.error("engine fault: %s", exc, exc_info=exc)
    if isinstance(exc, VerifierFault):
        return EngineUnavailable(
            "The verifier failed while judging this request's answers; try again.",
            param="search.verifier",
            code="verifier_fault",
        )
    return EngineUnavailable(
        "The engine failed while serving this request; try again.", code="engine_fault"
    )


def _json(status: int, body: ErrorResponse) -> Response:
    # ASCII with escapes: a message may quote the request, and a lone surrogate in it (valid
    # JSON) has no UTF-8 encoding, which JSONResponse needs
    return Response(json.dumps(body.model_dump()), status, media_type="application/json")


async def _on_ponder_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PonderError)
    response = _json(exc.status_code, exc.body())
    response.headers.update(exc.headers or {})
    return response


async def _on_engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    return await _on_ponder_error(request, from_engine(exc))


# parts of a validation error's location that name no field: the body, and the union member
# pydantic tried (``literal['none','auto']``, ``NamedToolChoice``, ``str``, ``list[...]``)
_UNION_MEMBER = re.compile(r"^(body|str|int|float|bool|none|[A-Z]\w*|[\w-]+\[.*\])$")


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return _json(400, InvalidRequest("The request body is not valid JSON.").body())
    location = [str(part) for part in first.get("loc", ()) if not _UNION_MEMBER.match(str(part))]
    param = ".".join(location) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return _json(400, InvalidRequest(message, param=param).body())


async def _on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return _json(exc.status_code, ErrorResponse.of(str(exc.detail), error_type, None))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json(500, PonderError(f"Internal error: {type(exc).__name__}").body())


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as ``{"error": {...}}``."""
    app.add_exception_handler(PonderError, _on_ponder_error)
    app.add_exception_handler(EngineError, _on_engine_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
