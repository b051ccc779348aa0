"""`orcd info` against an independent reader (the `gguf` package's GGUFReader): the real models' tensor
tables and hyperparameters, the malformed corpus through the CLI, and the tensor type table against
gguf's GGML_QUANT_SIZES."""
import re

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFWriter

from conftest import run_orcd

TENSOR_LINE = re.compile(r"^  (\S+)\s+(\S+)\s+\[([0-9, ]+)\]\s+(\d+)$")


def info(orcd_bin, path):
    r = run_orcd(orcd_bin, "info", path)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def tensor_table(stdout: str) -> dict:
    rows = {}
    for line in stdout.splitlines():
        m = TENSOR_LINE.match(line)
        if m:
            rows[m.group(1)] = (m.group(2), [int(x) for x in m.group(3).split(",")], int(m.group(4)))
    return rows


def field(reader: GGUFReader, key: str):
    return reader.fields[key].contents()


@pytest.mark.parametrize("which", ["default_model", "llama_model"])
def test_info_matches_gguf_reader(orcd_bin, which, request):
    path = request.getfixturevalue(which)
    rc, out, err = info(orcd_bin, path)
    assert rc == 0, err
    ref = GGUFReader(path)
    rows = tensor_table(out)
    assert len(rows) == len(ref.tensors)
    for t in ref.tensors:
        assert rows[t.name] == (t.tensor_type.name, [int(x) for x in t.shape], int(t.n_bytes)), t.name

    arch = field(ref, "general.architecture")
    hp = dict(re.findall(r"^  (\w+)\s+(\S+)$", out, re.M))
    assert f"architecture: {arch}" in out
    assert int(hp["dim"]) == field(ref, f"{arch}.embedding_length")
    assert int(hp["n_layers"]) == field(ref, f"{arch}.block_count")
    assert int(hp["n_heads"]) == field(ref, f"{arch}.attention.head_count")
    assert int(hp["n_kv_heads"]) == field(ref, f"{arch}.attention.head_count_kv")
    assert int(hp["hidden_dim"]) == field(ref, f"{arch}.feed_forward_length")
    assert int(hp["n_ctx"]) == field(ref, f"{arch}.context_length")
    assert int(hp["head_dim"]) == int(hp["dim"]) // int(hp["n_heads"])
    assert float(hp["rope_theta"]) == pytest.approx(field(ref, f"{arch}.rope.freq_base"))
    assert float(hp["norm_eps"]) == pytest.approx(field(ref, f"{arch}.attention.layer_norm_rms_epsilon"))
    n_tokens = len(ref.fields["tokenizer.ggml.tokens"].data)
    assert int(hp["vocab_size"]) == n_tokens
    assert f"{n_tokens} tokens, {len(ref.fields['tokenizer.ggml.merges'].data)} merges" in out
    assert f"eos={field(ref, 'tokenizer.ggml.eos_token_id')}" in out
    assert "chat template: chatml" in out
    total = sum(int(t.n_bytes) for t in ref.tensors)
    assert re.search(rf"^  total\s+{len(ref.tensors)}\s+\d+\s+{total}\s", out, re.M)


def manifest(corpus_dir):
    with open(corpus_dir / "manifest.tsv", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def test_corpus_through_cli(orcd_bin, corpus_dir):
    cases = manifest(corpus_dir)
    assert len(cases) >= 30
    failures = []
    for file, expect, what in cases:
        rc, out, err = info(orcd_bin, corpus_dir / file)
        if expect == "ok":
            if "gguf: version" not in out:
                failures.append(f"{file} ({what}): expected it to load, got rc {rc}: {err.strip()}")
        elif rc != 1 or expect not in err or out:
            failures.append(f"{file} ({what}): expected exit 1 and '{expect}', got rc {rc}: {err.strip()}")
    assert not failures, "\n".join(failures)


def test_missing_and_unreadable_files(orcd_bin, tmp_path):
    rc, out, err = info(orcd_bin, tmp_path / "nope.gguf")
    assert rc == 1 and "No such file" in err
    rc, out, err = info(orcd_bin, tmp_path)
    assert rc == 1 and "expected a regular file" in err
    r = run_orcd(orcd_bin, "info")
    assert r.returncode == 1 and b"usage" in r.stderr


# Types orcd knows; every other id in GGML_QUANT_SIZES must be refused by name.
KNOWN = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
         "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
         "I32", "I64", "F64", "IQ1_M", "TQ1_0", "TQ2_0", "MXFP4"}


def test_type_table_matches_gguf_package(orcd_bin, tmp_path):
    """One tensor of each type, written by gguf's own writer: orcd must report gguf's byte size for every
    type it knows, and refuse the rest."""
    for qt, (block, type_size) in GGML_QUANT_SIZES.items():
        path = tmp_path / f"{qt.name}.gguf"
        w = GGUFWriter(str(path), "test")
        rows, blocks_per_row = 3, 2
        raw = np.zeros((rows, blocks_per_row * type_size), dtype=np.uint8)
        w.add_tensor("t", raw, raw_dtype=GGMLQuantizationType(qt))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        ref = GGUFReader(str(path)).tensors[0]
        rc, out, err = info(orcd_bin, path)
        if qt.name in KNOWN:
            rows_out = tensor_table(out)
            assert rows_out.get("t") == (qt.name, [block * blocks_per_row, rows], int(ref.n_bytes)), (qt.name, out, err)
        else:
            assert rc == 1 and f"unknown tensor type {int(qt)}" in err, (qt.name, err)


def test_info_gpu_memory(orcd_bin, default_model):
    """`orcd info --gpu`: without a usable device, one line saying why and exit 1; with one, the model loaded
    with the given --parallel/--ctx and the memory it holds on the GPU, the KV cache growing with them."""
    r = run_orcd(orcd_bin, "info", default_model, "--gpu", "--parallel", "2", "--ctx", "1024", timeout=300)
    out = r.stdout.decode()
    if "gpu: none:" in out:
        assert r.returncode == 1 and "memory" not in out
        pytest.skip(out.strip().splitlines()[-1])
    assert r.returncode == 0, r.stderr.decode()
    kv = {}
    for par, ctx in (("2", "1024"), ("4", "2048")):
        r = run_orcd(orcd_bin, "info", default_model, "--gpu", "--parallel", par, "--ctx", ctx, timeout=300)
        out = r.stdout.decode()
        assert r.returncode == 0 and f"--parallel {par} --ctx {ctx}" in out, out
        fields = {m[0]: float(m[1]) for m in re.findall(r"^\s+(weights|KV cache|scratch)\s+([\d.]+) MiB", out, re.M)}
        assert set(fields) == {"weights", "KV cache", "scratch"}, out
        kv[par] = fields["KV cache"]
    assert kv["4"] == pytest.approx(4 * kv["2"], rel=0.01), kv  # 2x the sequences and 2x the context
