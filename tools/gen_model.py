#!/usr/bin/env python3
"""Write random-weight GGUF v3 models of Qwen2 or Llama shape, for tests and benchmarks.

What it does:
  - writes every tensor and metadata key that llama.cpp's converter writes for a Qwen2 or Llama
    model (names, GGUF shapes, key types), with weights drawn from a seeded normal distribution
    (std 0.02; norm weights 1 +- 0.02), so activations stay finite through all layers;
  - takes the tokenizer from a Hugging Face tokenizer.json of the Qwen vocabulary
    (`--vocab qwen-json:PATH`, .gz allowed) or copies every `tokenizer.*` key of a GGUF file
    (`--vocab gguf:PATH`); the vocabulary is padded with `[PAD<id>]` tokens up to the shape's
    vocabulary size, as llama.cpp's converter does;
  - stores 2-D weights as F32, F16, BF16, Q8_0, Q4_0, Q5_0 (quantized by the gguf package),
    Q4_K, Q5_K, Q6_K (tools/quantize.py) or llama.cpp's Q4_K_M mix; K-quant tensors whose rows
    are not a multiple of 256 fall back as llama.cpp does (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0);
  - streams tensors to disk one at a time, quantizes in parallel threads, and with
    --reuse-layers (default for models of 1e9 parameters or more) writes layer 0's bytes for
    every layer, which is enough for speed measurements (a 7B file: under a minute on 16 cores).

What it does not do:
  - produce a model that says anything sensible: the weights are noise;
  - reproduce llama-quantize's bytes (the K-quant scale search differs; the type of every
    tensor, including the Q4_K_M mix, does follow llama.cpp);
  - write other architectures, MoE, rope scaling, or split files.

Run `python3 tools/gen_model.py --help`; tools/README.md has examples.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT
from gguf import LlamaFileType as FT
from gguf import TokenType

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quantize  # noqa: E402  (tools/quantize.py, next to this file)

# ----------------------------------------------------------------------------------------------
# Shapes

@dataclass(frozen=True)
class Shape:
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_vocab: int | None  # None: as many as the tokenizer has tokens
    rope_theta: float
    rms_eps: float
    n_ctx: int
    tied: bool  # token_embd.weight doubles as the output matrix (no output.weight)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


# From the Hugging Face config.json of Qwen2.5-{0.5B,1.5B,7B}-Instruct and SmolLM2-135M.
SHAPES: dict[str, dict[str, Shape]] = {
    "qwen2": {
        "tiny": Shape(256, 512, 2, 4, 2, None, 1e6, 1e-6, 4096, True),
        "0.5b": Shape(896, 4864, 24, 14, 2, 151936, 1e6, 1e-6, 32768, True),
        "1.5b": Shape(1536, 8960, 28, 12, 2, 151936, 1e6, 1e-6, 32768, True),
        "7b": Shape(3584, 18944, 28, 28, 4, 152064, 1e6, 1e-6, 32768, False),
    },
    "llama": {
        "tiny": Shape(256, 512, 2, 4, 2, None, 1e5, 1e-5, 4096, False),
        "135m": Shape(576, 1536, 30, 9, 3, 49152, 1e5, 1e-5, 8192, True),
    },
}
SHAPE_OPTIONS = {  # command-line option -> Shape field it overrides
    "dim": "n_embd", "hidden_dim": "n_ff", "n_layers": "n_layer", "n_heads": "n_head",
    "n_kv_heads": "n_head_kv", "vocab_size": "n_vocab", "ctx": "n_ctx",
    "rope_theta": "rope_theta", "rms_eps": "rms_eps",
}
REUSE_LAYERS_FROM_PARAMS = 1_000_000_000


def resolve_shape(arch: str, name: str, overrides: dict[str, Any], tied: bool | None) -> Shape:
    """Preset `name` ('custom' starts from 'tiny') with the given field overrides applied."""
    base = SHAPES[arch]["tiny" if name == "custom" else name]
    shape = dataclasses.replace(base, **overrides)
    if tied is not None:
        shape = dataclasses.replace(shape, tied=tied)
    if shape.n_embd % shape.n_head or shape.n_head % shape.n_head_kv:
        raise ValueError(f"heads must divide: dim {shape.n_embd}, heads {shape.n_head}, kv heads {shape.n_head_kv}")
    return shape


# ----------------------------------------------------------------------------------------------
# Tokenizer metadata

# tokenizer_config.json "chat_template" of Qwen2.5-*-Instruct.
QWEN25_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

TokenizerKV = dict[str, tuple[Any, VT, VT | None]]  # key -> (value, type, array item type)
TOKENS, TOKEN_TYPES, SCORES = "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"


def load_vocab(spec: str) -> TokenizerKV:
    """Tokenizer keys from 'qwen-json:PATH' (Hugging Face tokenizer.json) or 'gguf:PATH'."""
    kind, _, path = spec.partition(":")
    if kind == "qwen-json" and path:
        return _vocab_from_qwen_json(Path(path))
    if kind == "gguf" and path:
        return _vocab_from_gguf(Path(path))
    raise ValueError(f"--vocab must be qwen-json:PATH or gguf:PATH, got {spec!r}")


def _looks_special(token: str) -> bool:
    return token.startswith("<|") and token.endswith("|>")


def _vocab_from_qwen_json(path: Path) -> TokenizerKV:
    """Qwen tokenizer keys the way convert_hf_to_gguf.py writes them for Qwen2.5-Instruct.

    Added tokens are control tokens (type 3) when marked special or shaped like <|...|>, else
    user-defined (4); ids missing from the file become [PAD<id>] (5). BOS and padding are
    <|endoftext|>, EOS is <|im_end|>.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    by_id = {i: (tok, TokenType.NORMAL) for tok, i in data["model"]["vocab"].items()}
    for added in data["added_tokens"]:
        special = added["special"] or _looks_special(added["content"])
        by_id[added["id"]] = (added["content"], TokenType.CONTROL if special else TokenType.USER_DEFINED)
    n_tokens = max(by_id) + 1
    entries = [by_id.get(i, (f"[PAD{i}]", TokenType.UNUSED)) for i in range(n_tokens)]
    ids = {tok: i for i, (tok, _) in enumerate(entries)}
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return {
        "tokenizer.ggml.model": ("gpt2", VT.STRING, None),
        "tokenizer.ggml.pre": ("qwen2", VT.STRING, None),
        TOKENS: ([tok for tok, _ in entries], VT.ARRAY, VT.STRING),
        TOKEN_TYPES: ([int(t) for _, t in entries], VT.ARRAY, VT.INT32),
        "tokenizer.ggml.merges": (merges, VT.ARRAY, VT.STRING),
        "tokenizer.ggml.eos_token_id": (ids["<|im_end|>"], VT.UINT32, None),
        "tokenizer.ggml.padding_token_id": (ids["<|endoftext|>"], VT.UINT32, None),
        "tokenizer.ggml.bos_token_id": (ids["<|endoftext|>"], VT.UINT32, None),
        "tokenizer.ggml.add_bos_token": (False, VT.BOOL, None),
        "tokenizer.chat_template": (QWEN25_CHAT_TEMPLATE, VT.STRING, None),
    }


