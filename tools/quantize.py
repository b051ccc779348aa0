"""Numpy quantizers for ggml's K-quant formats Q4_K, Q5_K and Q6_K.

The `gguf` package (gguf-py) can quantize F16, BF16, Q4_0, Q5_0, Q8_0, ... but can only
*dequantize* the K-quants. This module adds the missing quantizers so that tools/gen_model.py
can write K-quant GGUF files without llama.cpp.

What it does:
  - writes blocks in exactly the byte layout of ggml-common.h (block_q4_K, block_q5_K,
    block_q6_K: 256 weights per super-block), so any ggml-compatible dequantizer decodes them;
  - picks sub-block scales with a small vectorised least-squares search (the idea of ggml's
    make_qkx2_quants, unweighted), which keeps the round-trip error close to llama.cpp's.

What it does not do:
  - it does not reproduce llama-quantize bit for bit (no importance matrix, no weighting);
  - it does not handle rows whose length is not a multiple of 256 (callers choose a fallback);
  - it does not rescue blocks of very small values (|x| below about 1e-5): their fp16
    super-block scales underflow, as they do in ggml.

`quantize()` has the same contract as `gguf.quants.quantize()`: float input of shape
(..., n) gives uint8 output of shape (..., n // block_size * type_size).
"""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants as gguf_quants

QK_K = 256  # weights per K-quant super-block

# Offsets added to the level count when searching for a sub-block scale (as ggml's
# rmin=-1, rdelta=0.1 search, but coarser): iscale = (nmax + delta) / range.
_AFFINE_DELTAS = np.linspace(-1.0, 1.0, 9, dtype=np.float32)
_SYMMETRIC_DELTAS = np.linspace(-1.5, 1.5, 7, dtype=np.float32)


def quantize(data: np.ndarray, qtype: QT) -> np.ndarray:
    """Quantize float rows to `qtype`; K-quants here, every other type via gguf.quants."""
    if qtype not in _K_QUANTIZERS:
        return gguf_quants.quantize(data, qtype)
    if data.shape[-1] % QK_K != 0:
        raise ValueError(f"{qtype.name} needs rows that are a multiple of {QK_K}, got {data.shape[-1]}")
    rows = np.ascontiguousarray(data, dtype=np.float32)
    blocks = _K_QUANTIZERS[qtype](rows.reshape(-1, QK_K))
    return blocks.reshape(*data.shape[:-1], -1)


def _to_f16(x: np.ndarray) -> np.ndarray:
    """Round to float16 (as stored) and return the value as float32."""
    return x.astype(np.float16).astype(np.float32)


def _f16_bytes(x: np.ndarray) -> np.ndarray:
    """(n,) float -> (n, 2) little-endian float16 bytes."""
    return x.astype("<f2").view(np.uint8).reshape(-1, 2)


# Reductions along short rows (16 or 32 values): numpy's axis=1 reductions are slow there, so
# these use einsum (sums) or pairwise halving (min/max; the row length must be a power of two).

