"""The golden reference files (tests/golden/, written by tools/hf_reference.py) are well-formed and
self-consistent, belong to the model files in models/, and agree with an independent numpy forward of those
models in llama.cpp's conventions. Needs numpy, gguf and pytest (tokenizers for the prompt check); never
torch or transformers.

What it checks:
  - index.json has every field the README documents; each prompt's .npz has the documented arrays with the
    documented shapes and dtypes, and agrees with the index and with the prompt file it names;
  - top-k rows are sorted and hold distinct in-range ids; the last position's top-k agrees with the float16
    full-vocabulary logits; the greedy continuation's first token is the argmax of the last-position logits
    and every greedy token is the argmax (top-1) of its decode step;
  - the model file's sha256 matches index.json (models/ from `make model`);
  - the hidden states and last-position logits match a float64 numpy forward over the raw GGUF weights
    (adjacent-pair RoPE on the permuted Q/K for llama, NEOX RoPE for qwen2): this ties the golden numbers
    to the model file and checks the llama Q/K un-permutation the reference relies on;
  - the prompt files' ids are what the tokenizers they name produce from their texts;
  - unpermute_qk inverts llama.cpp's permutation, and rotate-half RoPE on HF rows equals adjacent-pair RoPE
    on the permuted rows.
"""
import importlib.util
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA

GOLDEN = REPO / "tests" / "golden"
GOLDEN_DIRS = sorted(p.parent for p in GOLDEN.glob("*/index.json"))
PROMPT_FILES = sorted(GOLDEN.glob("prompts_*.json"))

NPZ_ARRAYS = {  # name -> dtype
    "ids": np.int32, "positions": np.int32, "topk_ids": np.int32, "topk_logits": np.float32,
    "logsumexp": np.float32, "last_logits": np.float16, "greedy_ids": np.int32,
    "greedy_topk_ids": np.int32, "greedy_topk_logits": np.float32,
}


