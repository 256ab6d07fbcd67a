"""The server's caps on search budgets (``--max-iterations`` and friends).

A request over a cap is refused with a 400 that names the field and the cap, never silently
clamped; the server's own defaults are brought within the caps, so a request that asks for
nothing always passes.
"""

from __future__ import annotations

from server.args import ServerArgs
from server.errors import InvalidRequest
from server.openai.search_options import SearchOptions


def _caps(args: ServerArgs) -> dict[str, int | float | None]:
    return {
        "iterations": args.max_iterations,
        "branching": args.max_branching,
        "max_search_tokens": args.max_search_tokens,
        "max_seconds": args.max_search_seconds,
    }


def capped_defaults(args: ServerArgs) -> SearchOptions:
    """The server's search defaults brought within its own caps (an unset deadline takes the
    time cap), so a request that asks for nothing always passes."""
    defaults = args.search_defaults
    update = {
        field: cap
        for field, cap in _caps(args).items()
        if cap is not None and (getattr(defaults, field) is None or getattr(defaults, field) > cap)
    }
    return defaults.model_copy(update=update)


def check_caps(options: SearchOptions, args: ServerArgs) -> None:
    """Refuse search budgets above the server's caps, naming the field and the cap."""
    for field, cap in _caps(args).items():
        value = getattr(options, field)
        if cap is not None and value is not None and value > cap:
            raise InvalidRequest(
                f"search.{field} is {value}, above this server's cap of {cap}",
                param=f"search.{field}",
                code="over_server_cap",
            )