def _row_sums(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij->i", x)


def _row_dots(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, y)


def _row_reduce(op: np.ufunc, x: np.ndarray) -> np.ndarray:
    while x.shape[1] > 1:
        half = x.shape[1] // 2
        x = op(x[:, :half], x[:, half:])
    return x[:, 0]


def _fit_affine(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit x ~= scale * q - offset with integer q in [0, nmax], per row of x.

    Returns (scale, offset), both >= 0. Tries a few level scales around (nmax / range) and
    keeps, per row, the least-squares (scale, offset) of the candidate with the least error.
    """
    n = x.shape[1]
    lo = np.minimum(_row_reduce(np.minimum, x), 0)  # ggml keeps the minimum <= 0
    span = _row_reduce(np.maximum, x) - lo
    safe_span = np.where(span > 0, span, 1)
    sum_x = _row_sums(x)
    sum_xx = _row_dots(x, x)
    shifted = x - lo[:, None]

    best_scale = span / nmax
    best_offset = -lo
    best_err = np.full(x.shape[0], np.inf, dtype=np.float32)
    for delta in _AFFINE_DELTAS:
        q = np.rint(shifted * ((nmax + delta) / safe_span)[:, None])
        np.clip(q, 0, nmax, out=q)
        sum_q = _row_sums(q)
        sum_qq = _row_dots(q, q)
        sum_xq = _row_dots(x, q)
        det = n * sum_qq - sum_q * sum_q
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = (n * sum_xq - sum_x * sum_q) / det
            bias = (sum_qq * sum_x - sum_q * sum_xq) / det
            # a positive bias would need a negative offset: refit through the origin instead
            clamp = bias > 0
            scale = np.where(clamp, sum_xq / sum_qq, scale)
            bias = np.where(clamp, 0, bias)
            err = (sum_xx - 2 * scale * sum_xq - 2 * bias * sum_x
                   + scale * scale * sum_qq + 2 * scale * bias * sum_q + n * bias * bias)
        better = (det > 0) & (scale > 0) & (err < best_err)
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
        best_offset = np.where(better, -bias, best_offset)
    return best_scale.astype(np.float32), best_offset.astype(np.float32)


def _fit_symmetric(x: np.ndarray) -> np.ndarray:
    """Fit x ~= scale * q with integer q in [-32, 31] per row; returns the signed scale.

    The element of largest magnitude maps to about -32 (the sign makes the full range usable),
    then a few scales around it are tried and the least-squares one with least error is kept.
    """
    extreme = np.take_along_axis(x, np.abs(x).argmax(axis=1)[:, None], axis=1)[:, 0]
    safe_extreme = np.where(extreme != 0, extreme, 1)
    sum_xx = _row_dots(x, x)

    best_scale = extreme / -32
    best_err = np.full(x.shape[0], np.inf, dtype=np.float32)
    for delta in _SYMMETRIC_DELTAS:
        q = np.rint(x * (-(32 + delta) / safe_extreme)[:, None])
        np.clip(q, -32, 31, out=q)
        sum_qq = _row_dots(q, q)
        sum_xq = _row_dots(x, q)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = sum_xq / sum_qq
            err = sum_xx - scale * sum_xq
        better = (sum_qq > 0) & (err < best_err)
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
    return best_scale.astype(np.float32)


def _quantize_6bit(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Store non-negative per-sub-block values (nb, 8) as fp16 super-scales and 6-bit integers."""
    super_scale = _to_f16(values.max(axis=1) / 63)
    with np.errstate(divide="ignore", invalid="ignore"):
        ints = np.rint(values / super_scale[:, None])
    ints = np.clip(np.nan_to_num(ints, nan=0.0, posinf=0.0), 0, 63)  # a zero super-scale: all 0
    return super_scale, ints.astype(np.uint8)


def _pack_k4_scales(sc: np.ndarray, mins: np.ndarray) -> np.ndarray:
    """Pack 8 six-bit scales and 8 six-bit mins per block into ggml's 12-byte layout."""
    out = np.empty((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = mins[:, 0:4] | ((mins[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((mins[:, 4:8] & 0x0F) << 4)
    return out


def _affine_k_blocks(blocks: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Shared part of Q4_K / Q5_K: returns (header bytes d|dmin|scales, levels (nb, 256))."""
    nb = blocks.shape[0]
    sub = blocks.reshape(nb * 8, 32)
    scale, offset = _fit_affine(sub, nmax)
    d, sc = _quantize_6bit(scale.reshape(nb, 8))
    dmin, mins = _quantize_6bit(offset.reshape(nb, 8))

    eff_scale = (d[:, None] * sc).reshape(-1, 1)
    eff_offset = (dmin[:, None] * mins).reshape(-1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint((sub + eff_offset) / eff_scale)
    q = np.where(eff_scale > 0, q, 0)
    np.clip(q, 0, nmax, out=q)
    levels = q.astype(np.uint8).reshape(nb, QK_K)

    header = np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_k4_scales(sc, mins)], axis=1)
    return header, levels


def _pack_nibbles(levels: np.ndarray) -> np.ndarray:
    """(nb, 256) levels -> (nb, 128): byte 32c+l holds level 64c+l (low) and 64c+32+l (high)."""
    pairs = (levels & 0x0F).reshape(-1, 4, 2, 32)
    return (pairs[:, :, 0, :] | (pairs[:, :, 1, :] << 4)).reshape(-1, 128)


def _quantize_q4_k(blocks: np.ndarray) -> np.ndarray:
    header, levels = _affine_k_blocks(blocks, 15)
    return np.concatenate([header, _pack_nibbles(levels)], axis=1)


def _quantize_q5_k(blocks: np.ndarray) -> np.ndarray:
    header, levels = _affine_k_blocks(blocks, 31)
    high_bits = (levels >> 4).reshape(-1, 8, 32)  # bit j of qh[l] is bit 4 of level 32j+l
    qh = (high_bits << np.arange(8, dtype=np.uint8)[None, :, None]).sum(axis=1, dtype=np.uint8)
    return np.concatenate([header, qh, _pack_nibbles(levels)], axis=1)


def _quantize_q6_k(blocks: np.ndarray) -> np.ndarray:
    nb = blocks.shape[0]
    sub = blocks.reshape(nb * 16, 16)
    scale = _fit_symmetric(sub).reshape(nb, 16)

    d = _to_f16(np.abs(scale).max(axis=1) / 127)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.rint(scale / d[:, None])
    sc = np.clip(np.nan_to_num(sc, nan=0.0), -128, 127)
    eff_scale = (d[:, None] * sc).reshape(-1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint(sub / eff_scale)
    q = np.where(eff_scale != 0, q, 0)
    levels = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(nb, 2, 4, 32)

    # per 128 weights: ql[l] = w[l] | w[l+64] << 4, ql[l+32] = w[l+32] | w[l+96] << 4,
    # qh[l] = bits 4-5 of w[l], w[l+32], w[l+64], w[l+96] at shifts 0, 2, 4, 6
    low = levels & 0x0F
    ql = (low[:, :, 0:2, :] | (low[:, :, 2:4, :] << 4)).reshape(nb, 128)
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]
    qh = ((levels >> 4) << shifts).sum(axis=2, dtype=np.uint8).reshape(nb, 64)
    scales = sc.astype(np.int8).view(np.uint8)
    return np.concatenate([ql, qh, scales, _f16_bytes(d)], axis=1)


_K_QUANTIZERS = {
    QT.Q4_K: _quantize_q4_k,
    QT.Q5_K: _quantize_q5_k,
    QT.Q6_K: _quantize_q6_k,
}
K_TYPES = frozenset(_K_QUANTIZERS)