def _load_tool():
    spec = importlib.util.spec_from_file_location("hf_reference", REPO / "tools" / "hf_reference.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hf_reference"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


hf = _load_tool()


def _ids(dirs):
    return [d.name for d in dirs]


@lru_cache(maxsize=None)
def index_of(d: Path) -> dict:
    return json.loads((d / "index.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def sha256_cached(path: Path) -> str:
    return hf.sha256_of(path)


def model_path(models_dir: Path, d: Path) -> Path:
    p = models_dir / index_of(d)["model"]["file"]
    if not p.exists():
        pytest.fail(f"{p} missing: run make model")
    return p


def test_golden_present():
    names = {d.name for d in GOLDEN_DIRS}
    assert {"qwen2.5-coder-0.5b", "smollm2-135m"} <= names, names
    assert {p.name for p in PROMPT_FILES} >= {"prompts_qwen.json", "prompts_smollm.json"}
    total = sum(f.stat().st_size for f in GOLDEN.rglob("*") if f.is_file())
    assert total < 10_000_000, f"tests/golden is {total} bytes; keep it small"


@pytest.mark.parametrize("d", GOLDEN_DIRS, ids=_ids(GOLDEN_DIRS))
def test_index_fields(d):
    ix = index_of(d)
    assert ix["format_version"] == hf.FORMAT_VERSION
    m = ix["model"]
    assert set(m) >= {"file", "sha256", "size", "hparams", "stop_ids", "tensor_types"}
    assert len(m["sha256"]) == 64 and int(m["sha256"], 16) >= 0
    hp = m["hparams"]
    assert hp["arch"] in ("qwen2", "llama")
    assert hp["dim"] == hp["n_heads"] * hp["head_dim"]
    assert hp["n_heads"] % hp["n_kv_heads"] == 0
    ref = ix["reference"]
    assert ref["dtype"] == "float32" and ref["attn_implementation"] == "eager" and ref["tf32"] is False
    assert ref["implementation"] == {"qwen2": "transformers.Qwen2ForCausalLM",
                                     "llama": "transformers.LlamaForCausalLM"}[hp["arch"]]
    assert set(ix["versions"]) >= {"python", "torch", "transformers", "numpy", "gguf"}
    assert ix["command"].startswith("python3 tools/hf_reference.py ")
    s = ix["settings"]
    assert s["top_k"] >= 2 and s["new_tokens"] >= 1
    names = [p["name"] for p in ix["prompts"]]
    assert len(names) == len(set(names)) >= 5
    assert s["hidden_states_prompt"] in names
    assert sum("hidden_file" in p for p in ix["prompts"]) == 1
    assert all(sid < hp["vocab_size"] for sid in m["stop_ids"])


@pytest.mark.parametrize("d", GOLDEN_DIRS, ids=_ids(GOLDEN_DIRS))
def test_prompts_match_prompt_file(d):
    ix = index_of(d)
    pf = REPO / ix["prompts_file"]
    assert pf.exists(), pf
    assert hf.sha256_of(pf) == ix["prompts_sha256"], f"{pf} changed since {d} was generated: regenerate it"
    doc = json.loads(pf.read_text(encoding="utf-8"))
    by_name = {p["name"]: p["ids"] for p in doc["prompts"]}
    assert [p["name"] for p in ix["prompts"]] == list(by_name)
    texts = {p["name"]: p.get("text") for p in doc["prompts"]}
    for e in ix["prompts"]:
        with np.load(d / e["file"]) as z:
            assert z["ids"].tolist() == by_name[e["name"]], e["name"]
        # the ids, decoded with the GGUF's own vocabulary by the script, give back the prompt's text
        if texts[e["name"]] is not None:
            assert e["prompt_text"] == texts[e["name"]], e["name"]


@pytest.mark.parametrize("d", GOLDEN_DIRS, ids=_ids(GOLDEN_DIRS))
def test_npz_shapes_and_consistency(d):
    ix = index_of(d)
    hp, s = ix["model"]["hparams"], ix["settings"]
    V, k, N = hp["vocab_size"], s["top_k"], s["new_tokens"]
    for e in ix["prompts"]:
        name = e["name"]
        with np.load(d / e["file"]) as zf:
            z = {key: zf[key] for key in zf.files}
        assert set(z) == set(NPZ_ARRAYS), (name, sorted(z))
        for key, dt in NPZ_ARRAYS.items():
            assert z[key].dtype == dt, (name, key, z[key].dtype)
        T, P = e["n_tokens"], e["n_positions"]
        assert z["ids"].shape == (T,) and 1 <= P <= T
        if s["last_positions"] <= 0:
            assert P == T
        assert np.array_equal(z["positions"], np.arange(T - P, T))
        assert z["topk_ids"].shape == z["topk_logits"].shape == (P, k)
        assert z["logsumexp"].shape == (P,)
        assert z["last_logits"].shape == (V,)
        assert z["greedy_ids"].shape == (N,) and z["greedy_ids"].tolist() == e["greedy_ids"]
        assert z["greedy_topk_ids"].shape == z["greedy_topk_logits"].shape == (N, k)
        for key in ("topk_logits", "logsumexp", "last_logits", "greedy_topk_logits"):
            assert np.all(np.isfinite(z[key])), (name, key)
        for key in ("ids", "topk_ids", "greedy_ids", "greedy_topk_ids"):
            assert z[key].min() >= 0 and z[key].max() < V, (name, key)

        # top-k rows: sorted descending, distinct ids, below the log-sum-exp
        for tk_ids, tk_val in ((z["topk_ids"], z["topk_logits"]), (z["greedy_topk_ids"], z["greedy_topk_logits"])):
            assert np.all(np.diff(tk_val, axis=1) <= 0), name
            assert all(len(set(row)) == k for row in tk_ids.tolist()), name
        assert np.all(z["logsumexp"] >= z["topk_logits"][:, 0]), name
        assert np.all(z["logsumexp"] <= z["topk_logits"][:, 0] + np.log(V) + 1e-3), name

        # last position: top-k agrees with the float16 full-vocabulary logits
        last = z["last_logits"].astype(np.float32)
        np.testing.assert_allclose(last[z["topk_ids"][-1]], z["topk_logits"][-1], rtol=1e-3, atol=1e-2)
        assert np.sum(last > z["topk_logits"][-1, -1] + 0.02) <= k, name  # nothing big left out of the top-k
        # greedy: first token is the argmax of the last-position logits; every token is its step's top-1
        g0 = int(z["greedy_ids"][0])
        assert g0 == int(z["topk_ids"][-1, 0]), name
        assert last[g0] == last.max(), name
        assert e["checks"]["last_logits_argmax"] == g0 or last[e["checks"]["last_logits_argmax"]] == last[g0]
        assert np.array_equal(z["greedy_topk_ids"][:, 0], z["greedy_ids"]), name
        # decode step 0 is the prefill again
        np.testing.assert_allclose(z["greedy_topk_logits"][0], z["topk_logits"][-1], rtol=0, atol=1e-3)
        # first_stop_index names the first stop token of the continuation
        stops = set(ix["model"]["stop_ids"])
        fs = e["first_stop_index"]
        gl = z["greedy_ids"].tolist()
        assert fs == next((i for i, t in enumerate(gl) if t in stops), None), name

        if "hidden_file" in e:
            with np.load(d / e["hidden_file"]) as h:
                assert sorted(h.files) == ["hidden", "ids"]
                assert np.array_equal(h["ids"], z["ids"])
                assert h["hidden"].dtype == np.float32
                assert h["hidden"].shape == (hp["n_layers"] + 2, T, hp["dim"])
                assert np.all(np.isfinite(h["hidden"]))


@pytest.mark.parametrize("d", GOLDEN_DIRS, ids=_ids(GOLDEN_DIRS))
def test_model_sha256(d, models_dir):
    p = model_path(models_dir, d)
    m = index_of(d)["model"]
    assert p.stat().st_size == m["size"]
    assert sha256_cached(p) == m["sha256"], f"{p} is not the model {d} was generated from"


@pytest.mark.parametrize("d", GOLDEN_DIRS, ids=_ids(GOLDEN_DIRS))
def test_matches_numpy_forward(d, models_dir):
    """The stored hidden states and last-position logits against a float64 numpy forward of the model file
    in GGUF conventions (no transformers): per-entry relative error of every hidden-state slice < 1e-4,
    top-k logits within 1e-3."""
    ix = index_of(d)
    p = model_path(models_dir, d)
    if sha256_cached(p) != ix["model"]["sha256"]:
        pytest.fail(f"{p} is not the model {d} was generated from")
    e = next(e for e in ix["prompts"] if "hidden_file" in e)
    g = hf.GGUFModel(p)
    with np.load(d / e["hidden_file"]) as h, np.load(d / e["file"]) as z:
        ids, ref_hidden = h["ids"], h["hidden"].astype(np.float64)
        topk_ids, topk_logits = z["topk_ids"], z["topk_logits"]
        last = z["last_logits"].astype(np.float64)
    logits, hidden = hf.numpy_forward(g, ids.tolist())
    assert hidden.shape == ref_hidden.shape
    scale = np.maximum(np.abs(hidden).max(axis=(1, 2)), 1e-30)
    rel = np.abs(hidden - ref_hidden).max(axis=(1, 2)) / scale
    worst = int(rel.argmax())
    assert rel.max() < 1e-4, f"hidden state {worst} (0 = embeddings, 1+l = after layer l): rel err {rel[worst]:.2e}"
    T, P = len(ids), topk_ids.shape[0]
    for r in range(P):
        t = T - P + r
        np.testing.assert_allclose(logits[t][topk_ids[r]], topk_logits[r], rtol=0, atol=1e-3,
                                   err_msg=f"position {t}")
    assert int(np.argmax(logits[-1])) == int(topk_ids[-1, 0])
    np.testing.assert_allclose(logits[-1], last, rtol=2e-3, atol=2e-2)


@pytest.mark.parametrize("pf", PROMPT_FILES, ids=[p.stem for p in PROMPT_FILES])
def test_prompt_ids_are_tokenizer_output(pf, models_dir):
    tokenizers = pytest.importorskip("tokenizers")  # noqa: F841
    doc = json.loads(pf.read_text(encoding="utf-8"))
    src = doc["tokenizer"]
    if src.endswith(".gguf"):
        path = models_dir / src
        if not path.exists():
            pytest.fail(f"{path} missing: run make model")
    else:
        path = SHARED_DATA / src
        if not path.exists():
            pytest.skip(f"{path} not here")
    tok = hf.load_tokenizer(str(path))
    names = [p["name"] for p in doc["prompts"]]
    assert len(doc["prompts"]) >= 5 and len(set(names)) == len(names)
    for p in doc["prompts"]:
        assert tok.encode(p["text"], add_special_tokens=False).ids == p["ids"], p["name"]
    chat = next(p for p in doc["prompts"] if p["name"] == "chat")
    assert chat["ids"].count(tok.token_to_id("<|im_start|>")) == 3
    assert chat["ids"].count(tok.token_to_id("<|im_end|>")) == 2
    if "qwen" in pf.name:
        assert (tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_start|>"),
                tok.token_to_id("<|im_end|>")) == (151643, 151644, 151645)
    assert max(len(p["ids"]) for p in doc["prompts"]) >= 200


def test_unpermute_inverts_llama_cpp_permutation():
    rng = np.random.default_rng(0)
    for n_head, hd, d_in in ((9, 64, 5), (3, 64, 5), (4, 8, 1)):
        w = rng.standard_normal((n_head * hd, d_in)).astype(np.float32)
        p = hf.permute_qk(w, n_head)
        assert not np.array_equal(p, w)
        assert np.array_equal(hf.unpermute_qk(p, n_head), w)
        # row s*hd/2 + j of each head moves to row 2j + s
        h, j, s = n_head - 1, hd // 2 - 1, 1
        assert np.array_equal(p[h * hd + 2 * j + s], w[h * hd + s * hd // 2 + j])
        b = rng.standard_normal(n_head * hd).astype(np.float32)  # 1-D (bias) works too
        assert np.array_equal(hf.unpermute_qk(hf.permute_qk(b, n_head), n_head), b)


def test_rotate_half_rope_equals_adjacent_rope_on_permuted_rows():
    """Why the un-permutation is right: HF applies rotate-half (NEOX) RoPE to HF-layout rows; llama.cpp
    applies adjacent-pair RoPE to the converter's permuted rows. Same scores either way."""
    rng = np.random.default_rng(1)
    n_head, hd, d_in, T = 2, 16, 12, 5
    wq = rng.standard_normal((n_head * hd, d_in))
    wk = rng.standard_normal((n_head * hd, d_in))
    x = rng.standard_normal((T, d_in))
    pos = np.arange(T)

    def scores(wq_, wk_, neox):
        q = hf.rope_gguf((x @ wq_.T).reshape(T, n_head, hd), pos, 10000.0, neox)
        k = hf.rope_gguf((x @ wk_.T).reshape(T, n_head, hd), pos, 10000.0, neox)
        return np.einsum("thd,shd->hts", q, k)

    hf_scores = scores(wq, wk, neox=True)
    gguf_scores = scores(hf.permute_qk(wq, n_head), hf.permute_qk(wk, n_head), neox=False)
    np.testing.assert_allclose(gguf_scores, hf_scores, rtol=1e-10, atol=1e-10)
    wrong = scores(hf.permute_qk(wq, n_head), hf.permute_qk(wk, n_head), neox=True)
    assert not np.allclose(wrong, hf_scores, atol=1e-3)


def test_decode_ids_byte_level():
    table = hf.bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    toks = ["Hello", "Ġw", "orld", "<|im_end|>", "Ã©", "Ċ"]
    types = [1, 1, 1, 3, 1, 1]
    assert hf.decode_ids(toks, types, [0, 1, 2, 4, 5, 3]) == "Hello world\u00e9\n<|im_end|>"
