"""The engine registry: every ``--engine`` name has an entry, and each entry is a class that
builds itself from the server's settings."""

from __future__ import annotations

import subprocess
import sys
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


def test_an_engine_whose_extra_is_not_installed_says_what_to_install() -> None:
    """The default install has no torch (the transformers engine's extra): asking for that
    engine there is a one-line error naming the extra, from ``ponder serve`` too."""
    blocked = "import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
    check = (
        blocked
        + "from server.engines import EngineUnavailable, engine_class\n"
        + "try:\n    engine_class('transformers')\nexcept EngineUnavailable as exc:\n"
        + "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=120
    )
    assert "pip install 'ponder[transformers]'" in out.stdout and "torch" in out.stdout
    serve = blocked + "from server.cli import main; main(['serve', '--engine', 'transformers'])"
    failed = subprocess.run(
        [sys.executable, "-c", serve], capture_output=True, text=True, timeout=300
    )
    assert failed.returncode == 1 and "ponder[transformers]" in failed.stderr
    assert "Traceback" not in failed.stderr
