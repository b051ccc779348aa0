"""Tests of tools/gen_model.py and tools/quantize.py.

Small models are generated into a temporary directory and read back with gguf.GGUFReader;
quantized weights are decoded with gguf.quants.dequantize (an independent implementation of
the ggml block formats) and compared with the float values they were drawn from.

Most tests use a synthetic tokenizer of a few dozen tokens so that they stay fast (reading a
GGUF with the full Qwen vocabulary takes GGUFReader several seconds); the tests of the Qwen
vocabulary itself need <repo>/../shared/data/qwen-tokenizer.json.gz and skip without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf import GGUFValueType as VT  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import gen_model  # noqa: E402
import quantize  # noqa: E402

QWEN_TOKENIZER = REPO.parent / "shared" / "data" / "qwen-tokenizer.json.gz"
SEED = 7

# Upper bound of the relative RMS error ||dequant(q(x)) - x|| / ||x|| per stored type, for the
# N(0, 0.02) weights the generator draws. Measured values are about: F16 0.02%, BF16 0.2%,
# Q8_0 0.5%, Q6_K 1.7%, Q5_K 3.6%, Q5_1 3.5%, Q5_0 4.3%, Q4_K 7.2%, Q4_0 8.6%.
TOLERANCE = {
    QT.F32: 0.0, QT.F16: 0.001, QT.BF16: 0.005, QT.Q8_0: 0.01, QT.Q6_K: 0.025, QT.Q5_K: 0.045,
    QT.Q5_1: 0.045, QT.Q5_0: 0.055, QT.Q4_K: 0.08, QT.Q4_0: 0.10,
}
PLAIN_TYPES = {name: qtype for name, (qtype, _) in gen_model.FILE_TYPES.items() if name != "Q4_K_M"}

# Synthetic byte-level BPE tokenizer in Hugging Face tokenizer.json form.
TINY_VOCAB = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", "Ġt", "he", "Ġthe"]
TINY_MERGES = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"]]
TINY_ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
              ("<tool_call>", False), ("<|fim_pad|>", False)]
N_TINY_TOKENS = len(TINY_VOCAB) + len(TINY_ADDED)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory) -> Path:
    n = len(TINY_VOCAB)
    data = {
        "added_tokens": [{"id": n + i, "content": tok, "special": special}
                         for i, (tok, special) in enumerate(TINY_ADDED)],
        "model": {"type": "BPE", "vocab": {tok: i for i, tok in enumerate(TINY_VOCAB)}, "merges": TINY_MERGES},
    }
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_text(json.dumps(data))
    return path


def generate(out: Path, *args: str) -> Path:
    assert gen_model.main([*args, "--out", str(out), "--seed", str(SEED), "--threads", "2"]) == 0
    return out


def read(path: Path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(path)
    return reader.fields, {t.name: t for t in reader.tensors}


def value(fields: dict, key: str):
    return fields[key].contents()


def layer_suffixes(arch: str) -> list[str]:
    biases = ["attn_q.bias", "attn_k.bias", "attn_v.bias"] if arch == "qwen2" else []
    return ["attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
            "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", *biases]


def expected_names(arch: str, n_layer: int, tied: bool) -> set[str]:
    names = {"token_embd.weight", "output_norm.weight"} | ({"output.weight"} if not tied else set())
    return names | {f"blk.{i}.{s}" for i in range(n_layer) for s in layer_suffixes(arch)}


def relative_rms_error(decoded: np.ndarray, original: np.ndarray) -> float:
    return float(np.sqrt(np.mean((decoded - original) ** 2) / np.mean(original ** 2)))


def assert_round_trip(tensors: dict, specs: list) -> None:
    """Every tensor decodes to its float original within the tolerance of its type."""
    for spec in specs:
        t = tensors[spec.name]
        decoded = gguf.quants.dequantize(t.data, t.tensor_type).reshape(spec.shape)
        original = gen_model.tensor_values(spec, SEED)
        assert np.isfinite(decoded).all(), spec.name
        assert relative_rms_error(decoded, original) <= TOLERANCE[t.tensor_type], (spec.name, t.tensor_type.name)


# ----------------------------------------------------------------------------------------------
# Tiny models in every type

@pytest.mark.parametrize("file_type", list(gen_model.FILE_TYPES))
@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_tiny_model(tmp_path, tiny_tokenizer, arch, file_type):
    path = generate(tmp_path / "m.gguf", "--arch", arch, "--shape", "tiny", "--type", file_type,
                    "--vocab", f"qwen-json:{tiny_tokenizer}")
    fields, tensors = read(path)
    tied = arch == "qwen2"  # the tiny presets: qwen2 tied like Qwen2.5-0.5B, llama untied

    expected_keys = {
        "general.architecture": arch,
        "general.file_type": int(gen_model.FILE_TYPES[file_type][1]),
        "general.quantization_version": 2,
        f"{arch}.block_count": 2,
        f"{arch}.context_length": 4096,
        f"{arch}.embedding_length": 256,
        f"{arch}.feed_forward_length": 512,
        f"{arch}.attention.head_count": 4,
        f"{arch}.attention.head_count_kv": 2,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.add_bos_token": False,
    }
    if arch == "llama":
        expected_keys |= {"llama.vocab_size": N_TINY_TOKENS, "llama.rope.dimension_count": 64}
    for key, expected in expected_keys.items():
        assert value(fields, key) == expected, key
    assert value(fields, f"{arch}.rope.freq_base") == pytest.approx(1e6 if arch == "qwen2" else 1e5)
    assert value(fields, f"{arch}.attention.layer_norm_rms_epsilon") == pytest.approx(1e-6 if arch == "qwen2" else 1e-5)
    assert fields[f"{arch}.block_count"].types == [VT.UINT32]
    assert fields[f"{arch}.rope.freq_base"].types == [VT.FLOAT32]
    assert "general.name" in fields and "tokenizer.chat_template" in fields
    if arch == "qwen2":
        assert "qwen2.vocab_size" not in fields and "qwen2.rope.dimension_count" not in fields

    assert set(tensors) == expected_names(arch, 2, tied)
    assert list(tensors["token_embd.weight"].shape) == [256, N_TINY_TOKENS]  # GGUF order: ne[0] first
    assert list(tensors["blk.0.attn_k.weight"].shape) == [256, 128]
    assert list(tensors["blk.1.ffn_down.weight"].shape) == [512, 256]
    assert list(tensors["blk.0.ffn_up.weight"].shape) == [256, 512]
    assert list(tensors["output_norm.weight"].shape) == [256]
    if arch == "qwen2":
        assert list(tensors["blk.0.attn_q.bias"].shape) == [256]
        assert list(tensors["blk.0.attn_v.bias"].shape) == [128]

    for name, t in tensors.items():
        if len(t.shape) == 1:
            assert t.tensor_type == QT.F32, name
        elif file_type != "Q4_K_M":
            assert t.tensor_type == PLAIN_TYPES[file_type], name
    if file_type == "Q4_K_M":  # in a 2-layer model llama.cpp's rule gives layer 1 more bits
        q6 = {"blk.1.attn_v.weight", "blk.1.ffn_down.weight", "token_embd.weight" if tied else "output.weight"}
        for name, t in tensors.items():
            if len(t.shape) == 2:
                assert t.tensor_type == (QT.Q6_K if name in q6 else QT.Q4_K), name

    specs = gen_model.plan_tensors(arch, gen_model.SHAPES[arch]["tiny"], N_TINY_TOKENS, file_type, False)
    assert [s.name for s in specs] == [t for t in tensors]  # file order is the plan's order
    assert_round_trip(tensors, specs)
    norm = gguf.quants.dequantize(tensors["blk.0.attn_norm.weight"].data, QT.F32)
    assert abs(float(norm.mean()) - 1.0) < 0.01


# ----------------------------------------------------------------------------------------------
# Type choice

CUSTOM = ["--shape", "custom", "--dim", "128", "--hidden-dim", "256", "--n-heads", "2", "--n-kv-heads", "1"]


@pytest.mark.parametrize("file_type, fallback", [("Q4_K", "Q5_0"), ("Q5_K", "Q5_1"), ("Q6_K", "Q8_0")])
def test_k_quant_fallback_for_short_rows(tmp_path, tiny_tokenizer, file_type, fallback):
    """Rows of 128 are not whole super-blocks: llama.cpp's fallback type; ffn_down (rows of 256) keeps K."""
    row_type = QT[fallback]
    path = generate(tmp_path / "m.gguf", "--arch", "qwen2", *CUSTOM, "--n-layers", "1", "--type", file_type,
                    "--vocab", f"qwen-json:{tiny_tokenizer}")
    _, tensors = read(path)
    for name, t in tensors.items():
        if len(t.shape) == 2:
            assert t.tensor_type == (PLAIN_TYPES[file_type] if name.endswith("ffn_down.weight") else row_type), name
    shape = gen_model.resolve_shape("qwen2", "custom", {"n_embd": 128, "n_ff": 256, "n_head": 2, "n_head_kv": 1,
                                                        "n_layer": 1}, None)
    assert_round_trip(tensors, gen_model.plan_tensors("qwen2", shape, N_TINY_TOKENS, file_type, False))


