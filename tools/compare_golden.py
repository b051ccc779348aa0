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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orcd", default="build/orcd")
    ap.add_argument("--model", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--mode", action="append", choices=sorted(MODES))
    ap.add_argument("--rtol", type=float, default=0.02, help="largest difference / logit scale allowed")
    a = ap.parse_args()
    golden = Path(a.golden)
    index = json.loads((golden / "index.json").read_text())
    vocab = index["model"]["hparams"]["vocab_size"]
    bad = False
    with tempfile.TemporaryDirectory() as tmp:
        for mode in a.mode or ["gpu-exact", "gpu-8bit"]:
            flags, env = MODES[mode]
            worst, scale, errs, agree, n = 0.0, 0.0, [], 0, 0
            for p in index["prompts"]:
                z = np.load(golden / p["file"])
                lg = orcd_logits(a.orcd, a.model, z["ids"], vocab, flags, env, Path(tmp) / "l.bin")
                rows = lg[z["positions"]]
                got = np.take_along_axis(rows, z["topk_ids"].astype(np.int64), axis=1)
                d = np.abs(got - z["topk_logits"])
                ref_last = z["last_logits"].astype(np.float32)
                worst = max(worst, d.max(), np.abs(lg[-1] - ref_last).max())
                scale = max(scale, np.abs(z["topk_logits"]).max())
                errs.append(d.ravel())
                agree += (rows.argmax(axis=1) == z["topk_ids"][:, 0]).sum()
                n += len(rows)
            mean = np.concatenate(errs).mean()
            ok = worst <= a.rtol * scale or mode in ("gpu-8bit", "cpu")
            bad |= not ok
            print(f"{Path(a.model).name} {mode}: max |orcd - reference| {worst:.4g}, mean {mean:.4g}, logit scale "
                  f"{scale:.3g} ({worst / scale:.2%}); top-1 agrees at {agree} of {n} positions "
                  f"({len(index['prompts'])} prompts){'' if ok else '  OVER ' + str(a.rtol) + ' x scale'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