def _vocab_from_gguf(path: Path) -> TokenizerKV:
    """Every tokenizer.* key of an existing GGUF file, with its value types."""
    reader = gguf.GGUFReader(path)
    kv: TokenizerKV = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            item_type = field.types[1] if field.types[0] == VT.ARRAY else None
            kv[key] = (field.contents(), field.types[0], item_type)
    if TOKENS not in kv:
        raise ValueError(f"{path} has no {TOKENS}")
    return kv


def token_count(kv: TokenizerKV) -> int:
    return len(kv[TOKENS][0])


def pad_vocab(kv: TokenizerKV, n_vocab: int) -> TokenizerKV:
    """Pad the per-token arrays to n_vocab entries with unused [PAD<id>] tokens."""
    n_tokens = token_count(kv)
    if n_vocab < n_tokens:
        raise ValueError(f"vocab size {n_vocab} is smaller than the tokenizer's {n_tokens} tokens")
    extra = range(n_tokens, n_vocab)
    padding = {
        TOKENS: [f"[PAD{i}]" for i in extra],
        TOKEN_TYPES: [int(TokenType.UNUSED)] * len(extra),
        SCORES: [-1000.0] * len(extra),
    }
    padded = dict(kv)
    for key, pad in padding.items():
        if key in kv:
            values, vtype, item_type = kv[key]
            padded[key] = (list(values) + pad, vtype, item_type)
    return padded


