"""``ponder serve`` as a user runs it: flags, PONDER_* environment, a real process."""

from __future__ import annotations

import httpx
import pytest

from bench.server import live_server
from server.cli import parse_args
from tests.conftest import TEST_MODEL


def test_flags_are_named_like_vllm_serve() -> None:
    args = parse_args(
        [
            "serve",
            "some/model",
            "--host",
            "0.0.0.0",
            "--port",
            "8123",
            "--served-model-name",
            "m",
            "--engine",
            "transformers",
            "--dtype",
            "float32",
            "--max-model-len",
            "2048",
            "--search-defaults",
            '{"iterations": 8, "granularity": "token"}',
        ]
    )
    assert (args.model, args.host, args.port, args.served_model_name) == (
        "some/model",
        "0.0.0.0",
        8123,
        "m",
    )
    assert args.max_model_len == 2048
    assert args.search_defaults.iterations == 8 and args.search_defaults.granularity == "token"


def test_environment_fills_what_flags_leave_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_PORT", "9001")
    monkeypatch.setenv("PONDER_SEARCH_DEFAULTS__BRANCHING", "3")
    args = parse_args(["serve", "--host", "127.0.0.2"])
    assert (args.host, args.port, args.search_defaults.branching) == ("127.0.0.2", 9001, 3)
    assert parse_args(["serve", "--port", "9002"]).port == 9002


def test_ponder_serve_runs_a_real_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_SEARCH_DEFAULTS__METHOD", "none")
    serve = ["--model", TEST_MODEL, "--served-model-name", "smol"]
    with live_server(None, serve) as base:  # python -m server.cli serve
        assert httpx.get(f"{base}/v1/models").json()["data"][0]["id"] == "smol"
        r = httpx.post(
            f"{base}/v1/chat/completions",
            timeout=60,
            json={
                "model": "smol",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "Hi"}],
            },
        )
        assert r.status_code == 200
        assert r.json()["search"]["method"] == "none"  # the server default from PONDER_*


def test_external_launcher_is_refused() -> None:
    """vLLM's external_launcher backend is for offline use: AsyncLLM cannot start with it."""
    with pytest.raises(ValueError, match="'mp', 'ray' or 'uni'"):
        parse_args(["serve", "--distributed-executor-backend", "external_launcher"])
    args = parse_args(["serve", "--distributed-executor-backend", "mp"])
    assert args.distributed_executor_backend == "mp"
