#!/usr/bin/env python3
"""Independent reference logits for orcd: Hugging Face transformers fed the weights of a GGUF file.

What it does:
  - reads a qwen2 or llama GGUF with the `gguf` package (GGUFReader), dequantizes every tensor to float32
    (gguf.quants.dequantize), renames it to the Hugging Face name, undoes llama.cpp's Q/K row permutation
    for the llama architecture, and loads it into transformers' Qwen2ForCausalLM / LlamaForCausalLM built
    from the GGUF's hyperparameters (eager attention, float32, TF32 off);
  - runs it on prompts given as token ids (a JSON file) and writes golden files under --out: per prompt the
    top-k logits at every position, the full last-position logits (float16), the 32-token greedy
    continuation (generate(do_sample=False), KV cache) with the top-k logits of each decode step, and for
    one prompt the residual stream after every layer; plus index.json (model sha256, versions, command);
  - checks itself: the greedy continuation against a full forward over prompt+continuation, and the hidden
    states and logits of one prompt against a small numpy forward written in llama.cpp's conventions
    (raw GGUF weights, adjacent-pair RoPE for llama, NEOX RoPE for qwen2), which independently validates
    the weight mapping and the un-permutation;
  - with --make-prompts, writes a prompt file (token ids) from built-in texts, tokenized with Hugging Face
    `tokenizers`: the Qwen tokenizer.json, or a byte-level BPE built from a GGUF's own vocabulary.

What it does not do:
  - run orcd or compare against it (a consumer reads the golden files; tests/golden/README.md says how);
  - support rope scaling, partial rotary, MoE, sliding-window attention or architectures other than
    qwen2/llama: it stops with a message instead;
  - need torch/transformers for anything but the model run: the GGUF, tokenizer and numpy parts import
    only numpy, gguf and tokenizers, so tests can use them.

Usage (tests/golden/README.md has the details and the GPU-machine command):
  python3 tools/hf_reference.py --model models/X.gguf --prompts tests/golden/prompts_qwen.json \\
      --out tests/golden/NAME/ [--device cuda|cpu] [--top-k 20] [--hidden-states-prompt NAME] \\
      [--new-tokens 32] [--last-positions 0]
  python3 tools/hf_reference.py --make-prompts qwen --tokenizer ../shared/data/qwen-tokenizer.json.gz \\
      --prompts-out tests/golden/prompts_qwen.json
  python3 tools/hf_reference.py --make-prompts smollm --tokenizer models/smollm2-135m-instruct-q4_1.gguf \\
      --prompts-out tests/golden/prompts_smollm.json
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1

# ----------------------------------------------------------------------------------------------
# GGUF: hyperparameters, tensors, vocabulary (numpy + gguf only)

# GGUF token types (llama.cpp's llama_token_type)
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class HParams:
    arch: str
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    n_ctx: int
    rope_theta: float
    norm_eps: float
    tied: bool  # no output.weight: the LM head is token_embd
    qkv_bias: bool
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None


class GGUFModel:
    """A GGUF file opened with GGUFReader: metadata, hyperparameters, vocabulary, lazily dequantized tensors."""

    def __init__(self, path: str | os.PathLike):
        import gguf

        self.path = Path(path)
        self.reader = gguf.GGUFReader(str(path))
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.hp = self._hparams()

    def kv(self, key: str, default=KeyError):
        f = self.reader.fields.get(key)
        if f is None:
            if default is KeyError:
                raise SystemExit(f"{self.path}: metadata key {key} missing")
            return default
        return f.contents()

    def _hparams(self) -> HParams:
        arch = self.kv("general.architecture")
        if arch not in ("qwen2", "llama"):
            raise SystemExit(f"{self.path}: architecture {arch!r} not supported (expected qwen2 or llama)")
        a = arch
        dim = int(self.kv(f"{a}.embedding_length"))
        n_heads = int(self.kv(f"{a}.attention.head_count"))
        n_kv_heads = int(self.kv(f"{a}.attention.head_count_kv", n_heads))
        head_dim = dim // n_heads
        if dim % n_heads:
            raise SystemExit(f"embedding_length {dim} not a multiple of head_count {n_heads}")
        for key in (f"{a}.attention.key_length", f"{a}.attention.value_length", f"{a}.rope.dimension_count"):
            v = self.kv(key, None)
            if v is not None and int(v) != head_dim:
                raise SystemExit(f"{key} = {v}, expected {head_dim} (dim/n_heads): not supported")
        scaling = self.kv(f"{a}.rope.scaling.type", None)
        if scaling not in (None, "none") and float(self.kv(f"{a}.rope.scaling.factor", 1.0)) != 1.0:
            raise SystemExit(f"rope scaling {scaling!r} not supported")
        for name in self.tensors:
            if not name.startswith("blk.") and name not in ("token_embd.weight", "output_norm.weight",
                                                             "output.weight"):
                raise SystemExit(f"{self.path}: tensor {name} not supported (e.g. rope_freqs: rope scaling)")
        emb = self.tensors["token_embd.weight"]
        vocab_size = int(emb.shape[1])  # ne = [dim, vocab]: one row per token
        if int(emb.shape[0]) != dim:
            raise SystemExit(f"token_embd ne[0] = {emb.shape[0]}, expected embedding_length {dim}")
        return HParams(
            arch=arch, dim=dim, hidden_dim=int(self.kv(f"{a}.feed_forward_length")),
            n_layers=int(self.kv(f"{a}.block_count")), n_heads=n_heads, n_kv_heads=n_kv_heads,
            head_dim=head_dim, vocab_size=vocab_size, n_ctx=int(self.kv(f"{a}.context_length")),
            rope_theta=float(self.kv(f"{a}.rope.freq_base", 10000.0)),
            norm_eps=float(self.kv(f"{a}.attention.layer_norm_rms_epsilon")),
            tied="output.weight" not in self.tensors, qkv_bias="blk.0.attn_q.bias" in self.tensors,
            bos_id=_int_or_none(self.kv("tokenizer.ggml.bos_token_id", None)),
            eos_id=_int_or_none(self.kv("tokenizer.ggml.eos_token_id", None)),
            pad_id=_int_or_none(self.kv("tokenizer.ggml.padding_token_id", None)),
        )

    def tensor(self, name: str) -> np.ndarray:
        """Dequantized float32 array in numpy order (ne reversed): a GGUF matrix ne=[in, out] is (out, in)."""
        from gguf.quants import dequantize

        t = self.tensors[name]
        a = dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        a = np.ascontiguousarray(a, dtype=np.float32).reshape(shape)
        if not a.flags.writeable:  # F32 tensors are views of the read-only file mapping
            a = a.copy()
        return a

    def sha256(self) -> str:
        return sha256_of(self.path)

    # -- vocabulary --
    def tokens(self) -> list[str]:
        f = self.reader.fields["tokenizer.ggml.tokens"]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def token_types(self) -> list[int]:
        f = self.reader.fields.get("tokenizer.ggml.token_type")
        if f is None:
            return [TOKEN_NORMAL] * len(self.tokens())
        return [int(f.parts[i][0]) for i in f.data]

    def merges(self) -> list[str]:
        f = self.reader.fields["tokenizer.ggml.merges"]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def stop_ids(self) -> list[int]:
        """End-of-generation ids: the metadata's EOS/EOT plus the usual ChatML/GPT end tokens if in the vocab."""
        ids = set()
        for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
            v = self.kv(key, None)
            if v is not None:
                ids.add(int(v))
        toks = self.tokens()
        index = {t: i for i, t in enumerate(toks)}
        for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            if t in index:
                ids.add(index[t])
        return sorted(ids)


