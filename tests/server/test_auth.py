"""API keys on /v1/*, an open /health, and /metrics open unless asked otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from server.args import ServerArgs
from server.cli import parse_args
from server.engines.base import ServingEngine
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def guarded(engine: ServingEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text("# ops team\nfile-key\n")
    args = ServerArgs(api_keys=["flag-key"], api_key_file=str(key_file), metrics_require_key=False)
    with LiveServer(engine, args) as live:
        yield live.url


def test_requests_without_a_valid_key_get_openai_401(guarded: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic flag-key"}):
        r = httpx.get(f"{guarded}/v1/models", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.post(f"{guarded}/v1/chat/completions", json={"model": "x", "messages": []})
    assert r.status_code == 401  # authentication comes before validation


def test_keys_from_flags_and_files_both_work(guarded: str) -> None:
    for key in ("flag-key", "file-key"):
        with openai.OpenAI(base_url=f"{guarded}/v1", api_key=key, max_retries=0) as client:
            assert client.models.list().data
    with (
        openai.OpenAI(base_url=f"{guarded}/v1", api_key="nope", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()


def test_health_and_metrics_stay_open_by_default(guarded: str) -> None:
    assert httpx.get(f"{guarded}/health").status_code == 200
    assert httpx.get(f"{guarded}/metrics").status_code == 200


def test_metrics_can_require_a_key(engine: ServingEngine) -> None:
    args = ServerArgs(api_keys=["k"], metrics_require_key=True)
    with LiveServer(engine, args) as live:
        assert httpx.get(f"{live.url}/metrics").status_code == 401
        ok = httpx.get(f"{live.url}/metrics", headers={"Authorization": "Bearer k"})
        assert ok.status_code == 200 and "ponder_requests_in_flight" in ok.text
        assert httpx.get(f"{live.url}/health").status_code == 200


def test_keys_from_the_command_line_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse_args(["serve", "--api-key", "a", "--api-key", "b", "--metrics-require-key"])
    assert args.api_keys == ["a", "b"] and args.metrics_require_key
    monkeypatch.setenv("PONDER_API_KEYS", "x, y")
    assert parse_args(["serve"]).api_keys == ["x", "y"]
