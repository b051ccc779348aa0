#!/usr/bin/env python3
"""Compare orcd's logits with a reference folder written by tools/hf_reference.py (transformers on the same
weights): for every prompt, the reference's top-k logits at every stored position and the whole last row.
Prints, per mode, the largest and mean absolute difference, the logit scale and the top-1 agreement; exits 1
when, in a mode with fp32 activations (gpu-exact, cpu-exact), the largest difference exceeds --rtol times the
logit scale. The 8-bit modes are reported only: quantizing activations to 8 bits moves logits by more than
that on random weights (their activations spread evenly), by design.

  python3 tools/compare_golden.py --orcd build/orcd --model M.gguf --golden DIR [--mode gpu-exact|gpu-8bit|cpu-exact|cpu]...

Modes: gpu-exact (ORCD_CUDA_EXACT=1), gpu-8bit (the GPU's default), cpu-exact (--cpu --exact), cpu (--cpu).
Used on the GPU machine for random-weight models of the real shapes (tests/python/test_cuda.py does the same
for the default model against tests/golden).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODES = {"gpu-exact": ([], {"ORCD_CUDA_EXACT": "1"}), "gpu-8bit": ([], {"ORCD_CUDA_EXACT": "0"}),
         "cpu-exact": (["--cpu", "--exact"], {}), "cpu": (["--cpu"], {})}


def orcd_logits(orcd, model, ids, vocab, flags, env, out):
    r = subprocess.run([orcd, "logits", "-m", str(model), "--ids", " ".join(map(str, ids)), "--all", "--top-k", "1",
                        "--dump-logits", str(out), *flags], capture_output=True, timeout=1800,
                       env={**os.environ, **env})
    if r.returncode:
        sys.exit(f"orcd logits failed: {r.stderr.decode()}")
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), vocab)


def compare(orcd, model, golden, mode, margin=0.2):
    """orcd (mode: MODES) against the reference folder `golden` on every prompt: largest and mean |diff| of
    the reference's top-k logits and of the whole last row, the logit scale, top-1 agreement at every
    stored position, and at the positions where the reference's top-1 margin exceeds `margin`."""
    golden = Path(golden)
    index = json.loads((golden / "index.json").read_text())
    vocab = index["model"]["hparams"]["vocab_size"]
    flags, env = MODES[mode]
    r = {"worst": 0.0, "scale": 0.0, "agree": 0, "n": 0, "sure_agree": 0, "sure": 0, "prompts": len(index["prompts"])}
    errs = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in index["prompts"]:
            z = np.load(golden / p["file"])
            lg = orcd_logits(orcd, model, z["ids"], vocab, flags, env, Path(tmp) / "l.bin")
            rows = lg[z["positions"]]
            got = np.take_along_axis(rows, z["topk_ids"].astype(np.int64), axis=1)
            d = np.abs(got - z["topk_logits"])
            r["worst"] = max(r["worst"], d.max(), np.abs(lg[-1] - z["last_logits"].astype(np.float32)).max())
            r["scale"] = max(r["scale"], np.abs(z["topk_logits"]).max())
            errs.append(d.ravel())
            same = rows.argmax(axis=1) == z["topk_ids"][:, 0]
            sure = z["topk_logits"][:, 0] - z["topk_logits"][:, 1] > margin
            r["agree"] += same.sum()
            r["n"] += len(rows)
            r["sure_agree"] += same[sure].sum()
            r["sure"] += sure.sum()
    r["mean"] = float(np.concatenate(errs).mean())
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orcd", default="build/orcd")
    ap.add_argument("--model", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--mode", action="append", choices=sorted(MODES))
    ap.add_argument("--rtol", type=float, default=0.02, help="largest difference / logit scale allowed")
    a = ap.parse_args()
    bad = False
    for mode in a.mode or ["gpu-exact", "gpu-8bit"]:
        r = compare(a.orcd, a.model, a.golden, mode)
        ok = r["worst"] <= a.rtol * r["scale"] or mode in ("gpu-8bit", "cpu")
        bad |= not ok
        print(f"{Path(a.model).name} {mode}: max |orcd - reference| {r['worst']:.4g}, mean {r['mean']:.4g}, logit "
              f"scale {r['scale']:.3g} ({r['worst'] / r['scale']:.2%}); top-1 agrees at {r['agree']} of {r['n']} "
              f"positions ({r['prompts']} prompts){'' if ok else '  OVER ' + str(a.rtol) + ' x scale'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