# ----------------------------------------------------------------------------------------------
# Tensor plan and types

# --type -> (base type of 2-D weights, general.file_type)
FILE_TYPES: dict[str, tuple[QT, FT]] = {
    "F32": (QT.F32, FT.ALL_F32),
    "F16": (QT.F16, FT.MOSTLY_F16),
    "BF16": (QT.BF16, FT.MOSTLY_BF16),
    "Q8_0": (QT.Q8_0, FT.MOSTLY_Q8_0),
    "Q4_0": (QT.Q4_0, FT.MOSTLY_Q4_0),
    "Q5_0": (QT.Q5_0, FT.MOSTLY_Q5_0),
    "Q4_K": (QT.Q4_K, FT.MOSTLY_Q4_K_S),  # a pure Q4_K file; Q4_K_S is the closest file type
    "Q5_K": (QT.Q5_K, FT.MOSTLY_Q5_K_S),
    "Q6_K": (QT.Q6_K, FT.MOSTLY_Q6_K),
    "Q4_K_M": (QT.Q4_K, FT.MOSTLY_Q4_K_M),
}
# llama.cpp's replacement when a row length is not a multiple of the block size
FALLBACK = {QT.Q4_K: QT.Q5_0, QT.Q5_K: QT.Q5_1, QT.Q6_K: QT.Q8_0}

INIT = {"weight": (0.0, 0.02), "norm": (1.0, 0.02), "bias": (0.0, 0.02)}  # kind -> (mean, std)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # numpy order (rows, row length); GGUF's ne is the reverse
    qtype: QT
    kind: str  # key of INIT
    source: str  # tensor whose random values this one takes (layer 0's when reusing layers)


def use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's rule for the layers that Q4_K_M stores with more bits."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def q4_k_m_q6_layers(n_layer: int) -> set[int]:
    """Layers whose attn_v and ffn_down llama.cpp's Q4_K_M stores as Q6_K.

    llama-quantize applies use_more_bits() to a counter over the tensors in name order
    (blk.0, blk.1, blk.10, blk.11, ..., blk.2, ...), not to the layer number; this reproduces
    that, so the types match real Q4_K_M files.
    """
    name_order = sorted(range(n_layer), key=lambda i: f"blk.{i}.")
    return {layer for pos, layer in enumerate(name_order) if use_more_bits(pos, n_layer)}


def _q4_k_m_more_bits(name: str, q6_layers: set[int], tied: bool) -> bool:
    """Whether Q4_K_M stores this 2-D tensor as Q6_K: the output matrix, some attn_v/ffn_down."""
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        return True
    return name.endswith((".attn_v.weight", ".ffn_down.weight")) and int(name.split(".")[1]) in q6_layers


