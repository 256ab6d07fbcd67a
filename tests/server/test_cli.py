"""``ponder serve`` as a user runs it: flags, PONDER_* environment, a real process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from server import cli
from server.args import ServerArgs
from server.catalogue import CATALOGUE, DEFAULT
from server.cli import build_parser, main, parse_args
from server.local import live_server
from server.model_source import resolve
from tests.conftest import TEST_MODEL
from tests.server.conftest import DATA, tiny


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


def test_every_setting_is_a_flag_with_its_description_as_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pydantic-settings makes the flags from ServerArgs: one per field, nested ones for
    ``search_defaults``, the repeatable lists under their singular names too."""
    with pytest.raises(SystemExit):
        parse_args(["serve", "--help"])
    shown = "".join(capsys.readouterr().out.split())  # argparse's wrapping (even at "-") undone
    for name, field in ServerArgs.model_fields.items():
        if name != "search_defaults":
            assert "--" + name.replace("_", "-") in shown
            assert "".join((field.description or "").split()) in shown, name
    assert "--search-defaults.iterationsint" in shown
    serve = build_parser()[0]._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    assert all((action.help or "").count("default:") <= 1 for action in serve._actions)
    args = parse_args(
        ["serve", "--api-key", "a", "--api-key", "b", "--upstream", "u1", "--upstreams", "u2,u3"]
    )
    assert (args.api_keys, args.upstreams) == (["a", "b"], ["u1", "u2", "u3"])  # both add
    nested = parse_args(["serve", "--search-defaults.iterations", "7", "--no-adaptive-parallel"])
    assert (nested.search_defaults.iterations, nested.adaptive_parallel) == (7, False)


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


@pytest.fixture()
def models_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ponder models`` in this process, on an empty cache (its path), leaving logging alone."""
    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "configure_logging", lambda fmt: None)
    return tmp_path / "cache"


def listed(out: str) -> dict[str, str]:
    """``ponder models``' lines by model name (the description lines are indented)."""
    return {line.split()[0]: line for line in out.splitlines() if not line.startswith(" ")}


def test_ponder_models_lists_the_catalogue_and_what_is_present(
    models_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["models"])
    rows = listed(capsys.readouterr().out)
    assert set(rows) == {"NAME", *CATALOGUE}
    default = rows[DEFAULT].split()
    assert default[1:6] == [
        "(default)",
        "491",
        "MB",
        "no",
        str(models_cli / "models" / CATALOGUE[DEFAULT].file),
    ]
    test_model = rows[TEST_MODEL].split()
    assert test_model[1:] == ["98", "MB", "yes", resolve(TEST_MODEL).path]  # its package's file


def test_ponder_models_pull_fetches_a_model_and_prints_its_path(
    models_cli: Path,
    published: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(CATALOGUE, "tiny", tiny())
    main(["models", "pull", "tiny"])
    path = Path(capsys.readouterr().out.strip())
    assert path == models_cli / "models" / "tiny.gguf" and path.read_bytes() == DATA
    main(["models"])
    assert listed(capsys.readouterr().out)["tiny"].split()[3] == "yes"


def test_ponder_models_pull_exits_with_the_reason(
    models_cli: Path, published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit, match=r"no model 'nope' in the catalogue \(qwen2.5"):
        main(["models", "pull", "nope"])
    monkeypatch.setitem(CATALOGUE, "tiny", tiny(sha256="0" * 64))
    with pytest.raises(SystemExit, match=r"ponder: tiny: its parts make .* SHA-256"):
        main(["models", "pull", "tiny"])
