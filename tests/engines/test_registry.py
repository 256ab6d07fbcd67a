"""The engine registry: every ``--engine`` name has an entry, and each entry is a class that
builds itself from the server's settings."""

from __future__ import annotations

import typing

from server.args import ServerArgs
from server.engines import ENGINES, engine_class


def test_every_engine_name_is_registered_and_resolves_to_an_engine_class() -> None:
    names = typing.get_args(ServerArgs.model_fields["engine"].annotation)
    assert set(ENGINES) == set(names) - {"auto"}
    for kind in ENGINES:
        cls = engine_class(kind)
        assert cls.__name__ == ENGINES[kind].rpartition(":")[2]  # type: ignore[attr-defined]
        assert callable(cls.from_args)
