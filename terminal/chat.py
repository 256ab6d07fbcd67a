"""``ponder chat``: a terminal client that streams the reasoning dimmed and the answer plainly,
under a live progress line for the search (round, nodes, best reward)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text


def stream_chunks(client: httpx.Client, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """POST a streaming chat request and yield its chunks (an error frame raises)."""
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(response.json()["error"]["message"])
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk: dict[str, Any] = json.loads(line[len("data: ") :])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            yield chunk


class Transcript:
    """What one answer looks like so far: reasoning, answer, and the progress line."""

    def __init__(self) -> None:
        self.reasoning = Text(style="dim")
        self.answer = Text()
        self.status = Text("searching…", style="cyan")

    def update(self, chunk: dict[str, Any]) -> None:
        """Fold one chunk into the transcript."""
        progress = chunk.get("search_progress")
        if progress:
            self.status = Text(
                f"round {progress['round']} · {progress['iterations']} iterations · "
                f"{progress['nodes']} nodes · best reward {progress['best_reward']:.3f}",
                style="cyan",
            )
        for choice in chunk.get("choices", []):
            delta = choice.get("delta", {})
            self.reasoning.append(delta.get("reasoning_content") or "")
            self.answer.append(delta.get("content") or "")
        search = chunk.get("search")
        if search:
            self.status = Text(
                f"{search['method']} · {search['iterations']} iterations · {search['nodes']} "
                f"nodes · {search['generated_tokens']} tokens · reward {search['reward']:.3f} · "
                f"{search['ended_by']}",
                style="cyan",
            )

    def render(self) -> Group:
        """The transcript as one renderable."""
        parts = [self.reasoning, Text(""), self.answer] if self.reasoning else [self.answer]
        return Group(*parts, self.status)


def ask(
    client: httpx.Client,
    console: Console,
    model: str,
    history: list[dict[str, str]],
    options: dict[str, Any],
) -> str:
    """Stream one answer to the console; return its content.  ``options`` are request fields
    (``search``, ``seed``, ``max_tokens``), sent when set."""
    body: dict[str, Any] = {"model": model, "messages": history, "stream": True}
    body.update({key: value for key, value in options.items() if value is not None})
    body["search"] = {**options.get("search", {}), "progress": True}
    transcript = Transcript()
    with Live(transcript.render(), console=console, refresh_per_second=8) as live:
        for chunk in stream_chunks(client, body):
            transcript.update(chunk)
            live.update(transcript.render())
    return transcript.answer.plain


def run_chat(
    url: str,
    model: str | None,
    prompt: str | None,
    *,
    search: dict[str, Any],
    seed: int | None,
    max_tokens: int | None,
) -> None:
    """One question (``prompt``) or a conversation read from the terminal until EOF."""
    options = {"search": search, "seed": seed, "max_tokens": max_tokens}
    console = Console()
    with httpx.Client(base_url=url.rstrip("/"), timeout=None) as client:
        model = model or client.get("/v1/models").json()["data"][0]["id"]
        history: list[dict[str, str]] = []
        while True:
            question = prompt if prompt is not None else _read(console)
            if question is None:
                return
            history.append({"role": "user", "content": question})
            try:
                answer = ask(client, console, model, history, options)
            except RuntimeError as exc:
                console.print(f"[red]error:[/red] {exc}")
                history.pop()
            else:
                history.append({"role": "assistant", "content": answer})
            if prompt is not None:
                return


def _read(console: Console) -> str | None:
    try:
        return console.input("[bold]> [/bold]").strip() or _read(console)
    except EOFError:
        return None