def tensor_type(name: str, shape: tuple[int, ...], file_type: str, q6_layers: set[int], tied: bool) -> QT:
    """F32 for 1-D tensors, else `file_type`'s type (Q4_K_M: llama.cpp's mix), with llama.cpp's
    fallback when a row is not a whole number of blocks."""
    if len(shape) == 1:
        return QT.F32
    qtype = FILE_TYPES[file_type][0]
    if file_type == "Q4_K_M" and _q4_k_m_more_bits(name, q6_layers, tied):
        qtype = QT.Q6_K
    block_size = gguf.GGML_QUANT_SIZES[qtype][0]
    if shape[-1] % block_size:
        qtype = FALLBACK.get(qtype, QT.F16)
        if shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
            qtype = QT.F16
    return qtype


def _layer_tensors(arch: str, s: Shape) -> list[tuple[str, tuple[int, ...], str]]:
    """(name suffix, numpy shape, init kind) of each tensor of one block."""
    q_dim, kv_dim = s.n_head * s.head_dim, s.n_head_kv * s.head_dim
    out: list[tuple[str, tuple[int, ...], str]] = [("attn_norm.weight", (s.n_embd,), "norm")]
    for proj, dim in (("attn_q", q_dim), ("attn_k", kv_dim), ("attn_v", kv_dim)):
        out.append((f"{proj}.weight", (dim, s.n_embd), "weight"))
        if arch == "qwen2":
            out.append((f"{proj}.bias", (dim,), "bias"))
    out += [
        ("attn_output.weight", (s.n_embd, q_dim), "weight"),
        ("ffn_norm.weight", (s.n_embd,), "norm"),
        ("ffn_gate.weight", (s.n_ff, s.n_embd), "weight"),
        ("ffn_up.weight", (s.n_ff, s.n_embd), "weight"),
        ("ffn_down.weight", (s.n_embd, s.n_ff), "weight"),
    ]
    return out


def plan_tensors(arch: str, s: Shape, n_vocab: int, file_type: str, reuse_layers: bool) -> list[TensorSpec]:
    """Every tensor of the model, in file order."""
    q6_layers = q4_k_m_q6_layers(s.n_layer)

    def spec(name: str, shape: tuple[int, ...], kind: str, source: str | None = None) -> TensorSpec:
        qtype = tensor_type(name, shape, file_type, q6_layers, s.tied)
        return TensorSpec(name, shape, qtype, kind, source or name)

    specs = [spec("token_embd.weight", (n_vocab, s.n_embd), "weight")]
    for layer in range(s.n_layer):
        for suffix, shape, kind in _layer_tensors(arch, s):
            source = f"blk.0.{suffix}" if reuse_layers else None
            specs.append(spec(f"blk.{layer}.{suffix}", shape, kind, source))
    specs.append(spec("output_norm.weight", (s.n_embd,), "norm"))
    if not s.tied:
        specs.append(spec("output.weight", (n_vocab, s.n_embd), "weight"))
    return specs


# ----------------------------------------------------------------------------------------------
# Tensor values and encoding

CHUNK_ELEMENTS = 1 << 20  # values are drawn (and quantized) in chunks of about this many


