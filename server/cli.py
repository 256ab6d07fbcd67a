"""``ponder serve``: parse flags into ServerArgs, load the engine, run uvicorn; ``ponder models``:
list the model catalogue, or fetch one of its models without serving it."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_settings import CliSettingsSource

from server.args import ServerArgs
from server.catalogue import CATALOGUE, DEFAULT, FetchError, fetch
from server.logs import configure_logging
from server.model_source import models_dir

# The repeatable list flags keep their singular names (``--api-key a --api-key b``), as the
# fields' plural ones (``--api-keys a,b``) also work.
_SINGULAR = {
    "api-keys": "api-key",
    "upstreams": "upstream",
    "verifier-upstreams": "verifier-upstream",
}


def build_parser() -> tuple[argparse.ArgumentParser, CliSettingsSource[ServerArgs]]:
    """The ``ponder`` commands, ``serve``'s flags made by pydantic-settings from ServerArgs (one
    per field, its description the help, ``--search-defaults.iterations`` for nested ones); the
    source reads back only the flags given, so ``PONDER_*`` fills the rest."""
    parser = argparse.ArgumentParser(prog="ponder", description="A reasoning server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the OpenAI-compatible API")
    serve.add_argument(
        "model_tag", nargs="?", default=None, help="model to serve (same as --model)"
    )
    flags: CliSettingsSource[ServerArgs] = CliSettingsSource(
        ServerArgs,
        root_parser=serve,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
        cli_shortcuts=_SINGULAR,
    )
    _said_once(serve)
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
    return parser, flags


def _said_once(serve: argparse.ArgumentParser) -> None:
    """Drop the default pydantic-settings appends to a flag's help where the description says
    it already (a ``None`` that means "derived") or it is a list's empty factory."""
    for action in serve._actions:
        head, cut, tail = (action.help or "").rpartition(" (default")
        if cut and ("default:" in head or tail.startswith(" factory")):
            action.help = head


def parse_args(argv: Sequence[str] | None = None) -> ServerArgs:
    """``ponder serve``'s settings: flags, then ``PONDER_*`` environment, then defaults."""
    parser, flags = build_parser()
    return _server_args(parser.parse_args(argv), flags)


def _server_args(given: argparse.Namespace, flags: CliSettingsSource[ServerArgs]) -> ServerArgs:
    if given.model_tag is not None:  # the positional model, where --model is not given
        given = argparse.Namespace(**{"model": given.model_tag, **vars(given)})
    return ServerArgs(_cli_settings_source=flags(parsed_args=given))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ponder`` console script."""
    parser, flags = build_parser()
    given = parser.parse_args(argv)
    namespace = vars(given)
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
        args = _server_args(given, flags)
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
