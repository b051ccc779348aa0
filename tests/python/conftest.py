"""Shared fixtures: where the orcd binary, the default models and the generated GGUF corpus are.
`make pytest` sets ORCD_BIN, ORCD_MODELS and ORCD_CORPUS; the defaults suit a run from the repo root."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
LLAMA_MODEL = "smollm2-135m-instruct-q4_1.gguf"


def _path(env: str, default: str) -> Path:
    p = Path(os.environ.get(env, default))
    return p if p.is_absolute() else REPO / p


@pytest.fixture(scope="session")
def orcd_bin() -> Path:
    p = _path("ORCD_BIN", "build/orcd")
    if not p.exists():
        pytest.fail(f"{p} not built: run make")
    return p


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _path("ORCD_MODELS", "models")


def _model(models_dir: Path, name: str) -> Path:
    p = models_dir / name
    if not p.exists():
        pytest.fail(f"{p} missing: run make model")
    return p


@pytest.fixture(scope="session")
def default_model(models_dir) -> Path:
    return _model(models_dir, DEFAULT_MODEL)


@pytest.fixture(scope="session")
def llama_model(models_dir) -> Path:
    return _model(models_dir, LLAMA_MODEL)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    p = _path("ORCD_CORPUS", "build/gguf_corpus")
    if not (p / "manifest.tsv").exists():
        pytest.fail(f"{p}/manifest.tsv missing: run make pytest")
    return p


def run_orcd(orcd_bin: Path, *args, input: bytes | None = None, timeout: float = 120):
    """Run the binary; return CompletedProcess with bytes stdout/stderr."""
    return subprocess.run([str(orcd_bin), *map(str, args)], input=input, capture_output=True, timeout=timeout)
