#!/usr/bin/env python3
"""Encode throughput of orcd's tokenizer next to Hugging Face `tokenizers`, single-threaded, on the same few
MB of mixed text (tests/tokenizer/tok_textgen.py: prose, code, whitespace runs, digits, CJK, emoji, combining
marks, RTL, random code points, long runs).

orcd's figure is the time spent inside tokenizer_encode (`orcd tokenize --batch0 --bench`), without model
load or I/O; HF's is the time of its encode() calls. Both see the text cut into records of about --record
bytes (default 4096: prompt-sized), and once as one string.

    python3 bench/tokenizer.py [--orcd build/orcd] [--models models] [--mb 4] [--seed 1]
"""
import argparse
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "tokenizer"))
import tok_gguf  # noqa: E402
import tok_reference  # noqa: E402
import tok_textgen  # noqa: E402


def orcd_mbps(orcd, model, records):
    data = b"".join(r.encode() + b"\0" for r in records)
    p = subprocess.run([str(orcd), "tokenize", "-m", str(model), "--batch0", "--ids", "--bench"], input=data,
                       capture_output=True, check=True)
    m = re.search(rb"load ([\d.]+) ms; encode ([\d.]+) s, ([\d.]+) MB/s", p.stderr)
    return float(m.group(3)), float(m.group(1)), p.stdout


def hf_mbps(tok, records):
    n = sum(len(r.encode()) for r in records)
    best = None
    for _ in range(2):
        t = time.perf_counter()
        out = [tok.encode(r, add_special_tokens=False).ids for r in records]
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return n / best / 1e6, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orcd", default=str(REPO / "build" / "orcd"))
    ap.add_argument("--models", default=str(REPO / "models"))
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--record", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    qwen_json = REPO.parent / "shared" / "data" / "qwen-tokenizer.json.gz"
    qwen_model = Path(a.models) / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    smol_model = Path(a.models) / "smollm2-135m-instruct-q4_1.gguf"
    specials = ["<|", "<file_sep>", "<repo_name>", "<reponame>", "<filename>", "<gh_stars>", "<issue_", "<jupyter_",
                "<empty_output>", "<tool_call>", "</tool_call>"]
    text = tok_textgen.long_string(random.Random(a.seed), int(a.mb * 1e6), avoid=specials)
    records, i = [], 0
    while i < len(text):  # cut near --record bytes, on character boundaries
        j = min(len(text), i + a.record // 2)
        records.append(text[i:j])
        i = j
    nbytes = len(text.encode())
    print(f"text: {nbytes / 1e6:.2f} MB of mixed text (seed {a.seed}); {len(records)} records of ~{a.record} bytes; "
          f"single-threaded; {os.cpu_count()} CPUs")
    print(f"{'model':10} {'input':14} {'orcd MB/s':>10} {'HF MB/s':>10} {'ratio':>7} {'orcd load ms':>13} {'same ids':>9}")
    for name, model, make_hf in (("qwen2", qwen_model, lambda: tok_reference.qwen(qwen_json)),
                                 ("smollm", smol_model, lambda: tok_reference.smollm(tok_gguf.read_metadata(smol_model)))):
        hf = make_hf()
        for label, recs in (("records", records), ("one string", [text])):
            o, load_ms, out = orcd_mbps(a.orcd, model, recs)
            h, hf_ids = hf_mbps(hf, recs)
            same = [list(map(int, line.split())) for line in out.decode().split("\n")[:-1]] == hf_ids
            print(f"{name:10} {label:14} {o:10.2f} {h:10.2f} {o / h:6.1f}x {load_ms:13.1f} {str(same):>9}")


if __name__ == "__main__":
    main()
