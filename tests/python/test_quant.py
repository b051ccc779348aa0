"""The reference cases for the CPU dequantizers (tests/quant/make_quant_cases.py), read back with the gguf
package's own reader: every type the CPU side supports is there, with the layout's block size, its
reference equal to gguf.quants.dequantize of its bytes, and the edge-case scales in place. The C unit test
(tests/unit/test_quant.c) compares orcd's dequantizers with these references; this test makes sure the
references are what they claim to be."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T, GGUFReader
from gguf.quants import dequantize

REPO = Path(__file__).resolve().parents[2]
TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
EDGE_SCALES = [0x0000, 0x0001, 0x03FF, 0x7BFF, 0xFC00, 0x7C00, 0x7E00, 0x8000]


@pytest.fixture(scope="session")
def cases(tmp_path_factory) -> GGUFReader:
    path = os.environ.get("ORCD_QUANT_CASES")
    if not path:
        out = tmp_path_factory.mktemp("quant_cases")
        subprocess.run([sys.executable, str(REPO / "tests/quant/make_quant_cases.py"), str(out)], check=True)
        path = out / "quant_cases.gguf"
    return GGUFReader(path)


def tensor(reader: GGUFReader, name: str):
    for t in reader.tensors:
        if t.name == name:
            return t
    pytest.fail(f"{name} missing from the cases file")


@pytest.mark.parametrize("name", TYPES)
def test_reference_is_gguf_dequantize(cases, name):
    q, ref = tensor(cases, f"q.{name}"), tensor(cases, f"ref.{name}")
    qtype = T[name]
    assert q.tensor_type == qtype
    assert ref.tensor_type == T.F32
    block, size = GGML_QUANT_SIZES[qtype]
    assert q.n_bytes == q.n_elements // block * size
    assert list(q.shape) == list(ref.shape)
    raw = np.asarray(q.data).view(np.uint8).reshape(-1)
    with np.errstate(all="ignore"):
        want = dequantize(raw, qtype).reshape(-1)
    got = np.asarray(ref.data, dtype=np.float32).reshape(-1)
    assert want.shape == got.shape
    same = (want.view(np.uint32) == got.view(np.uint32)) | (np.isnan(want) & np.isnan(got))
    assert same.all(), f"{name}: {np.count_nonzero(~same)} values differ from gguf.quants.dequantize"


@pytest.mark.parametrize("name", [n for n in TYPES if n not in ("F32", "F16", "BF16")])
def test_edge_scales_present(cases, name):
    """The first blocks carry 0, fp16 subnormals, 65504, -inf, inf, NaN, -0 as their scale."""
    qtype = T[name]
    block, size = GGML_QUANT_SIZES[qtype]
    blocks = np.asarray(tensor(cases, f"q.{name}").data).view(np.uint8).reshape(-1, size)
    # the first scale field of each layout: d at 0, except Q2_K (80), Q3_K (108), Q6_K (208)
    off = {"Q2_K": 80, "Q3_K": 108, "Q6_K": 208}.get(name, 0)
    scales = blocks[: len(EDGE_SCALES), off:off + 2].copy().view(np.uint16).reshape(-1)
    assert scales.tolist() == EDGE_SCALES


def test_fp16_cover_every_bit_pattern(cases):
    for name in ("F16", "BF16"):
        bits = np.asarray(tensor(cases, f"q.{name}").data).view(np.uint16).reshape(-1)
        assert np.array_equal(np.sort(bits), np.arange(65536, dtype=np.uint16))


def test_conversion_cases_round_to_nearest_even(cases):
    x = np.asarray(tensor(cases, "conv.f32").data, dtype=np.float32).reshape(-1)
    h = np.asarray(tensor(cases, "conv.f16").data).view(np.uint16).reshape(-1)
    assert x.shape == h.shape
    with np.errstate(all="ignore"):
        assert np.array_equal(x.astype(np.float16).view(np.uint16)[~np.isnan(x)], h[~np.isnan(x)])
    # the cases include exact ties, subnormals and the overflow boundary
    assert (h == 0x7BFF).any() and (h == 0x7C00).any() and ((h & 0x7C00) == 0).sum() > 1000