def test_q4_k_m_mix_like_qwen25_05b(tmp_path, tiny_tokenizer):
    """A Qwen2.5-0.5B-like layout (rows not multiples of 256, tied) gets the types llama.cpp gives it."""
    path = generate(tmp_path / "m.gguf", "--arch", "qwen2", *CUSTOM, "--n-layers", "8", "--type", "Q4_K_M",
                    "--vocab", f"qwen-json:{tiny_tokenizer}")
    _, tensors = read(path)
    q6_layers = {0, 3, 6, 7}  # use_more_bits for 8 layers
    for name, t in tensors.items():
        if len(t.shape) == 1:
            continue
        if name == "token_embd.weight":  # tied: the output's Q6_K, falling back to Q8_0
            expected = QT.Q8_0
        elif name.endswith("ffn_down.weight"):
            expected = QT.Q6_K if int(name.split(".")[1]) in q6_layers else QT.Q4_K
        elif name.endswith("attn_v.weight"):
            expected = QT.Q8_0 if int(name.split(".")[1]) in q6_layers else QT.Q5_0
        else:
            expected = QT.Q5_0
        assert t.tensor_type == expected, name


def test_q4_k_m_layers_follow_llama_cpp_name_order():
    # ffn_down/attn_v layers stored as Q6_K/Q8_0 in a llama.cpp Q4_K_M file of Qwen2.5-0.5B
    # (24 layers): llama-quantize counts layers in tensor-name order (blk.0, blk.1, blk.10, ...).
    assert gen_model.q4_k_m_q6_layers(24) == {0, 1, 3, 6, 7, 8, 9, 10, 13, 16, 19, 21}
    assert gen_model.q4_k_m_q6_layers(8) == {0, 3, 6, 7}
    assert gen_model.q4_k_m_q6_layers(2) == {1}


