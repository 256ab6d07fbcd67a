"""What ``--model`` resolves to, and the name each kind of model is served under."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.catalogue import CATALOGUE
from server.model_source import resolve
from tests.conftest import TEST_MODEL
from tests.server.conftest import DATA, tiny


def test_a_catalogue_model_is_fetched_into_the_cache_and_served_under_its_name(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(CATALOGUE, "tiny", tiny())
    source = resolve("tiny")
    assert (source.path, source.served_name) == (str(tmp_path / "cache/models/tiny.gguf"), "tiny")
    assert Path(source.path).read_bytes() == DATA


def test_a_catalogue_file_is_served_under_its_catalogue_name() -> None:
    installed = resolve(TEST_MODEL).path  # the package's own file, used in place
    assert resolve(installed).served_name == TEST_MODEL


def test_another_gguf_file_is_served_under_its_file_name(tmp_path: Path) -> None:
    own = tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    own.write_bytes(b"not the catalogue's size")
    assert resolve(str(own)).served_name == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert resolve("/models/Marco-o1.Q4_K_M.gguf").served_name == "Marco-o1.Q4_K_M"


def test_hub_ids_and_folders_are_served_as_given() -> None:
    assert resolve("AIDC-AI/Marco-o1").served_name == "AIDC-AI/Marco-o1"
    assert resolve("/models/marco").path == "/models/marco"
