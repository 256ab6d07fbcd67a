"""X-Request-Id in, out, and on every log line of the request; JSON log lines."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from server.logs import JsonFormatter, RequestIdFilter
from tests.conftest import LiveServer

BODY = {
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 4,
    "search": {"method": "none"},
}


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture()
def records() -> list[logging.LogRecord]:
    handler = Collect()
    logger = logging.getLogger("server")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_a_given_request_id_is_echoed_and_logged(
    server: LiveServer, model_name: str, records: list[logging.LogRecord]
) -> None:
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={**BODY, "model": model_name},
        headers={"X-Request-Id": "trace-me-42"},
        timeout=60,
    )
    assert r.headers["x-request-id"] == "trace-me-42"
    mine = [rec for rec in records if getattr(rec, "request_id", None) == "trace-me-42"]
    outcome = next(rec for rec in mine if getattr(rec, "response_id", None) == r.json()["id"])
    assert outcome.method == "none" and outcome.status == 200  # type: ignore[attr-defined]
    assert outcome.completion_tokens == r.json()["usage"]["completion_tokens"]  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(outcome))
    assert (
        line["request_id"] == "trace-me-42" and line["method"] == "none" and line["duration_s"] >= 0
    )


def test_missing_or_malformed_ids_are_replaced(server: LiveServer) -> None:
    generated = httpx.get(f"{server.url}/health").headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    replaced = httpx.get(f"{server.url}/health", headers={"X-Request-Id": "bad id\x7f"})
    assert (
        replaced.headers["x-request-id"] != "bad id\x7f"
        and len(replaced.headers["x-request-id"]) == 32
    )
