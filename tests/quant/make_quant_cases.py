"""Write the reference cases for the CPU dequantizers and fp16 conversions (tests/unit/test_quant.c).
Usage: make_quant_cases.py OUTDIR   -> OUTDIR/quant_cases.gguf

The reference is the `gguf` Python package (gguf.quants), independent of orcd's C code. For each type T:
  q.T    the raw blocks (ROWS rows of COLS values; type T)
  ref.T  gguf.quants.dequantize of those bytes (F32, same shape)
Blocks of the 32-wide types come from gguf.quants.quantize of random floats (rows at several magnitudes,
an all-zero row, a row with one huge value); K-quant blocks are random bytes with sane fp16 scales
(dequantize defines their meaning). In every quantized type the first blocks then get edge-case scales
written over their fp16 fields: 0, the smallest and largest fp16 subnormals, 65504, -inf, +inf, NaN.
F16 and BF16 hold all 65536 bit patterns. For fp32 -> fp16:
  conv.f32  F32 values (random over the whole fp16 range and beyond, ties, subnormals, specials)
  conv.f16  numpy's float16 of each (round to nearest even), as F16
"""
import os
import sys

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

ROWS, COLS = 24, 512  # 12288 values per type: 384 blocks of 32, 48 super-blocks of 256

# byte offsets of the fp16 scale fields in each block (ggml-common.h)
SCALE_OFFSETS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
BLOCK32 = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
KQUANTS = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
# fp16 bit patterns: 0, smallest subnormal, largest subnormal, 65504, -inf, +inf, NaN, -0
EDGE_SCALES = [0x0000, 0x0001, 0x03FF, 0x7BFF, 0xFC00, 0x7C00, 0x7E00, 0x8000]


def random_floats(rng) -> np.ndarray:
    """(ROWS, COLS) values at several magnitudes, with an all-zero row and a row with one huge value."""
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    x *= np.float32(10.0) ** rng.integers(-6, 3, size=(ROWS, 1)).astype(np.float32)
    x[1] = 0
    x[2, 7] = 60000.0  # the largest magnitudes fp16 scales can still carry
    x[3] = rng.uniform(-1, 1, COLS).astype(np.float32) + np.float32(5)  # a large minimum (Q4_1, Q5_1)
    return x


def random_kquant(rng, qtype) -> np.ndarray:
    """(ROWS, bytes per row) random blocks with fp16 scales of sane magnitude."""
    block, size = GGML_QUANT_SIZES[qtype]
    nblk = ROWS * COLS // block
    raw = rng.integers(0, 256, size=(nblk, size), dtype=np.uint8)
    for off in SCALE_OFFSETS[qtype]:
        s = (rng.standard_normal(nblk) * 10.0 ** rng.integers(-4, 1, nblk)).astype(np.float16)
        raw[:, off:off + 2] = s.view(np.uint8).reshape(nblk, 2)
    return raw.reshape(ROWS, -1)


def with_edge_scales(raw: np.ndarray, qtype) -> np.ndarray:
    """Overwrite the scale fields of the first len(EDGE_SCALES) blocks with edge values."""
    block, size = GGML_QUANT_SIZES[qtype]
    blocks = raw.reshape(-1, size).copy()
    for i, h in enumerate(EDGE_SCALES):
        for off in SCALE_OFFSETS[qtype]:
            blocks[i, off:off + 2] = np.frombuffer(np.uint16(h).tobytes(), dtype=np.uint8)
    return blocks.reshape(raw.shape)


def conversion_cases(rng) -> np.ndarray:
    """fp32 values that exercise fp32 -> fp16 rounding."""
    parts = [
        rng.uniform(-70000, 70000, 4096),
        rng.standard_normal(4096) * 10.0 ** rng.uniform(-9, 5, 4096),  # down to below fp16 subnormals
        np.ldexp(rng.uniform(1, 2, 2048), rng.integers(-26, -13, 2048)),  # fp16 subnormal range
    ]
    # exact ties between neighbouring fp16 values (normal and subnormal) and their fp32 neighbours
    h = rng.integers(0, 0x7BFF, 2048).astype(np.uint16)
    lo = h.view(np.float16).astype(np.float64)
    hi = (h + 1).view(np.float16).astype(np.float64)
    mid = ((lo + hi) / 2).astype(np.float32)
    parts += [mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(0))]
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519.996, 65520, 65536, 1e30, 2.0**-24, 2.0**-25,
               2.0**-25 * 1.0000001, 2.0**-14, 2.0**-14 * 0.99999, 5.96e-8, 1.0, -1.0]
    parts.append(np.array(special))
    x = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
    return np.concatenate([x, -x])


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: make_quant_cases.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240611)
    w = GGUFWriter(os.path.join(out, "quant_cases.gguf.tmp"), "quant-cases")
    np.seterr(all="ignore")  # the edge scales make inf and NaN on purpose

    x = random_floats(rng)
    w.add_tensor("q.F32", x)
    w.add_tensor("ref.F32", x.copy())

    every = np.arange(65536, dtype=np.uint16).reshape(128, 512)
    w.add_tensor("q.F16", every.view(np.float16))
    w.add_tensor("ref.F16", dequantize(every.view(np.uint8), T.F16).reshape(128, 512))
    w.add_tensor("q.BF16", every.view(np.uint8), raw_dtype=T.BF16)
    w.add_tensor("ref.BF16", dequantize(every.view(np.uint8), T.BF16).reshape(128, 512))

    for qtype in BLOCK32 + KQUANTS:
        raw = quantize(x, qtype) if qtype in BLOCK32 else random_kquant(rng, qtype)
        raw = with_edge_scales(raw, qtype)
        ref = dequantize(raw, qtype).astype(np.float32)
        assert ref.shape == (ROWS, COLS), (qtype.name, ref.shape)
        w.add_tensor(f"q.{qtype.name}", raw, raw_dtype=qtype)
        w.add_tensor(f"ref.{qtype.name}", ref)

    c = conversion_cases(rng)
    w.add_tensor("conv.f32", c)
    w.add_tensor("conv.f16", c.astype(np.float16))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(os.path.join(out, "quant_cases.gguf.tmp"), os.path.join(out, "quant_cases.gguf"))


if __name__ == "__main__":
    main()
