"""docs/api.md's "Use it from..." snippets, run as written against a live server: each fenced
block there follows a ``<!-- snippet: NAME -->`` comment, and its documented address and model
(``http://localhost:8000``, the default model) become the test server's and the test model's.

A snippet a reader copies must work; running them here is what keeps them working."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer

PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SECTION = "## Use it from...\n"
DOCS_URL = "http://localhost:8000"
DOCS_MODEL = "qwen2.5-coder-0.5b-instruct"
SNIPPET = re.compile(r"<!-- snippet: ([\w-]+) -->\n```\w+\n(.*?\n)```\n", re.DOTALL)
FENCE = re.compile(r"^```\w+$", re.MULTILINE)
BUDGET = 256  # the snippets' max_completion_tokens / max_output_tokens / llm's max_tokens

Snippet = Callable[[str], str]  # a snippet's name -> its text, pointed at the test server
Python = Callable[[str], tuple[dict[str, Any], str]]  # name -> the snippet's globals, its output


def section() -> str:
    """The page's "Use it from..." section, up to its next section or the page's end."""
    text = PAGE.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else None]


def snippets() -> dict[str, str]:
    return dict(SNIPPET.findall(section()))


@pytest.fixture()
def snippet(server: LiveServer, model_name: str) -> Snippet:
    """A snippet's text by name, pointed at the test server and model."""

    def local(name: str) -> str:
        return snippets()[name].replace(DOCS_URL, server.url).replace(DOCS_MODEL, model_name)

    return local


@pytest.fixture()
def python(snippet: Snippet, capsys: pytest.CaptureFixture[str]) -> Iterator[Python]:
    """Runs a Python snippet after the shared client's; returns its globals and its output."""
    namespaces: list[dict[str, Any]] = []

    def run(name: str) -> tuple[dict[str, Any], str]:
        namespace: dict[str, Any] = {}
        namespaces.append(namespace)
        for part in ("openai-client", name):
            exec(compile(snippet(part), f"docs/api.md <{part}>", "exec"), namespace)
        return namespace, capsys.readouterr().out

    yield run
    for namespace in namespaces:
        namespace["client"].close()


def shell(script: str, env: dict[str, str] | None = None) -> str:
    """A shell snippet's stdout; the venv's scripts (``llm``) come first on PATH."""
    assert shutil.which("curl"), "the curl snippets need curl"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": path, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_block_of_the_section_is_a_snippet_run_here() -> None:
    assert len(FENCE.findall(section())) == len(snippets())
    assert set(snippets()) == {
        "openai-client",
        "openai-chat",
        "openai-stream",
        "openai-search",
        "openai-effort",
        "openai-responses",
        "openai-responses-stream",
        "curl-chat",
        "curl-stream",
        "llm-config",
        "llm",
    }


def test_openai_chat(python: Python) -> None:
    namespace, out = python("openai-chat")
    r = namespace["r"]
    assert r.choices[0].message.content
    assert r.choices[0].message.content in out
    assert 0 < r.usage.completion_tokens <= BUDGET


def test_openai_stream_prints_the_reasoning_and_the_answer(python: Python) -> None:
    _, out = python("openai-stream")
    assert out.strip()


def test_openai_search_object(python: Python) -> None:
    namespace, out = python("openai-search")
    search = namespace["r"].model_extra["search"]
    assert search["method"] == "mcts"
    assert search["nodes"] > 1
    assert str(search) in out


def test_openai_reasoning_effort(python: Python) -> None:
    namespace, out = python("openai-effort")
    r = namespace["r"]
    assert r.choices[0].message.content in out
    assert r.usage.completion_tokens <= BUDGET


def test_openai_responses(python: Python) -> None:
    namespace, out = python("openai-responses")
    r = namespace["r"]
    assert r.status in ("completed", "incomplete")
    assert r.output_text in out
    assert 0 < r.usage.output_tokens <= BUDGET


def test_openai_responses_stream(python: Python) -> None:
    _, out = python("openai-responses-stream")
    assert out.strip()


def test_curl_chat(snippet: Snippet) -> None:
    response = json.loads(shell(snippet("curl-chat")))
    assert response["choices"][0]["message"]["content"]
    assert response["usage"]["completion_tokens"] <= BUDGET


def test_curl_stream(snippet: Snippet) -> None:
    lines = [line for line in shell(snippet("curl-stream")).splitlines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") for c in chunks)
    assert 0 < chunks[-1]["usage"]["completion_tokens"] <= BUDGET


def test_llm_cli(snippet: Snippet, tmp_path: Path) -> None:
    (tmp_path / "extra-openai-models.yaml").write_text(snippet("llm-config"))
    out = shell(snippet("llm"), env={"LLM_USER_PATH": str(tmp_path)})
    assert out.strip()
