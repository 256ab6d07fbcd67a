"""How a chat or completions request ended: its HTTP status, counted in the metrics and logged
as one line, whether it answered, failed or lost its client."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from search.engine import EngineError
from server.admission import CLIENT_CLOSED
from server.errors import PonderError, from_engine
from server.metrics import RequestTracker

logger = logging.getLogger(__name__)


@contextmanager
def recorded(
    tracker: RequestTracker,
    response_id: str,
    log: Callable[[int, float], None],
    fields: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Run a request's work, then close ``tracker`` with its status and ``log(status,
    seconds)``: 200, the status of the error it raised (an engine error mapped once, its
    fields renamed by ``fields``), or 499 when it was cancelled because the client went away.
    """
    status, started = CLIENT_CLOSED, time.monotonic()
    try:
        yield
        status = 200
    except EngineError as exc:
        error = from_engine(exc, fields)
        status = error.status_code
        raise error from exc
    except PonderError as exc:
        status = exc.status_code
        raise
    except Exception:
        status = 500
        logger.exception("%s failed", response_id)
        raise
    finally:
        tracker.close(status)
        log(status, time.monotonic() - started)


def log_outcome(
    response_id: str, method: str, status: int, seconds: float, **facts: object
) -> None:
    """One line per request: what was asked and how it went, with the details (budgets, token
    counts: ``generated_tokens`` once it answered) as ``extra`` fields for JSON logs."""
    logger.info(
        "%s %s: %d in %.2fs, %s tokens generated",
        response_id,
        method,
        status,
        seconds,
        facts.get("generated_tokens", "no"),
        extra={
            "response_id": response_id,
            "method": method,
            "status": status,
            "duration_s": round(seconds, 3),
            **facts,
        },
    )
