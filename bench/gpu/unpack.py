"""On the GPU machine: check the pieces that ``bench.gpu.prepare`` cut against its manifest and
unpack them into one site folder.  Standard library only (it runs before anything is there).

``python3 -m bench.gpu.unpack --check`` says which pieces have arrived; without ``--check`` it
needs them all, verifies every SHA-256 (piece and whole archive) and extracts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Pieces:
    """The pieces, read in order as one stream, hashed as they pass."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.paths = [root / piece["path"] for piece in manifest["pieces"]]
        self.whole = hashlib.sha256()

    def chunks(self) -> Iterator[bytes]:
        for path in self.paths:
            with path.open("rb") as piece:
                while chunk := piece.read(2**20):
                    self.whole.update(chunk)
                    yield chunk


class _Stream:
    """A file-like object over an iterator of byte chunks (what ``lzma.open`` reads)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def arrived(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Each piece's state: ok, missing, or bad (wrong size or SHA-256)."""
    states = []
    for piece in manifest["pieces"]:
        path = root / piece["path"]
        if not path.exists():
            states.append(f"{piece['path']}: missing")
            continue
        data = path.read_bytes()
        good = len(data) == piece["bytes"] and hashlib.sha256(data).hexdigest() == piece["sha256"]
        states.append(f"{piece['path']}: {'ok' if good else 'bad'}")
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=".gpu", type=Path)
    parser.add_argument("--into", default="/tmp/ponder-site", type=Path)
    parser.add_argument("--check", action="store_true", help="only say which pieces arrived")
    args = parser.parse_args()
    manifest = json.loads((args.root / "manifest.json").read_text())
    states = arrived(args.root, manifest)
    print("\n".join(states))
    if args.check:
        return
    if not all(state.endswith(": ok") for state in states):
        sys.exit("pieces are missing or damaged: nothing unpacked")
    pieces = Pieces(args.root, manifest)
    with (
        lzma.open(_Stream(pieces.chunks())) as stream,  # type: ignore[arg-type]
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        tar.extractall(args.into, filter="data")
    if pieces.whole.hexdigest() != manifest["archive"]["sha256"]:
        sys.exit("the reassembled archive's SHA-256 differs from the manifest's")
    print(f"unpacked {len(manifest['shipped'])} packages into {args.into}")


if __name__ == "__main__":
    main()