# ----------------------------------------------------------------------------------------------
# Vocabulary

def test_synthetic_vocabulary_token_types(tmp_path, tiny_tokenizer):
    path = generate(tmp_path / "m.gguf", "--arch", "llama", "--type", "F16", "--vocab", f"qwen-json:{tiny_tokenizer}",
                    "--vocab-size", str(N_TINY_TOKENS + 3))
    fields, tensors = read(path)
    n = len(TINY_VOCAB)
    padding = [f"[PAD{i}]" for i in range(N_TINY_TOKENS, N_TINY_TOKENS + 3)]
    assert value(fields, "tokenizer.ggml.tokens") == TINY_VOCAB + [tok for tok, _ in TINY_ADDED] + padding
    # normal 1, control 3 (special, or shaped <|...|>), user-defined 4, unused padding 5
    assert value(fields, "tokenizer.ggml.token_type") == [1] * n + [3, 3, 3, 4, 3] + [5, 5, 5]
    assert value(fields, "tokenizer.ggml.merges") == ["Ġ t", "h e", "Ġt he"]
    assert value(fields, "tokenizer.ggml.bos_token_id") == n
    assert value(fields, "tokenizer.ggml.padding_token_id") == n
    assert value(fields, "tokenizer.ggml.eos_token_id") == n + 2
    assert value(fields, "llama.vocab_size") == N_TINY_TOKENS + 3
    assert list(tensors["token_embd.weight"].shape) == [256, N_TINY_TOKENS + 3]
    assert list(tensors["output.weight"].shape) == [256, N_TINY_TOKENS + 3]