def _chunk_rows(shape: tuple[int, ...]) -> int:
    return max(1, CHUNK_ELEMENTS // shape[-1])


def _as_rows(shape: tuple[int, ...]) -> tuple[int, int]:
    return int(np.prod(shape[:-1], dtype=np.int64)), shape[-1]


def _random_chunk(t: TensorSpec, seed: int, index: int) -> np.ndarray:
    """Rows [index * chunk_rows, ...) of the tensor's float values; a pure function of its inputs."""
    n_rows, n_cols = _as_rows(t.shape)
    first = index * _chunk_rows(t.shape)
    count = min(_chunk_rows(t.shape), n_rows - first)
    rng = np.random.default_rng([seed, zlib.crc32(t.source.encode()), index])
    mean, std = INIT[t.kind]
    values = rng.standard_normal((count, n_cols), dtype=np.float32)
    values *= np.float32(std)
    values += np.float32(mean)
    return values


def _n_chunks(t: TensorSpec) -> int:
    n_rows, _ = _as_rows(t.shape)
    return -(-n_rows // _chunk_rows(t.shape))


def tensor_values(t: TensorSpec, seed: int) -> np.ndarray:
    """The float32 values the tensor was generated from (its original before quantization)."""
    chunks = [_random_chunk(t, seed, i) for i in range(_n_chunks(t))]
    return np.concatenate(chunks).reshape(t.shape)


def encoded_layout(t: TensorSpec) -> tuple[np.dtype, tuple[int, ...]]:
    """numpy dtype and shape of the tensor's bytes as written to the file."""
    if t.qtype == QT.F32:
        return np.dtype(np.float32), t.shape
    if t.qtype == QT.F16:
        return np.dtype(np.float16), t.shape
    return np.dtype(np.uint8), gguf.quant_shape_to_byte_shape(t.shape, t.qtype)


def encode_tensor(t: TensorSpec, seed: int, pool: ThreadPoolExecutor) -> np.ndarray:
    """Draw and quantize the tensor chunk by chunk in the thread pool (numpy releases the GIL)."""
    dtype, layout = encoded_layout(t)
    n_rows, _ = _as_rows(t.shape)
    out = np.empty((n_rows, layout[-1]), dtype=dtype)
    step = _chunk_rows(t.shape)

    def work(index: int) -> None:
        out[index * step:(index + 1) * step] = quantize.quantize(_random_chunk(t, seed, index), t.qtype)

    list(pool.map(work, range(_n_chunks(t))))
    return out.reshape(layout)


# ----------------------------------------------------------------------------------------------
# Writing

@dataclass(frozen=True)
class Model:
    arch: str
    shape: Shape
    file_type: str  # key of FILE_TYPES
    name: str
    vocab: TokenizerKV  # already padded to the model's vocabulary size
    specs: list[TensorSpec]

    @property
    def n_vocab(self) -> int:
        return token_count(self.vocab)


def add_metadata(w: gguf.GGUFWriter, m: Model) -> None:
    """The keys convert_hf_to_gguf.py writes (general.architecture comes with the writer)."""
    s = m.shape
    w.add_type("model")
    w.add_name(m.name)
    w.add_block_count(s.n_layer)
    w.add_context_length(s.n_ctx)
    w.add_embedding_length(s.n_embd)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_rope_freq_base(s.rope_theta)
    w.add_layer_norm_rms_eps(s.rms_eps)
    w.add_file_type(FILE_TYPES[m.file_type][1])
    if m.arch == "llama":
        w.add_vocab_size(m.n_vocab)
        w.add_rope_dimension_count(s.head_dim)
    for key, (value, vtype, item_type) in m.vocab.items():
        w.add_key_value(key, value, vtype, item_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress_label(name: str, n_layer: int) -> str | None:
    """What finishing tensor `name` completes, if worth a progress line."""
    if name.endswith(".ffn_down.weight"):  # the last tensor of a layer
        return f"layer {int(name.split('.')[1]) + 1}/{n_layer}"
    if name in ("token_embd.weight", "output.weight"):
        return name
    return None


def _stream_tensors(w: gguf.GGUFWriter, m: Model, seed: int, threads: int) -> None:
    """Encode and write the tensors in plan order; tensors sharing a source are encoded once."""
    start = time.monotonic()
    shared_sources = {t.source for t in m.specs if t.source != t.name}
    encoded: dict[tuple[str, QT], np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for t in m.specs:
            key = (t.source, t.qtype)
            data = encoded.get(key)
            if data is None:
                data = encode_tensor(t, seed, pool)
                if t.source in shared_sources:
                    encoded[key] = data
            w.write_tensor_data(data)
            label = _progress_label(t.name, m.shape.n_layer)
            if label:
                _progress(f"  {label} done, {time.monotonic() - start:.1f} s")


def write_model(path: Path, m: Model, seed: int, threads: int) -> None:
    """Write header, metadata and tensor infos, then stream the tensors; path appears when complete."""
    tmp_path = path.with_name(path.name + ".tmp")
    w = gguf.GGUFWriter(tmp_path, m.arch)
    add_metadata(w, m)
    for t in m.specs:
        dtype, layout = encoded_layout(t)
        # raw_dtype names the GGML type; with a non-uint8 dtype the shape is taken as elements
        w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), dtype.itemsize * int(np.prod(layout)), t.qtype)
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        _stream_tensors(w, m, seed, threads)
    except BaseException:
        w.close()
        tmp_path.unlink(missing_ok=True)
        raise
    w.close()
    os.replace(tmp_path, path)


# ----------------------------------------------------------------------------------------------
# Command line

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="shapes: " + "; ".join(f"{a}: {', '.join(SHAPES[a])}, custom" for a in SHAPES))
    p.add_argument("--arch", choices=sorted(SHAPES), default="qwen2")
    p.add_argument("--shape", default="tiny", help="preset (see below); 'custom' starts from tiny")
    p.add_argument("--type", choices=list(FILE_TYPES), default="Q4_K_M", help="weight type or mix (default Q4_K_M)")
    p.add_argument("--vocab", required=True, help="qwen-json:PATH (tokenizer.json[.gz]) or gguf:PATH")
    p.add_argument("--out", required=True, type=Path, help="output .gguf file")
    p.add_argument("--seed", type=int, default=0)
    tie = p.add_mutually_exclusive_group()
    tie.add_argument("--tied", dest="tied", action="store_true", default=None, help="no output.weight")
    tie.add_argument("--untied", dest="tied", action="store_false", help="write output.weight")
    p.add_argument("--reuse-layers", action=argparse.BooleanOptionalAction, default=None,
                   help="write layer 0's tensors for every layer (default: on from 1e9 parameters)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    g = p.add_argument_group("shape overrides", "apply to any preset; the vocabulary size is at least the "
                             "tokenizer's token count")
    for option, field in SHAPE_OPTIONS.items():
        kind = float if field in ("rope_theta", "rms_eps") else int
        g.add_argument("--" + option.replace("_", "-"), dest=option, type=kind, metavar="N")
    args = p.parse_args(argv)
    if args.shape != "custom" and args.shape not in SHAPES[args.arch]:
        p.error(f"--shape for {args.arch} must be one of {', '.join(SHAPES[args.arch])}, custom")
    return args


def count_params(specs: list[TensorSpec]) -> int:
    return sum(int(np.prod(t.shape)) for t in specs)


def build_model(args: argparse.Namespace) -> Model:
    overrides = {field: getattr(args, opt) for opt, field in SHAPE_OPTIONS.items() if getattr(args, opt) is not None}
    shape = resolve_shape(args.arch, args.shape, overrides, args.tied)
    vocab = load_vocab(args.vocab)
    n_vocab = max(shape.n_vocab or 0, token_count(vocab))
    specs = plan_tensors(args.arch, shape, n_vocab, args.type, reuse_layers=False)
    reuse = args.reuse_layers
    if reuse is None:
        reuse = count_params(specs) >= REUSE_LAYERS_FROM_PARAMS
    if reuse:
        specs = plan_tensors(args.arch, shape, n_vocab, args.type, reuse_layers=True)
    name = f"random {args.arch} {args.shape} {args.type} seed {args.seed}"
    return Model(args.arch, shape, args.type, name, pad_vocab(vocab, n_vocab), specs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    m = build_model(args)
    params = count_params(m.specs)
    reuse = any(t.source != t.name for t in m.specs)
    _progress(f"{args.out}: {m.arch} {args.shape} {m.file_type}, {params / 1e6:.1f}M params, "
              f"vocab {m.n_vocab}, {'tied' if m.shape.tied else 'untied'}, "
              f"reuse layers {'on' if reuse else 'off'}, {args.threads} threads")
    write_model(args.out, m, args.seed, max(1, args.threads))
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {size / 2**20:.1f} MiB, {params / 1e6:.1f}M params, {m.file_type}, "
          f"{time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
