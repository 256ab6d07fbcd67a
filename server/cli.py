"""``ponder serve``: parse flags into ServerArgs, load the engine, run uvicorn; ``ponder models``:
list the model catalogue, or fetch one of its models without serving it."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from server.args import ServerArgs
from server.catalogue import CATALOGUE, DEFAULT, FetchError, fetch
from server.logs import configure_logging
from server.model_source import models_dir


def build_parser() -> argparse.ArgumentParser:
    """One flag per ServerArgs field; only flags given on the command line override env."""
    parser = argparse.ArgumentParser(prog="ponder", description="A reasoning server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the OpenAI-compatible API")
    serve.add_argument(
        "model_tag", nargs="?", default=None, help="model to serve (same as --model)"
    )
    for name, field in ServerArgs.model_fields.items():
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": field.description,
        }
        flag = "--" + name.replace("_", "-")
        if name == "search_defaults":
            kwargs["type"] = json.loads
        elif name in ("api_keys", "upstreams", "verifier_upstreams"):
            flag, kwargs["action"] = "--" + name[:-1].replace("_", "-"), "append"
        elif field.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        serve.add_argument(flag, **kwargs)
    models = commands.add_parser("models", help="list the model catalogue (pull: fetch one)")
    pull = models.add_subparsers(dest="action").add_parser("pull", help="fetch a model")
    pull.add_argument(
        "name", nargs="?", default=DEFAULT, help=f"catalogue name (default: {DEFAULT})"
    )
    chat = commands.add_parser("chat", help="talk to a ponder server from the terminal")
    chat.add_argument("prompt", nargs="?", help="one question (default: a conversation)")
    chat.add_argument("--url", default="http://127.0.0.1:8000", help="the server")
    chat.add_argument("--model", help="model or alias (default: the server's first)")
    chat.add_argument("--search", type=json.loads, default={}, help="search options as JSON")
    chat.add_argument("--seed", type=int, help="make the answers reproducible")
    chat.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> ServerArgs:
    """``ponder serve``'s settings: flags, then ``PONDER_*`` environment, then defaults."""
    return _server_args(vars(build_parser().parse_args(argv)))


def _server_args(namespace: dict[str, Any]) -> ServerArgs:
    namespace.pop("command")
    model_tag = namespace.pop("model_tag")
    if model_tag is not None:
        namespace.setdefault("model", model_tag)
    return ServerArgs(**namespace)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ponder`` console script."""
    namespace = vars(build_parser().parse_args(argv))
    if namespace["command"] == "chat":
        from terminal.chat import run_chat

        run_chat(
            namespace["url"],
            namespace["model"],
            namespace["prompt"],
            search=namespace["search"],
            seed=namespace["seed"],
            max_tokens=namespace["max_tokens"],
        )
        return
    if namespace["command"] == "models":
        configure_logging("text")
        if namespace["action"] == "pull":
            _pull(namespace["name"])
        else:
            _list_models()
        return
    try:
        args = _server_args(namespace)
    except ValidationError as exc:
        sys.exit(f"ponder: invalid settings:\n{exc}")
    configure_logging(args.log_format)
    # transformers' advice to library users ("PyTorch was not found": the llama.cpp default
    # installs no torch, and only ponder's tokenizers come from transformers) is not a
    # server operator's business
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import uvicorn

    from server.app import build_app
    from server.engines import EngineUnavailable, load_engine, load_verifier
    from server.shutdown import BACKSTOP_SECONDS, DrainingServer

    try:
        engine = load_engine(args)
    except (FetchError, EngineUnavailable) as exc:
        sys.exit(f"ponder: {exc}")
    try:
        judge = load_verifier(args)
    except (FetchError, EngineUnavailable) as exc:
        engine.close()
        sys.exit(f"ponder: the verifier: {exc}")
    try:
        app = build_app(args, engine, judge)
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.uvicorn_log_level,
            timeout_graceful_shutdown=math.ceil(args.drain_seconds) + BACKSTOP_SECONDS,
        )
        DrainingServer(config, lambda: app.state.admission.drain(args.drain_seconds)).run()
    finally:
        engine.close()
        if judge is not None:
            judge.close()


def _list_models() -> None:
    """One line per catalogue model (name, size, present or not, path), its description under."""
    folder = models_dir()
    sys.stdout.write(f"{'NAME':38}{'SIZE':>8}  PRESENT  PATH\n")
    for entry in CATALOGUE.values():
        found = entry.locate(folder)
        name = entry.name + (" (default)" if entry.name == DEFAULT else "")
        size = f"{entry.size / 1e6:.0f} MB"
        where = found or folder / entry.file
        sys.stdout.write(f"{name:38}{size:>8}  {'yes' if found else 'no':7}  {where}\n")
        sys.stdout.write(f"    {entry.description} ({entry.licence})\n")


def _pull(name: str) -> None:
    """Fetch a catalogue model into the cache (no-op when present); print its path."""
    entry = CATALOGUE.get(name)
    if entry is None:
        sys.exit(f"ponder: no model {name!r} in the catalogue ({', '.join(CATALOGUE)})")
    try:
        sys.stdout.write(f"{fetch(entry, models_dir())}\n")
    except FetchError as exc:
        sys.exit(f"ponder: {exc}")


if __name__ == "__main__":
    main()