def test_vocab_copied_from_gguf(tmp_path, tiny_tokenizer):
    source = generate(tmp_path / "src.gguf", "--arch", "llama", "--type", "F16",
                      "--vocab", f"qwen-json:{tiny_tokenizer}")
    copy = generate(tmp_path / "copy.gguf", "--arch", "qwen2", "--type", "Q8_0", "--vocab", f"gguf:{source}")
    padded = generate(tmp_path / "padded.gguf", "--arch", "qwen2", "--type", "Q8_0", "--vocab", f"gguf:{source}",
                      "--vocab-size", str(N_TINY_TOKENS + 2))
    src_fields, _ = read(source)
    tokenizer_keys = [k for k in src_fields if k.startswith("tokenizer.")]
    assert len(tokenizer_keys) == 10

    copy_fields, copy_tensors = read(copy)
    for key in tokenizer_keys:
        assert copy_fields[key].types == src_fields[key].types, key
        assert value(copy_fields, key) == value(src_fields, key), key
    assert list(copy_tensors["token_embd.weight"].shape) == [256, N_TINY_TOKENS]

    padded_fields, padded_tensors = read(padded)
    assert value(padded_fields, "tokenizer.ggml.tokens")[-2:] == [f"[PAD{N_TINY_TOKENS}]", f"[PAD{N_TINY_TOKENS + 1}]"]
    assert value(padded_fields, "tokenizer.ggml.token_type")[-3:] == [3, 5, 5]
    assert list(padded_tensors["token_embd.weight"].shape) == [256, N_TINY_TOKENS + 2]


@pytest.fixture(scope="module")
def qwen_tokenizer() -> Path:
    if not QWEN_TOKENIZER.exists():
        pytest.skip(f"Qwen tokenizer not found at {QWEN_TOKENIZER}")
    return QWEN_TOKENIZER


def test_qwen_vocabulary(qwen_tokenizer):
    kv = gen_model.pad_vocab(gen_model.load_vocab(f"qwen-json:{qwen_tokenizer}"), 151936)
    tokens, types = kv["tokenizer.ggml.tokens"][0], kv["tokenizer.ggml.token_type"][0]
    assert len(tokens) == len(types) == 151936
    assert tokens[:3] == ["!", '"', "#"] and types[:3] == [1, 1, 1]
    assert types[:151643] == [1] * 151643
    assert tokens[151643:151646] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert types[151643:151669] == [3] * 14 + [4, 4] + [3] * 6 + [4] * 4  # as convert_hf_to_gguf.py
    assert tokens[151669] == "[PAD151669]" and tokens[-1] == "[PAD151935]" and set(types[151669:]) == {5}
    merges = kv["tokenizer.ggml.merges"][0]
    assert len(merges) == 151387 and merges[:3] == ["Ġ Ġ", "ĠĠ ĠĠ", "i n"]
    assert kv["tokenizer.ggml.bos_token_id"][0] == 151643
    assert kv["tokenizer.ggml.eos_token_id"][0] == 151645
    assert kv["tokenizer.ggml.padding_token_id"][0] == 151643
    assert kv["tokenizer.ggml.pre"][0] == "qwen2"
    assert "<|im_start|>assistant" in kv["tokenizer.chat_template"][0]


def test_qwen_vocabulary_written_and_read_back(tmp_path, qwen_tokenizer):
    path = generate(tmp_path / "m.gguf", "--arch", "qwen2", "--shape", "custom", "--dim", "64", "--hidden-dim", "128",
                    "--n-layers", "1", "--n-heads", "1", "--n-kv-heads", "1", "--type", "F16",
                    "--vocab", f"qwen-json:{qwen_tokenizer}", "--vocab-size", "151936")
    fields, tensors = read(path)
    tokens = value(fields, "tokenizer.ggml.tokens")
    assert len(tokens) == 151936
    assert tokens[151643] == "<|endoftext|>" and tokens[151935] == "[PAD151935]"
    assert tokens[220] == "Ġ" and tokens[9707] == "Hello"
    assert len(value(fields, "tokenizer.ggml.merges")) == 151387
    assert list(tensors["token_embd.weight"].shape) == [64, 151936]


# ----------------------------------------------------------------------------------------------
# Seeds, layer reuse, command line

def tensor_bytes(path: Path) -> dict[str, bytes]:
    return {name: t.data.tobytes() for name, t in read(path)[1].items()}