def _int_or_none(v):
    return None if v is None else int(v)


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


# GGUF base name -> Hugging Face name (per layer: blk.N.<key> -> model.layers.N.<value>)
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def hf_name(gguf_name: str) -> str:
    if gguf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{LAYER_NAMES[parts[2]]}"
    raise SystemExit(f"tensor {gguf_name}: no Hugging Face name known")


def expected_shapes(hp: HParams) -> dict[str, tuple]:
    """Every Hugging Face parameter the GGUF must provide, with its (out, in) shape."""
    d, f, hd = hp.dim, hp.hidden_dim, hp.head_dim
    q, kv = hp.n_heads * hd, hp.n_kv_heads * hd
    shapes = {"model.embed_tokens.weight": (hp.vocab_size, d), "model.norm.weight": (d,)}
    if not hp.tied:
        shapes["lm_head.weight"] = (hp.vocab_size, d)
    for l in range(hp.n_layers):
        p = f"model.layers.{l}."
        shapes.update({
            p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (q, d), p + "self_attn.k_proj.weight": (kv, d),
            p + "self_attn.v_proj.weight": (kv, d), p + "self_attn.o_proj.weight": (d, q),
            p + "mlp.gate_proj.weight": (f, d), p + "mlp.up_proj.weight": (f, d), p + "mlp.down_proj.weight": (d, f),
        })
        if hp.qkv_bias:
            shapes.update({p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                           p + "self_attn.v_proj.bias": (kv,)})
    return shapes


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter permutation (HF rotate-half layout -> GGUF adjacent-pair layout), for tests.

    Within each head of head_dim rows, HF row s*head_dim/2 + j (s in {0,1}) becomes GGUF row 2*j + s, so
    the HF RoPE pair (j, j + head_dim/2) becomes the adjacent pair (2j, 2j+1). For K, n_head is n_kv_heads."""
    rest = w.shape[1:]
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of permute_qk: GGUF row 2*j + s of each head goes back to HF row s*head_dim/2 + j."""
    rest = w.shape[1:]
    return np.ascontiguousarray(
        w.reshape(n_head, w.shape[0] // n_head // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape))


def hf_state_dict(g: GGUFModel, log=None) -> dict[str, np.ndarray]:
    """Every GGUF tensor dequantized to float32 under its Hugging Face name, shape-checked; llama Q/K
    (weights and biases, if any) un-permuted back to HF's rotate-half layout."""
    hp = g.hp
    want = expected_shapes(hp)
    sd = {}
    t0 = time.time()
    for name in g.tensors:
        key = hf_name(name)
        if key not in want:
            raise SystemExit(f"tensor {name} ({key}) not expected for this configuration")
        a = g.tensor(name)
        if a.shape != want[key]:
            raise SystemExit(f"tensor {name}: shape {a.shape} (from GGUF ne {g.tensors[name].shape.tolist()}), "
                             f"expected {want[key]} for {key}")
        if hp.arch == "llama" and (".attn_q." in name or ".attn_k." in name):
            a = unpermute_qk(a, hp.n_heads if ".attn_q." in name else hp.n_kv_heads)
        if not np.all(np.isfinite(a)):
            raise SystemExit(f"tensor {name}: non-finite values after dequantization")
        sd[key] = a
    missing = sorted(set(want) - set(sd))
    if missing:
        raise SystemExit(f"GGUF lacks tensors for: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if log:
        log(f"dequantized {len(sd)} tensors ({sum(a.size for a in sd.values()) / 1e6:.1f} M values) "
            f"in {time.time() - t0:.1f} s")
    return sd


# ----------------------------------------------------------------------------------------------
# Byte-level BPE vocabulary: decoding ids to text, building a tokenizer from a GGUF

def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (all 256 bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_UNICODE_TO_BYTE = {c: b for b, c in bytes_to_unicode().items()}


def decode_ids(tokens: list[str], types: list[int], ids) -> str:
    """Text of ids in a byte-level BPE vocabulary; control tokens verbatim; invalid UTF-8 as U+FFFD."""
    out = bytearray()
    for i in ids:
        t = tokens[int(i)]
        if types[int(i)] in (TOKEN_CONTROL, TOKEN_USER_DEFINED) or any(c not in _UNICODE_TO_BYTE for c in t):
            out += t.encode("utf-8")
        else:
            out += bytes(_UNICODE_TO_BYTE[c] for c in t)
    return out.decode("utf-8", errors="replace")


def load_tokenizer(spec: str):
    """A `tokenizers.Tokenizer` from a tokenizer.json(.gz) or from a GGUF's vocabulary (byte-level BPE)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if spec.endswith(".gguf"):
        g = GGUFModel(spec)
        model = g.kv("tokenizer.ggml.model")
        pre = g.kv("tokenizer.ggml.pre", "default")
        if model != "gpt2":
            raise SystemExit(f"{spec}: tokenizer model {model!r}: only byte-level BPE (gpt2) is built here")
        if pre not in ("smollm", "starcoder", "gpt2", "default"):
            raise SystemExit(f"{spec}: pre-tokenizer {pre!r} not built here (smollm/starcoder/gpt2 only)")
        tokens, types = g.tokens(), g.token_types()
        vocab = {t: i for i, t in enumerate(tokens)}
        merges = [tuple(m.split(" ", 1)) for m in g.merges()]
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
        # llama.cpp's smollm/starcoder pre-tokenizer: every digit alone, then GPT-2's regex.
        steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if pre in ("smollm", "starcoder"):
            steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.ByteLevel()
        special = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types)
                   if ty == TOKEN_CONTROL]
        tok.add_special_tokens(special)
        return tok
    raw = gzip.open(spec, "rb").read() if spec.endswith(".gz") else open(spec, "rb").read()
    return Tokenizer.from_str(raw.decode("utf-8"))


# ----------------------------------------------------------------------------------------------
# Built-in prompt texts

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

LONG_TEXT = (
    "The history of lighthouses stretches back more than two thousand years. The most famous of the ancient "
    "lighthouses, the Pharos of Alexandria, was built in the third century BC on a small island at the entrance "
    "to the harbour of Alexandria, in Egypt. Ancient writers said that its light could be seen from many miles "
    "out at sea, and for centuries it was one of the tallest structures made by human hands. Later, the Romans "
    "built lighthouses along the coasts of their empire, from Spain to the shores of the Black Sea, and some of "
    "them still stand today. In the Middle Ages, monks and local towns kept fires burning on headlands to warn "
    "sailors of rocks and shallow water. The great change came in the eighteenth and nineteenth centuries, when "
    "engineers learned to build tall towers on bare rocks in the open sea, and when the French physicist "
    "Augustin Fresnel designed a lens that could gather the light of a single lamp into a powerful beam. "
    "Keepers lived in these towers for weeks at a time, cleaning the lenses, trimming the wicks and winding the "
    "clockwork that turned the light. Today almost every lighthouse is automatic, and"
)


def chatml(system: str, user: str) -> str:
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n")


def prompt_texts(which: str) -> list[tuple[str, str]]:
    system = QWEN_SYSTEM if which == "qwen" else SMOLLM_SYSTEM
    return [
        ("english", "The first person to walk on the Moon was Neil Armstrong, who"),
        ("code", 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n'),
        ("chat", chatml(system, "What is the capital of France?")),
        ("chat_code", chatml(system, "Write a Python function that checks whether a number is prime.")),
        ("cjk", "北京是中国的首都，也是一座有三千多年历史的古城。東京は日本の首都で、世界で最も人口の多い都市の一つです。"),
        ("long", LONG_TEXT),
        ("one_token", "Hello"),
    ]


def make_prompts(which: str, tokenizer_spec: str, out_path: str) -> None:
    tok = load_tokenizer(tokenizer_spec)
    prompts = []
    for name, text in prompt_texts(which):
        ids = tok.encode(text, add_special_tokens=False).ids
        back = tok.decode(ids, skip_special_tokens=False)
        if back != text:
            raise SystemExit(f"prompt {name}: ids do not decode back to the text ({back!r})")
        if name == "one_token" and len(ids) != 1:
            raise SystemExit(f"prompt one_token: {text!r} is {len(ids)} tokens")
        prompts.append({"name": name, "text": text, "ids": ids})
    for special in ("<|im_start|>", "<|im_end|>"):
        sid = tok.token_to_id(special)
        chat = next(p for p in prompts if p["name"] == "chat")
        if sid is None or chat["ids"].count(sid) != 3 - (special == "<|im_end|>"):
            raise SystemExit(f"{special} is not a single token in the chat prompt")
    doc = {
        "about": f"Prompts for tools/hf_reference.py ({which} vocabulary), as token ids; 'text' is informational.",
        "tokenizer": os.path.basename(tokenizer_spec),
        "tokenizer_how": ("Hugging Face tokenizers, Tokenizer.from_str(qwen-tokenizer.json), "
                          "encode(text, add_special_tokens=False)" if which == "qwen" else
                          "Hugging Face tokenizers BPE built from the GGUF's tokenizer.ggml.tokens/merges, "
                          "pre-tokenizer Digits(individual) + ByteLevel(GPT-2 regex), control tokens as "
                          "special added tokens; encode(text, add_special_tokens=False)"),
        "command": shlex.join(["python3", "tools/hf_reference.py"] + sys.argv[1:]),
        "prompts": prompts,
    }
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for p in prompts:
        print(f"{p['name']:10s} {len(p['ids']):4d} tokens", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# Numpy forward in llama.cpp's conventions (raw GGUF weights, no un-permutation)

def rope_gguf(x: np.ndarray, pos: np.ndarray, theta: float, neox: bool) -> np.ndarray:
    """x (T, n_head, head_dim). neox: pairs (i, i + head_dim/2) (qwen2); else adjacent pairs (2i, 2i+1)
    (llama, as llama.cpp applies it to the permuted GGUF weights). Angle of pair i: pos * theta^(-2i/hd)."""
    hd = x.shape[-1]
    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = pos[:, None].astype(np.float64) * inv[None, :]  # (T, hd/2)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if neox:
        a, b = x[..., : hd // 2], x[..., hd // 2:]
    else:
        a, b = x[..., 0::2], x[..., 1::2]
    ra, rb = a * cos - b * sin, a * sin + b * cos
    out = np.empty_like(x)
    if neox:
        out[..., : hd // 2], out[..., hd // 2:] = ra, rb
    else:
        out[..., 0::2], out[..., 1::2] = ra, rb
    return out


def numpy_forward(g: GGUFModel, ids, dtype=np.float64, weights: dict | None = None):
    """Full-sequence forward from the raw GGUF tensors. Returns (logits (T, V), hidden (n_layers+2, T, dim)):
    hidden[0] the embeddings, hidden[1+l] the residual stream after layer l, hidden[-1] after output_norm.
    weights: optional dict used as a cache of GGUF name -> float32 array (without it, each tensor is
    dequantized when used and dropped, which keeps memory to about one float64 matrix)."""
    hp = g.hp
    def w(name):
        if weights is None:
            return g.tensor(name).astype(dtype, copy=False)
        if name not in weights:
            weights[name] = g.tensor(name)
        return weights[name].astype(dtype, copy=False)

    def rmsnorm(x, name):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + hp.norm_eps) * w(name)

    ids = np.asarray(ids, dtype=np.int64)
    T, hd, nh, nkv = len(ids), hp.head_dim, hp.n_heads, hp.n_kv_heads
    pos = np.arange(T)
    neox = hp.arch == "qwen2"
    x = w("token_embd.weight")[ids].astype(dtype)
    hidden = [x.copy()]
    mask = np.triu(np.full((T, T), -np.inf, dtype=dtype), k=1)
    for l in range(hp.n_layers):
        p = f"blk.{l}."
        h = rmsnorm(x, p + "attn_norm.weight")
        q, k, v = h @ w(p + "attn_q.weight").T, h @ w(p + "attn_k.weight").T, h @ w(p + "attn_v.weight").T
        if hp.qkv_bias:
            q, k, v = q + w(p + "attn_q.bias"), k + w(p + "attn_k.bias"), v + w(p + "attn_v.bias")
        q = rope_gguf(q.reshape(T, nh, hd), pos, hp.rope_theta, neox)
        k = rope_gguf(k.reshape(T, nkv, hd), pos, hp.rope_theta, neox)
        v = v.reshape(T, nkv, hd)
        att = np.empty((T, nh, hd), dtype=dtype)
        for hh in range(nh):
            kvh = hh // (nh // nkv)
            s = q[:, hh, :] @ k[:, kvh, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            att[:, hh, :] = s @ v[:, kvh, :]
        x = x + att.reshape(T, nh * hd) @ w(p + "attn_output.weight").T
        h = rmsnorm(x, p + "ffn_norm.weight")
        gate, up = h @ w(p + "ffn_gate.weight").T, h @ w(p + "ffn_up.weight").T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w(p + "ffn_down.weight").T
        hidden.append(x.copy())
    x = rmsnorm(x, "output_norm.weight")
    hidden.append(x)
    head = w("token_embd.weight" if hp.tied else "output.weight")
    return x @ head.T, np.stack(hidden)


# ----------------------------------------------------------------------------------------------
# Hugging Face model

def setup_torch(device: str):
    import torch

    torch.set_default_dtype(torch.float32)
    torch.set_float32_matmul_precision("highest")  # no TF32 / bf16 tricks in float32 matmuls
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    return torch


def build_hf_model(hp: HParams, sd: dict[str, np.ndarray], device: str):
    """Qwen2ForCausalLM / LlamaForCausalLM with the given float32 weights, eager attention, eval mode."""
    import torch
    import transformers

    cls_cfg, cls_model = ((transformers.Qwen2Config, transformers.Qwen2ForCausalLM) if hp.arch == "qwen2"
                          else (transformers.LlamaConfig, transformers.LlamaForCausalLM))
    kw = dict(
        vocab_size=hp.vocab_size, hidden_size=hp.dim, intermediate_size=hp.hidden_dim,
        num_hidden_layers=hp.n_layers, num_attention_heads=hp.n_heads, num_key_value_heads=hp.n_kv_heads,
        max_position_embeddings=hp.n_ctx, rms_norm_eps=hp.norm_eps, hidden_act="silu",
        tie_word_embeddings=hp.tied, attention_dropout=0.0, use_cache=True,
        bos_token_id=hp.bos_id, eos_token_id=hp.eos_id, pad_token_id=hp.pad_id,
    )
    if hp.arch == "qwen2":
        if not hp.qkv_bias:
            raise SystemExit("qwen2 GGUF without attn_q.bias: transformers' Qwen2 always has Q/K/V biases")
        kw.update(use_sliding_window=False)
    else:
        kw.update(head_dim=hp.head_dim, attention_bias=False, mlp_bias=False, pretraining_tp=1)
        if hp.qkv_bias:
            raise SystemExit("llama GGUF with Q/K/V biases: LlamaConfig.attention_bias would add an O bias too")
    if hasattr(cls_cfg, "rope_parameters") or "rope_parameters" in getattr(cls_cfg, "__dataclass_fields__", {}):
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": hp.rope_theta}  # transformers >= 5
    else:
        kw["rope_theta"] = hp.rope_theta
    cfg = cls_cfg(**kw)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = cls_model(cfg)
    tensors = {k: torch.from_numpy(v) for k, v in sd.items()}
    if hp.tied:
        tensors.setdefault("lm_head.weight", tensors["model.embed_tokens.weight"])
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or missing:
        raise SystemExit(f"load_state_dict: missing {missing}, unexpected {unexpected}")
    model = model.to(device=device, dtype=torch.float32).eval()
    # every parameter is float32 and holds exactly the GGUF values
    for name, p in model.named_parameters():
        if p.dtype != torch.float32:
            raise SystemExit(f"{name} is {p.dtype}, expected float32")
        src = tensors.get(name)
        if src is None or not torch.equal(p.detach().cpu(), src):
            raise SystemExit(f"{name}: not loaded from the GGUF")
    if hp.tied and model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        if not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight):
            raise SystemExit("tied model: lm_head differs from embed_tokens")
    if model.config._attn_implementation != "eager":
        raise SystemExit(f"attention implementation is {model.config._attn_implementation}, expected eager")
    # the rotary frequencies must be theta^(-2i/head_dim) with the GGUF's theta
    inv = getattr(model.model.rotary_emb, "inv_freq", None)
    want = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2, dtype=np.float64) / hp.head_dim))
    if inv is None or inv.shape[0] != hp.head_dim // 2 or not np.allclose(inv.double().cpu().numpy(), want, rtol=1e-6):
        raise SystemExit("rotary inv_freq does not match rope.freq_base")
    return model


def topk_np(torch, logits, k: int):
    v, i = torch.topk(logits, k, dim=-1, largest=True, sorted=True)
    return v.float().cpu().numpy().astype(np.float32), i.cpu().numpy().astype(np.int32)


def run_prompt(torch, model, hp: HParams, ids: list[int], args, hidden: bool):
    """One prompt: prefill logits (+ hidden states), greedy generation, full-forward cross-check."""
    dev = next(model.parameters()).device
    x = torch.tensor([ids], dtype=torch.long, device=dev)
    res = {}
    captured = {}
    hooks = []
    if hidden:
        def save(key):
            def hook(_mod, _inp, out):
                captured[key] = (out[0] if isinstance(out, tuple) else out).detach()
            return hook
        hooks.append(model.model.embed_tokens.register_forward_hook(save("embed")))
        for l, layer in enumerate(model.model.layers):
            hooks.append(layer.register_forward_hook(save(l)))
        hooks.append(model.model.norm.register_forward_hook(save("norm")))
    with torch.no_grad():
        out = model(input_ids=x, use_cache=False, output_hidden_states=hidden)
    for h in hooks:
        h.remove()
    logits = out.logits[0].float()  # (T, V)
    T = logits.shape[0]
    n_pos = T if args.last_positions <= 0 else min(T, args.last_positions)
    res["positions"] = np.arange(T - n_pos, T, dtype=np.int32)
    sel = logits[T - n_pos:]
    res["topk_logits"], res["topk_ids"] = topk_np(torch, sel, args.top_k)
    res["logsumexp"] = torch.logsumexp(sel.double(), dim=-1).cpu().numpy().astype(np.float32)
    res["last_logits"] = logits[-1].cpu().numpy().astype(np.float16)
    last32 = logits[-1].cpu().numpy()
    if hidden:
        hs = [captured["embed"]] + [captured[l] for l in range(hp.n_layers)] + [captured["norm"]]
        hs = torch.stack([h[0] for h in hs]).cpu().numpy().astype(np.float32)  # (L+2, T, dim)
        # transformers' own output_hidden_states: entries 0..L-1 are the embeddings and layer outputs 0..L-2
        ref = out.hidden_states
        for i in range(hp.n_layers):
            if not np.array_equal(ref[i][0].cpu().numpy(), hs[i]):
                raise SystemExit(f"hidden state {i}: forward hook and output_hidden_states disagree")
        res["hidden"] = hs

    # greedy continuation with the KV cache: exactly new_tokens tokens, no stop on EOS
    from transformers import GenerationConfig

    gc = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=args.new_tokens,
                          min_new_tokens=args.new_tokens, eos_token_id=None,
                          pad_token_id=hp.pad_id if hp.pad_id is not None else 0,
                          temperature=None, top_p=None, top_k=None, use_cache=True,
                          return_dict_in_generate=True, output_logits=True)
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        g = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gc)
    gen = g.sequences[0, T:].cpu().numpy().astype(np.int32)
    if len(gen) != args.new_tokens:
        raise SystemExit(f"generate returned {len(gen)} tokens, expected {args.new_tokens}")
    step_logits = torch.stack([s[0] for s in g.logits]).float()  # (N, V), raw logits of each decode step
    res["greedy_ids"] = gen
    res["greedy_topk_logits"], res["greedy_topk_ids"] = topk_np(torch, step_logits, args.top_k)
    if not np.array_equal(step_logits.argmax(-1).cpu().numpy(), gen):
        raise SystemExit("generate: a token is not the argmax of its step's logits")
    # step 0 of generate is the prefill again: same logits as the forward above (up to kernel order)
    d0 = float((step_logits[0] - logits[-1]).abs().max())
    # full forward over prompt + continuation: its argmaxes should reproduce the continuation
    full = torch.tensor([list(ids) + gen.tolist()], dtype=torch.long, device=dev)
    with torch.no_grad():
        fl = model(input_ids=full, use_cache=False).logits[0, T - 1: T - 1 + len(gen)].float()
    fa = fl.argmax(-1).cpu().numpy()
    mism = [int(i) for i in np.nonzero(fa != gen)[0]]
    dmax = float((fl - step_logits).abs().max())
    top2 = res["greedy_topk_logits"][:, :2]
    margins = top2[:, 0] - top2[:, 1]
    res["checks"] = {
        "prefill_vs_generate_step0_max_abs": d0,
        "decode_vs_full_forward_max_abs": dmax,
        "full_forward_argmax_mismatch_steps": mism,
        "min_greedy_margin": float(margins.min()),
        "min_greedy_margin_step": int(margins.argmin()),
        "last_logits_argmax": int(np.argmax(last32)),
    }
    return res


# ----------------------------------------------------------------------------------------------
# Main

def log(msg: str) -> None:
    print(f"hf_reference: {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", help="GGUF file (qwen2 or llama)")
    p.add_argument("--prompts", help='JSON file: {"prompts": [{"name": ..., "ids": [...]}, ...]}')
    p.add_argument("--out", help="output folder (created); index.json and one .npz per prompt")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--last-positions", type=int, default=0,
                   help="top-k logits at the last N prompt positions only (0: every position)")
    p.add_argument("--hidden-states-prompt", default=None,
                   help="prompt whose per-layer hidden states are saved (default: 'english' if the file "
                        "has it, else the first prompt; '' for none)")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--numpy-check", action=argparse.BooleanOptionalAction, default=True,
                   help="compare the hidden-states prompt with a float64 numpy forward in GGUF conventions")
    p.add_argument("--make-prompts", choices=["qwen", "smollm"],
                   help="write a prompt file instead: built-in texts tokenized with --tokenizer")
    p.add_argument("--tokenizer", help="tokenizer.json(.gz) or GGUF, for --make-prompts")
    p.add_argument("--prompts-out", help="output JSON for --make-prompts")
    args = p.parse_args(argv)
    if args.make_prompts:
        if not (args.tokenizer and args.prompts_out):
            p.error("--make-prompts needs --tokenizer and --prompts-out")
    elif not (args.model and args.prompts and args.out):
        p.error("--model, --prompts and --out are required")
    if args.top_k < 2 or args.new_tokens < 1:
        p.error("--top-k must be >= 2 and --new-tokens >= 1")
    return args


def rel(path) -> str:
    """Path relative to the current directory when inside it (keeps the index machine-independent)."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.make_prompts:
        make_prompts(args.make_prompts, args.tokenizer, args.prompts_out)
        return 0

    t_start = time.time()
    torch = setup_torch(args.device)
    import transformers

    doc = json.load(open(args.prompts, encoding="utf-8"))
    prompts = doc["prompts"]
    names = [p["name"] for p in prompts]
    if len(set(names)) != len(names) or not all(n.replace("_", "").replace("-", "").isalnum() for n in names):
        raise SystemExit("prompt names must be unique and made of letters, digits, '_' and '-'")
    if args.hidden_states_prompt is None:
        args.hidden_states_prompt = "english" if "english" in names else names[0]
    if args.hidden_states_prompt and args.hidden_states_prompt not in names:
        raise SystemExit(f"--hidden-states-prompt {args.hidden_states_prompt!r} not in {names}")

    g = GGUFModel(args.model)
    hp = g.hp
    log(f"{args.model}: {hp}")
    for p in prompts:
        bad = [i for i in p["ids"] if not 0 <= int(i) < hp.vocab_size]
        if not p["ids"] or bad:
            raise SystemExit(f"prompt {p['name']}: empty or ids out of range {bad[:5]}")
    sha = g.sha256()
    sd = hf_state_dict(g, log)
    t0 = time.time()
    model = build_hf_model(hp, sd, args.device)
    log(f"built {type(model).__name__} on {args.device} in {time.time() - t0:.1f} s")
    del sd

    tokens, types = g.tokens(), g.token_types()
    stop_ids = g.stop_ids()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    numpy_check = None
    for p in prompts:
        t0 = time.time()
        ids = [int(i) for i in p["ids"]]
        want_hidden = p["name"] == args.hidden_states_prompt
        r = run_prompt(torch, model, hp, ids, args, want_hidden)
        fname = f"{p['name']}.npz"
        np.savez_compressed(out_dir / fname, ids=np.asarray(ids, dtype=np.int32), positions=r["positions"],
                            topk_ids=r["topk_ids"], topk_logits=r["topk_logits"], logsumexp=r["logsumexp"],
                            last_logits=r["last_logits"], greedy_ids=r["greedy_ids"],
                            greedy_topk_ids=r["greedy_topk_ids"], greedy_topk_logits=r["greedy_topk_logits"])
        gen = r["greedy_ids"].tolist()
        first_stop = next((i for i, t in enumerate(gen) if t in stop_ids), None)
        e = {
            "name": p["name"], "file": fname, "n_tokens": len(ids), "n_positions": len(r["positions"]),
            "prompt_text": decode_ids(tokens, types, ids),
            "greedy_ids": gen, "greedy_text": decode_ids(tokens, types, gen),
            "greedy_text_to_first_stop": decode_ids(tokens, types, gen[:first_stop]),
            "first_stop_index": first_stop, "checks": r["checks"],
        }
        if want_hidden:
            hname = f"hidden_{p['name']}.npz"
            np.savez_compressed(out_dir / hname, ids=np.asarray(ids, dtype=np.int32), hidden=r["hidden"])
            e["hidden_file"] = hname
            if args.numpy_check:
                numpy_check = compare_numpy(g, ids, r)
                e["checks"]["numpy_forward"] = numpy_check
        entries.append(e)
        log(f"{p['name']}: {len(ids)} tokens, {time.time() - t0:.1f} s, greedy: {e['greedy_text']!r}")
        if r["checks"]["full_forward_argmax_mismatch_steps"]:
            log(f"  note: full forward argmax differs at steps {r['checks']['full_forward_argmax_mismatch_steps']}"
                f" (min margin {r['checks']['min_greedy_margin']:.2e})")

    index = {
        "format_version": FORMAT_VERSION,
        "about": "Reference logits from Hugging Face transformers fed the dequantized GGUF weights "
                 "(tools/hf_reference.py); tests/golden/README.md describes every field.",
        "model": {
            "file": os.path.basename(args.model), "sha256": sha, "size": os.path.getsize(args.model),
            "hparams": asdict(hp), "stop_ids": stop_ids,
            "tensor_types": sorted({t.tensor_type.name for t in g.reader.tensors}),
        },
        "prompts_file": rel(args.prompts), "prompts_sha256": sha256_of(args.prompts),
        "reference": {
            "implementation": f"transformers.{'Qwen2' if hp.arch == 'qwen2' else 'Llama'}ForCausalLM",
            "attn_implementation": "eager", "dtype": "float32",
            "weights": "every GGUF tensor dequantized to float32 with gguf.quants.dequantize"
                       + ("; Q/K rows un-permuted (llama.cpp converter permutation undone)" if hp.arch == "llama" else ""),
            "tf32": False, "device": args.device,
            "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or platform.machine(),
        },
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": np.__version__,
            "gguf": _version("gguf"),
        },
        "settings": {"top_k": args.top_k, "last_positions": args.last_positions, "new_tokens": args.new_tokens,
                     "hidden_states_prompt": args.hidden_states_prompt or None,
                     "greedy": "generate(do_sample=False), KV cache, exactly new_tokens tokens, no stop on EOS"},
        "command": shlex.join(["python3", rel(sys.argv[0]) if sys.argv[0] else "tools/hf_reference.py"]
                              + (sys.argv[1:] if argv is None else list(argv))),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - t_start, 1),
        "prompts": entries,
    }
    with open(out_dir / "index.json", "w", encoding="utf-8") as f:
        json.dump(index, f, ensure_ascii=False, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(out_dir / n) for n in os.listdir(out_dir))
    log(f"wrote {out_dir}/index.json and {len(entries)} prompt files, {total / 1e6:.2f} MB, "
        f"{time.time() - t_start:.0f} s")
    if numpy_check and not numpy_check["ok"]:
        log(f"FAIL: numpy forward disagrees with transformers: {numpy_check}")
        return 1
    return 0


def compare_numpy(g: GGUFModel, ids, r) -> dict:
    """float64 numpy forward in GGUF conventions vs the transformers run: per-layer and logits errors."""
    t0 = time.time()
    logits, hidden = numpy_forward(g, ids)
    hs = r["hidden"].astype(np.float64)
    per_layer = (np.abs(hidden - hs).max(axis=(1, 2)) / np.maximum(np.abs(hidden).max(axis=(1, 2)), 1e-30))
    last = r["last_logits"].astype(np.float64)
    top = r["topk_logits"][-1].astype(np.float64)
    ref_top = logits[-1][r["topk_ids"][-1]]
    res = {
        "max_rel_err_hidden": float(per_layer.max()),
        "worst_hidden_index": int(per_layer.argmax()),
        "max_abs_err_last_topk_logits": float(np.abs(ref_top - top).max()),
        "max_abs_err_last_logits_fp16": float(np.abs(logits[-1] - last).max()),
        "argmax_equal": bool(int(np.argmax(logits[-1])) == int(r["topk_ids"][-1][0])),
        "seconds": round(time.time() - t0, 1),
    }
    res["ok"] = bool(res["max_rel_err_hidden"] < 1e-3 and res["max_abs_err_last_topk_logits"] < 1e-2
                     and res["argmax_equal"])
    log(f"numpy forward check: {res}")
    return res


def _version(mod: str) -> str:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
