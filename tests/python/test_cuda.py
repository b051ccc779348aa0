"""The CUDA backend against the CPU backend on the same weights: logits at every position and the residual
stream after every layer, through both product paths (a short prompt runs the fused GEMV kernels, a long
one the tensor cores), for every weight type the model generator writes, on qwen2 (NEOX RoPE) and llama
(adjacent-pair RoPE) shapes; and determinism of sampled generation. Two pairings: the GPU with fp32
activations (ORCD_CUDA_EXACT=1) against the CPU's reference mode (--exact), and, for the short prompt, the
default arithmetic of both (quantized weights meet activations quantized to 8 bits per 32 values, the same
Q8A blocks on both sides).

Skipped where `orcd version` does not report a CUDA device (CI). On the GPU machine: `make gpu-test`.
Tolerances: fp16 tensor-core inputs and an fp16 KV store against fp32 everywhere on the CPU, so the bound
is relative to the logits' scale: max |gpu - cpu| <= 2e-2 * max |cpu| (about 1e-3 is typical), and the
top-1 token agrees wherever the CPU's top-1 margin exceeds twice the largest difference.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA, run_orcd

TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M"]
REL_TOL = 2e-2


@pytest.fixture(scope="session")
def cuda_device(orcd_bin) -> str:
    r = run_orcd(orcd_bin, "version")
    out = r.stdout.decode() + r.stderr.decode()
    if "cuda" not in out.lower() or "backend: cpu" in out.lower():
        pytest.skip(f"no CUDA device here ({out.strip().splitlines()[-1] if out.strip() else 'no output'})")
    return out


def qwen_vocab() -> Path:
    for p in (SHARED_DATA / "qwen-tokenizer.json.gz", REPO / ".cache" / "qwen-tokenizer.json.gz"):
        if p.exists():
            return p
    pytest.skip("qwen-tokenizer.json.gz not found (../shared/data or .cache)")


@pytest.fixture(scope="session")
def gen_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cuda_models")


def make_model(gen_dir: Path, arch: str, qtype: str, **shape) -> Path:
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in shape.items()]
    name = f"{arch}-{qtype}-{'-'.join(extra) or 'tiny'}.gguf".replace("=", "").replace("--", "")
    out = gen_dir / name
    if not out.exists():
        r = subprocess.run(["python3", str(REPO / "tools" / "gen_model.py"), "--arch", arch, "--shape", "tiny",
                            "--type", qtype, "--vocab", f"qwen-json:{qwen_vocab()}", "--out", str(out), *extra],
                           capture_output=True)
        assert r.returncode == 0, r.stderr.decode()
    return out


def logits_and_hidden(orcd_bin, model: Path, ids: list[int], tmp: Path, cpu: bool, all_positions: bool, exact: bool):
    tag = ("cpu" if cpu else "gpu") + ("-exact" if exact else "-8bit")
    lf, hf = tmp / f"{model.stem}-{tag}-{len(ids)}.logits", tmp / f"{model.stem}-{tag}-{len(ids)}.hidden"
    args = ["logits", "-m", model, "--ids", " ".join(map(str, ids)), "--dump-logits", lf, "--dump-hidden", hf]
    if all_positions:
        args.append("--all")
    if cpu:
        args += ["--cpu", "--exact"] if exact else ["--cpu"]
    env = {**os.environ, "ORCD_CUDA_EXACT": "1" if exact else "0"}
    r = subprocess.run([str(orcd_bin), *map(str, args)], capture_output=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr.decode()
    err = r.stderr.decode()
    assert ("backend: cpu" in err) == cpu, err
    return np.fromfile(lf, dtype=np.float32), np.fromfile(hf, dtype=np.float32)


def compare(orcd_bin, model: Path, ids: list[int], tmp: Path, vocab: int, exact: bool = True):
    """Logits at every position of a short prompt, at the last of a long one; hidden states everywhere."""
    all_positions = len(ids) <= 64
    cl, ch = logits_and_hidden(orcd_bin, model, ids, tmp, True, all_positions, exact)
    gl, gh = logits_and_hidden(orcd_bin, model, ids, tmp, False, all_positions, exact)
    assert cl.shape == gl.shape and ch.shape == gh.shape
    cl, gl = cl.reshape(-1, vocab), gl.reshape(-1, vocab)
    diff = np.abs(cl - gl)
    scale = np.abs(cl).max()
    worst = np.unravel_index(diff.argmax(), diff.shape)
    print(f"{model.name} {'exact' if exact else '8-bit'} n={len(ids)}: max |gpu-cpu| {diff.max():.3g} (pos {worst[0]} id {worst[1]}: "
          f"{gl[worst]:.5g} vs {cl[worst]:.5g}), logit scale {scale:.3g}, hidden max diff "
          f"{np.abs(ch - gh).max():.3g} of {np.abs(ch).max():.3g}")
    assert np.isfinite(gl).all()
    bound, hidden_bound = REL_TOL * scale, REL_TOL * np.abs(ch).max()
    if not exact:
        # 8-bit activations round to steps of max|x|/127 per 32 values, so the last-bit differences of the
        # two backends' fp32 activations flip some roundings: the pairing is held to twice the distance
        # the CPU's own 8-bit arithmetic puts between it and its reference mode
        el, eh = logits_and_hidden(orcd_bin, model, ids, tmp, True, all_positions, True)
        qerr, qerr_h = np.abs(cl - el.reshape(-1, vocab)).max(), np.abs(ch - eh).max()
        print(f"  (the CPU's 8-bit arithmetic moves its logits by up to {qerr:.3g}, hidden by {qerr_h:.3g})")
        bound, hidden_bound = max(bound, 2 * qerr), max(hidden_bound, 2 * qerr_h)
    assert diff.max() <= bound, f"max diff {diff.max()} > {bound}"
    assert np.abs(ch - gh).max() <= hidden_bound, "hidden states differ"
    top = np.sort(cl, axis=1)
    margin = top[:, -1] - top[:, -2]
    sure = margin > 2 * diff.max()
    agree = cl.argmax(axis=1) == gl.argmax(axis=1)
    assert agree[sure].all(), f"top-1 differs at positions {np.where(sure & ~agree)[0]}"
    return diff.max(), scale, agree.mean()


def vocab_of(orcd_bin, model: Path) -> int:
    r = run_orcd(orcd_bin, "info", model)
    for line in r.stdout.decode().splitlines():
        if "vocab" in line.lower():
            for tok in line.replace(",", " ").split():
                if tok.isdigit() and int(tok) > 1000:
                    return int(tok)
    raise AssertionError(f"no vocabulary size in orcd info: {r.stdout.decode()}")


SHORT = [785, 6722, 315, 9625, 374]                    # 5 entries: the fused GEMV kernels
LONG = [(i * 7919 + 13) % 151000 for i in range(300)]  # 300 entries: the tensor-core path, 2 attention splits


@pytest.mark.parametrize("qtype", TYPES)
def test_qwen2_logits_match_cpu(orcd_bin, cuda_device, gen_dir, tmp_path, qtype):
    model = make_model(gen_dir, "qwen2", qtype)
    vocab = vocab_of(orcd_bin, model)
    for ids in (SHORT, LONG):
        compare(orcd_bin, model, ids, tmp_path, vocab)
    compare(orcd_bin, model, SHORT, tmp_path, vocab, exact=False)


@pytest.mark.parametrize("qtype", ["Q4_0", "Q8_0", "F16"])
def test_llama_logits_match_cpu(orcd_bin, cuda_device, gen_dir, tmp_path, qtype):
    model = make_model(gen_dir, "llama", qtype)
    vocab = vocab_of(orcd_bin, model)
    for ids in (SHORT, LONG):
        compare(orcd_bin, model, ids, tmp_path, vocab)
    compare(orcd_bin, model, SHORT, tmp_path, vocab, exact=False)


def test_head_dim_128_long_context(orcd_bin, cuda_device, gen_dir, tmp_path):
    """head_dim 128 (the 7B shape's) and a prompt past 4096 positions (17 attention splits)."""
    model = make_model(gen_dir, "qwen2", "Q8_0", dim=512, n_heads=4, n_kv_heads=2, ctx=8192)
    vocab = vocab_of(orcd_bin, model)
    ids = [(i * 104729 + 7) % 151000 for i in range(4200)]
    compare(orcd_bin, model, ids, tmp_path, vocab)


def real_models():
    d = Path(os.environ.get("ORCD_MODELS", REPO / "models"))
    return [p for p in sorted(d.glob("*.gguf"))]


@pytest.mark.parametrize("model", real_models(), ids=lambda p: p.name)
def test_real_model_logits_match_cpu(orcd_bin, cuda_device, tmp_path, model):
    vocab = vocab_of(orcd_bin, model)
    for ids in (SHORT, LONG[:40]):
        compare(orcd_bin, model, ids, tmp_path, vocab)
    compare(orcd_bin, model, SHORT, tmp_path, vocab, exact=False)


def generate_ids(orcd_bin, model, *extra, env=None, temp="0", n="64"):
    r = subprocess.run([str(orcd_bin), "generate", "-m", str(model), "-p", "Once upon a time", "-n", n, "--temp", temp,
                        "--seed", "1234", "--print-ids", *extra], capture_output=True, timeout=300,
                       env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().split()


def test_graphs_replay_the_eager_forward(orcd_bin, cuda_device, gen_dir):
    """Greedy decode through captured CUDA graphs (launched with programmatic dependent launch where the
    device has it, the RoPE and KV writes inside the attention) gives exactly the tokens of eager launches
    without either; the CPU's greedy tokens are printed next to them (random weights have near-ties, so they
    may part later)."""
    for qtype in ("Q4_K_M", "F16"):
        model = make_model(gen_dir, "qwen2", qtype)
        graphs = generate_ids(orcd_bin, model)
        eager = generate_ids(orcd_bin, model, env={"ORCD_CUDA_GRAPHS": "0", "ORCD_CUDA_PDL": "0",
                                                   "ORCD_CUDA_ROPE_IN_ATTN": "0"})
        cpu = generate_ids(orcd_bin, model, "--cpu")
        same = next((i for i, (a, b) in enumerate(zip(graphs, cpu)) if a != b), len(graphs))
        print(f"{qtype}: {len(graphs)} greedy tokens; the CPU's agree for the first {same}")
        assert len(graphs) == 64 and graphs == eager


def test_same_seed_same_tokens(orcd_bin, cuda_device, gen_dir):
    """Sampled (temperature 0.8) and greedy generation give the same tokens run after run on the GPU."""
    model = make_model(gen_dir, "qwen2", "Q4_K_M")
    outs = {}
    for temp in ("0.8", "0"):
        runs = []
        for _ in range(3):
            r = run_orcd(orcd_bin, "generate", "-m", model, "-p", "Once upon a time", "-n", "48", "--temp", temp,
                         "--seed", "1234", "--print-ids", timeout=300)
            assert r.returncode == 0, r.stderr.decode()
            runs.append(r.stdout)
        assert runs[0] == runs[1] == runs[2], f"temperature {temp}: runs differ"
        outs[temp] = runs[0]
    assert outs["0.8"] != outs["0"], "sampling at 0.8 gave exactly the greedy tokens"


def test_top_k_candidates_choose_as_whole_rows(orcd_bin, cuda_device, gen_dir):
    """Sampling from each row's best logits sent by the GPU (forward_topk + sampler_sample_top) gives the
    tokens that sampling the whole rows gives (ORCD_CUDA_TOPK=0), seed for seed: top-k alone, with top-p and
    min-p, and with penalties that send some rows back whole; and greedy with a repetition penalty."""
    model = make_model(gen_dir, "qwen2", "Q4_K_M")
    cases = [("0.8", "--top-k", "40"), ("1.2", "--top-k", "7", "--top-p", "0.9", "--min-p", "0.1"),
             ("1.0", "--top-k", "20", "--repeat-penalty", "1.5", "--presence-penalty", "0.5", "--repeat-last-n", "-1"),
             ("0", "--repeat-penalty", "1.3")]
    for temp, *opts in cases:
        fast = generate_ids(orcd_bin, model, *opts, temp=temp)
        whole = generate_ids(orcd_bin, model, *opts, temp=temp, env={"ORCD_CUDA_TOPK": "0"})
        assert len(fast) == 64 and fast == whole, f"--temp {temp} {' '.join(opts)}: the tokens differ"


def kernel_lines() -> dict:
    """kernels.cu's TL_KERNEL lines (what the timeline records) -> the name of the kernel they open."""
    names, last = {}, None
    for i, line in enumerate((REPO / "src" / "backend" / "cuda" / "kernels.cu").read_text().splitlines(), 1):
        if "__global__" in line or last == "?":
            words = [w.split("(")[0] for w in line.replace("__global__", " ").split() if "(" in w]
            last = next((w for w in words if w.endswith("_kernel")), "?")
        if line.strip() == "TL_KERNEL();":
            names[i], last = last, None
    return names


def test_timeline_build_times_every_kernel(cuda_device, gen_dir, tmp_path):
    """The timeline build (make TIMELINE=1, src/backend/cuda/timeline.cuh; `make gpu-test` builds it and sets
    ORCD_TIMELINE_BIN): the 100th graph-replayed decode step of greedy generation is written a line a launch,
    the forward's kernels in order (the embedding; per layer Q/K/V, attention with the RoPE inside, O, gate/up,
    down, the layer's two RMSNorms inside Q/K/V and gate/up; the final norm, LM head and greedy choice: an F16
    model, so no 8-bit inputs), and
    the times obey programmatic dependent launch: each kernel's blocks start no later than they wait, and
    its first wait returns only after the previous kernel's blocks have all returned."""
    tl_bin = os.environ.get("ORCD_TIMELINE_BIN")
    if not tl_bin:
        pytest.skip("ORCD_TIMELINE_BIN not set (make gpu-test builds the timeline build and sets it)")
    model = make_model(gen_dir, "qwen2", "F16")
    out = tmp_path / "timeline.txt"
    r = subprocess.run([tl_bin, "generate", "-m", str(model), "-p", "Once upon a time", "-n", "128", "--temp", "0"],
                       capture_output=True, timeout=300, env={**os.environ, "ORCD_TIMELINE": str(out)})
    assert r.returncode == 0, r.stderr.decode()
    names = kernel_lines()
    rows = [line.split() for line in out.read_text().splitlines() if not line.startswith("#")]
    got = [names.get(int(f[0]), f"line {f[0]}") for f in rows]
    layer = ["gemv_rms_kernel", "attn_partial_kernel", "gemv_kernel", "gemv_swiglu_rms_kernel", "gemv_kernel"]
    n_layers = 2  # gen_model.py's tiny shape
    assert got == ["embed_kernel", *layer * n_layers, "rmsnorm_kernel", "gemv_kernel", "argmax_kernel"], got
    prev_end = None
    for f, name in zip(rows, got):
        start, first_wait, last_wait, end = (float(v) for v in f[2:6])
        assert 0 <= start <= first_wait <= last_wait <= end, f"{name}: {f}"
        if prev_end is not None:
            assert first_wait >= prev_end, f"{name} waited until {first_wait} us, the kernel before ended at {prev_end}"
        prev_end = end
    print(f"timeline: {len(rows)} launches, step {prev_end:.1f} us")


GOLDEN = REPO / "tests" / "golden" / "qwen2.5-coder-0.5b"
GPU_EXACT_ATOL = 0.1   # GPU exact mode against transformers: fp16 KV store and fp16 tensor-core inputs
GPU_8BIT_MEAN = 0.1    # 8-bit activations: the CPU's fast-mode bound (test_logits.FAST_MEAN_ATOL)


def test_real_model_against_transformers(orcd_bin, cuda_device):
    """The default real model on the GPU against Hugging Face transformers (tests/golden, the same weights
    dequantized; tools/compare_golden.py): the reference's top-20 logits at every position and the whole
    last row, every golden prompt; fp32 activations (ORCD_CUDA_EXACT=1) within GPU_EXACT_ATOL with the same
    top-1 wherever the reference's margin exceeds twice that, and 8-bit activations (the default) within
    GPU_8BIT_MEAN on average."""
    sys.path.insert(0, str(REPO / "tools"))
    from compare_golden import compare
    index = json.loads((GOLDEN / "index.json").read_text())
    model = Path(os.environ.get("ORCD_MODELS", REPO / "models")) / index["model"]["file"]
    if not model.exists() or model.stat().st_size != index["model"]["size"]:
        pytest.skip(f"{model} (the golden files' model) is not here")
    for mode in ("gpu-exact", "gpu-8bit"):
        r = compare(str(orcd_bin), model, GOLDEN, mode, margin=2 * GPU_EXACT_ATOL)
        print(f"{mode}: max |gpu - transformers| {r['worst']:.4f}, mean {r['mean']:.4f} ({r['prompts']} prompts); "
              f"top-1 agrees at {r['sure_agree']} of {r['sure']} positions with a margin over {2 * GPU_EXACT_ATOL}")
        if mode == "gpu-exact":
            assert r["worst"] <= GPU_EXACT_ATOL and r["sure_agree"] == r["sure"]
        else:
            assert r["mean"] <= GPU_8BIT_MEAN