def test_same_seed_same_file_other_seed_other_weights(tmp_path, tiny_tokenizer):
    # 10000 x 256 embeddings: three chunks, drawn and quantized in parallel with 2 threads
    args = ["--arch", "qwen2", "--type", "Q4_K_M", "--vocab", f"qwen-json:{tiny_tokenizer}", "--vocab-size", "10000"]
    a = generate(tmp_path / "a.gguf", *args)
    assert gen_model.main([*args, "--out", str(tmp_path / "b.gguf"), "--seed", str(SEED), "--threads", "1"]) == 0
    assert a.read_bytes() == (tmp_path / "b.gguf").read_bytes()  # the thread count does not matter
    assert gen_model.main([*args, "--out", str(tmp_path / "c.gguf"), "--seed", str(SEED + 1)]) == 0
    data_a, data_c = tensor_bytes(a), tensor_bytes(tmp_path / "c.gguf")
    assert data_a.keys() == data_c.keys()
    assert all(data_a[name] != data_c[name] for name in data_a)


def test_reuse_layers_repeats_layer_zero(tmp_path, tiny_tokenizer):
    args = ["--arch", "qwen2", "--n-layers", "3", "--type", "Q4_K", "--vocab", f"qwen-json:{tiny_tokenizer}"]
    reused = tensor_bytes(generate(tmp_path / "r.gguf", *args, "--reuse-layers"))
    fresh = tensor_bytes(generate(tmp_path / "f.gguf", *args))
    for suffix in layer_suffixes("qwen2"):
        assert reused[f"blk.1.{suffix}"] == reused[f"blk.0.{suffix}"] == reused[f"blk.2.{suffix}"]
        assert fresh[f"blk.1.{suffix}"] != fresh[f"blk.0.{suffix}"]
    assert reused["blk.0.ffn_up.weight"] == fresh["blk.0.ffn_up.weight"]


def test_command_line(tmp_path, tiny_tokenizer):
    out = tmp_path / "cli.gguf"
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_model.py"), "--arch", "llama", "--shape", "tiny",
         "--type", "Q8_0", "--tied", "--vocab", f"qwen-json:{tiny_tokenizer}", "--out", str(out)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}: ") and "M params" in result.stdout
    assert "layer 2/2 done" in result.stderr
    assert "output.weight" not in read(out)[1]
    assert not (tmp_path / "cli.gguf.tmp").exists()

    bad = subprocess.run([sys.executable, str(REPO / "tools" / "gen_model.py"), "--arch", "llama", "--shape", "7b",
                          "--vocab", f"qwen-json:{tiny_tokenizer}", "--out", str(tmp_path / "x.gguf")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "--shape for llama" in bad.stderr


# ----------------------------------------------------------------------------------------------
# K-quantizers on awkward blocks

@pytest.mark.parametrize("qtype", sorted(quantize.K_TYPES))
def test_k_quantizers_on_edge_blocks(qtype):
    rng = np.random.default_rng(1)
    blocks = np.stack([
        np.zeros(256),                                   # all zero
        np.full(256, 0.5),                               # constant positive
        np.full(256, -3.0),                              # constant negative
        np.abs(rng.standard_normal(256)),                # all positive
        -np.abs(rng.standard_normal(256)),               # all negative
        np.concatenate([rng.standard_normal(128) * 1e-3, rng.standard_normal(128) * 10]),  # mixed scales
        rng.standard_normal(256) * 1e3,                  # large
        np.where(np.arange(256) == 17, 5.0, 0.0),        # one spike
    ]).astype(np.float32)
    encoded = quantize.quantize(blocks, qtype)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    assert encoded.dtype == np.uint8 and encoded.shape == (len(blocks), 256 // block_size * type_size)
    decoded = gguf.quants.dequantize(encoded, qtype)
    assert np.isfinite(decoded).all()
    assert np.array_equal(decoded[0], blocks[0])
    # worst error relative to the block's largest magnitude: about half a quantization step
    bound = {QT.Q4_K: 0.07, QT.Q5_K: 0.035, QT.Q6_K: 0.025}[qtype]
    assert (np.abs(decoded - blocks).max(axis=1) <= bound * np.abs(blocks).max(axis=1)).all()


@pytest.mark.parametrize("qtype", sorted(quantize.K_TYPES))
def test_k_quantizers_reject_partial_blocks(qtype):
    with pytest.raises(ValueError):
        quantize.quantize(np.zeros((2, 128), np.float32), qtype)
