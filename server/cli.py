"""``ponder serve``: parse flags into ServerArgs, load the engine, run uvicorn."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from server.args import ServerArgs


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
        if name == "search_defaults":
            kwargs["type"] = json.loads
        serve.add_argument("--" + name.replace("_", "-"), **kwargs)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> ServerArgs:
    """Flags, then ``PONDER_*`` environment, then defaults."""
    namespace = vars(build_parser().parse_args(argv))
    namespace.pop("command")
    model_tag = namespace.pop("model_tag")
    if model_tag is not None:
        namespace.setdefault("model", model_tag)
    return ServerArgs(**namespace)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ponder`` console script."""
    try:
        args = parse_args(argv)
    except ValidationError as exc:
        sys.exit(f"ponder: invalid settings:\n{exc}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from server.app import build_app
    from server.engines import load_engine

    engine = load_engine(args)
    try:
        uvicorn.run(
            build_app(args, engine),
            host=args.host,
            port=args.port,
            log_level=args.uvicorn_log_level,
        )
    finally:
        engine.close()


if __name__ == "__main__":
    main()
