"""The error tree and the one place that renders errors in OpenAI's shape.

::

    PonderError (500 internal_error)
     ├── InvalidRequest (400 invalid_request_error)
 ├── NotFound       (404 not_found_error)
     └── ModelNotFound  (404 invalid_request_error, code model_not_found)
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.protocol import ErrorResponse

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


def _json(status: int, body: ErrorResponse) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=status)


async def _on_ponder_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PonderError)
    response = _json(exc.status_code, exc.body())
    response.headers.update(exc.headers or {})
    return response


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return _json(400, InvalidRequest("The request body is not valid JSON.").body())
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return _json(400, InvalidRequest(message, param=param).body())


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return _json(exc.status_code, ErrorResponse.of(str(exc.detail), error_type, None))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json(500, PonderError(f"Internal error: {type(exc).__name__}").body())


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as ``{"error": {...}}``."""
    app.add_exception_handler(PonderError, _on_ponder_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
