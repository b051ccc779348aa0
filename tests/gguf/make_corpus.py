"""Write a corpus of GGUF files for the loader's tests: one valid file and one malformed file per failure
class, each with the message the loader must give. Usage: make_corpus.py OUTDIR

OUTDIR/manifest.tsv lines: `file<TAB>expect<TAB>what`, where expect is "ok" for a file that must load or a
substring of the loader's error message. The files are written by hand here (struct.pack), not by the
gguf package, so that every field can be broken on purpose.
"""
import os
import struct
import sys

ALIGN = 32
# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
# ggml tensor types used here
T_F32, T_F16, T_Q8_0, T_Q4_K = 0, 1, 8, 12
TYPE_SIZE = {T_F32: (1, 4), T_F16: (1, 2), T_Q8_0: (32, 34), T_Q4_K: (256, 144)}


def gstr(s) -> bytes:
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("<Q", len(b)) + b


def scalar(t: int, v) -> bytes:
    fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "B", U64: "Q", I64: "q",
           F64: "d"}[t]
    return struct.pack("<" + fmt, v)


def value(t: int, v) -> bytes:
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(value(et, x) for x in items)
    return scalar(t, v)


def kv(key, t: int, v) -> bytes:
    return gstr(key) + struct.pack("<I", t) + value(t, v)


def tensor_info(name, dims, ttype, offset) -> bytes:
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + \
        struct.pack("<IQ", ttype, offset)


def nbytes(dims, ttype) -> int:
    be, bb = TYPE_SIZE.get(ttype, (1, 1))  # unknown types: any size, the loader must refuse the type
    n = 1
    for d in dims:
        n *= d
    return n // be * bb


def pad(n: int, a: int = ALIGN) -> int:  # bytes to the next multiple of a
    return (a - n % a) % a


BASE_KVS = [
    ("general.architecture", STR, "qwen2"),
    ("general.name", STR, "corpus"),
    ("qwen2.block_count", U32, 1),
    ("qwen2.context_length", U32, 128),
    ("qwen2.embedding_length", U32, 256),
    ("qwen2.feed_forward_length", U32, 512),
    ("qwen2.attention.head_count", U32, 4),
    ("qwen2.attention.head_count_kv", U32, 2),
    ("qwen2.rope.freq_base", F32, 1000000.0),
    ("qwen2.attention.layer_norm_rms_epsilon", F32, 1e-6),
    ("test.u8", U8, 200), ("test.i8", I8, -5), ("test.u16", U16, 60000), ("test.i16", I16, -30000),
    ("test.i32", I32, -2000000000), ("test.u64", U64, 2**63 + 5), ("test.i64", I64, -(2**40)),
    ("test.f64", F64, 0.25), ("test.bool", BOOL, 1),
    ("test.nested", ARR, (ARR, [(I32, [1, 2, 3]), (STR, ["a", "bc"]), (ARR, [])])),
    ("tokenizer.ggml.tokens", ARR, (STR, ["a", "b", "c", "d"])),
]
BASE_TENSORS = [  # name, dims (ne[0] first), type
    ("token_embd.weight", [256, 4], T_Q8_0),
    ("output_norm.weight", [256], T_F32),
    ("blk.0.ffn_down.weight", [512, 256], T_Q4_K),
    ("scalar", [1], T_F16),
]


def build(kvs=None, tensors=None, version=3, magic=b"GGUF", n_tensors=None, n_kv=None, offsets=None,
          raw_kvs=None, raw_tensors=None, data_pad=None, data_len=None, align=ALIGN) -> bytes:
    """A GGUF file from parts; every override breaks one thing. Offsets default to packed and aligned."""
    kvs = BASE_KVS if kvs is None else kvs
    tensors = BASE_TENSORS if tensors is None else tensors
    kv_bytes = raw_kvs if raw_kvs is not None else b"".join(kv(*x) for x in kvs)
    if offsets is None:
        offsets, o = [], 0
        for _, dims, tt in tensors:
            offsets.append(o)
            o += nbytes(dims, tt) + pad(nbytes(dims, tt), align)
    ti_bytes = raw_tensors if raw_tensors is not None else \
        b"".join(tensor_info(n, d, t, off) for (n, d, t), off in zip(tensors, offsets))
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    body = head + kv_bytes + ti_bytes
    body += b"\0" * (pad(len(body), align) if data_pad is None else data_pad)
    end = max((off + nbytes(d, t) for (_, d, t), off in zip(tensors, offsets)), default=0)
    return body + bytes(i * 7 % 251 for i in range(end if data_len is None else data_len))


def cases():
    valid = build()
    yield "valid.gguf", valid, "ok", "a valid file with every value type and nested arrays"
    yield "valid_align64.gguf", build(kvs=BASE_KVS + [("general.alignment", U32, 64)], align=64), "ok", \
        "general.alignment 64"
    yield "valid_no_tensors.gguf", build(tensors=[]), "ok", "metadata only"
    yield "valid_v2.gguf", build(version=2), "ok", "version 2 has the same layout"

    # header
    yield "empty.gguf", b"", "truncated file", "empty file"
    yield "magic_only.gguf", b"GGUF", "truncated file", "ends after the magic"
    yield "bad_magic.gguf", b"GGML" + valid[4:], "bad magic", "wrong magic"
    yield "bad_magic_text.gguf", b"hello world, not a model\n" * 4, "bad magic", "a text file"
    yield "version_1.gguf", build(version=1), "unsupported GGUF version", "version 1"
    yield "version_99.gguf", build(version=99), "unsupported GGUF version", "version 99"
    yield "trunc_header.gguf", valid[:15], "truncated file", "cut inside the counts"
    yield "huge_tensor_count.gguf", build(n_tensors=2**62), "tensor count", "tensor count 2^62"
    yield "huge_kv_count.gguf", build(n_kv=2**63), "metadata count", "metadata count 2^63"
    yield "kv_count_too_big.gguf", build(n_kv=len(BASE_KVS) + 1), "", "one metadata entry more than present"

    # metadata
    yield "key_len_past_end.gguf", build(raw_kvs=struct.pack("<Q", 2**40) + b"general"), \
        "runs past the end of the file", "key length 2^40"
    yield "key_empty.gguf", build(kvs=[("", U32, 1)] + BASE_KVS[1:], n_kv=len(BASE_KVS)), \
        "length 0 out of range", "empty key"
    yield "key_nul.gguf", build(kvs=BASE_KVS + [("general.na\0me", STR, "x")]), "contains a NUL byte at position 10", \
        "a key with a NUL byte"
    yield "str_len_past_end.gguf", build(raw_kvs=gstr("general.name") + struct.pack("<IQ", STR, 2**50)), \
        "runs past the end of the file", "string value length 2^50"
    yield "unknown_value_type.gguf", build(raw_kvs=gstr("x.y") + struct.pack("<I", 13) + b"\0" * 8, n_kv=1,
                                            tensors=[]), "unknown value type 13", "value type 13"
    yield "bad_bool.gguf", build(raw_kvs=gstr("test.bool") + struct.pack("<IB", BOOL, 2), n_kv=1, tensors=[]), \
        "bool value 2", "bool byte 2"
    yield "unknown_array_type.gguf", build(raw_kvs=gstr("a.b") + struct.pack("<IIQ", ARR, 77, 1) + b"\0" * 8,
                                           n_kv=1, tensors=[]), "unknown array element type 77", "array of type 77"
    yield "huge_array.gguf", build(raw_kvs=gstr("a.b") + struct.pack("<IIQ", ARR, U32, 2**61), n_kv=1,
                                   tensors=[]), "array of 2305843009213693952 uint32", "array count 2^61"
    yield "huge_string_array.gguf", build(raw_kvs=gstr("a.b") + struct.pack("<IIQ", ARR, STR, 2**40), n_kv=1,
                                          tensors=[]), "array of 1099511627776 string", "string array count 2^40"
    nested = (I32, [1])
    for _ in range(9):
        nested = (ARR, [nested])
    yield "deep_nesting.gguf", build(kvs=[("a.b", ARR, nested)], tensors=[]), "nested deeper than 8", \
        "arrays nested 10 deep"
    yield "trunc_in_array.gguf", build(raw_kvs=gstr("a.b") + struct.pack("<IIQ", ARR, STR, 2) + gstr("x"),
                                       n_kv=1, tensors=[]), "array of 2 string elements", "array ends early"
    yield "duplicate_key.gguf", build(kvs=BASE_KVS + [("general.name", STR, "again")]), \
        "duplicate metadata key \"general.name\"", "a key twice"
    yield "alignment_type.gguf", build(kvs=BASE_KVS + [("general.alignment", STR, "32")]), \
        "general.alignment: expected type uint32, found string", "alignment as a string"
    yield "alignment_zero.gguf", build(kvs=BASE_KVS + [("general.alignment", U32, 0)]), \
        "expected a power of two, found 0", "alignment 0"
    yield "alignment_npot.gguf", build(kvs=BASE_KVS + [("general.alignment", U32, 48)]), \
        "expected a power of two, found 48", "alignment 48"

    # tensor infos
    def with_tensor(name, dims, ttype, **kw):
        return build(tensors=[(name, dims, ttype)], **kw)

    yield "n_dims_0.gguf", build(raw_tensors=gstr("t") + struct.pack("<IIQ", 0, T_F32, 0), tensors=[("t", [1], T_F32)]), \
        "n_dims 0 out of range", "n_dims 0"
    yield "n_dims_5.gguf", build(raw_tensors=gstr("t") + struct.pack("<I5QIQ", 5, 1, 1, 1, 1, 1, T_F32, 0),
                                 tensors=[("t", [1], T_F32)]), "n_dims 5 out of range", "n_dims 5"
    yield "dim_zero.gguf", with_tensor("t", [32, 0], T_F32), "dimension 1 is 0", "a zero dimension"
    yield "elems_overflow.gguf", with_tensor("t", [2**32, 2**32], T_F32, data_len=0), "element count overflows", \
        "2^64 elements"
    yield "unknown_tensor_type.gguf", with_tensor("t", [32], 4, data_len=64), "unknown tensor type 4", \
        "retired type 4"
    yield "tensor_type_q8_1.gguf", with_tensor("t", [32], 9, data_len=64), "unknown tensor type 9", \
        "in-memory type Q8_1"
    yield "tensor_type_huge.gguf", with_tensor("t", [32], 2**31, data_len=64), "unknown tensor type 2147483648", \
        "type 2^31"
    yield "row_not_block.gguf", with_tensor("t", [100, 2], T_Q8_0, data_len=256), \
        "row length 100 is not a multiple of the Q8_0 block size 32", "Q8_0 row of 100"
    yield "row_not_kblock.gguf", with_tensor("t", [896, 2], T_Q4_K, data_len=1024), \
        "row length 896 is not a multiple of the Q4_K block size 256", "Q4_K row of 896"
    yield "name_empty.gguf", with_tensor("", [32], T_F32), "tensor name: length 0 out of range", "empty name"
    yield "name_too_long.gguf", with_tensor("n" * 300, [32], T_F32), "tensor name: length 300 out of range", \
        "300-byte name"
    yield "name_nul.gguf", with_tensor("t\0x", [32], T_F32), "contains a NUL byte at position 1", "a NUL in a name"
    yield "duplicate_tensor.gguf", build(tensors=BASE_TENSORS + [("output_norm.weight", [256], T_F32)]), \
        "duplicate tensor name \"output_norm.weight\"", "a name twice"
    yield "misaligned.gguf", build(offsets=[0, 8 * 34 + 8, 2048, 8192]), \
        "data offset 280 is not a multiple of the alignment 32", "offset 280"
    yield "overlap.gguf", build(offsets=[0, 256, 4096, 8192]), "overlap", "two tensors share bytes"
    yield "same_offset.gguf", build(offsets=[0, 4096, 4096, 8192]), "overlap", "two tensors at one offset"
    yield "data_past_eof.gguf", build(data_len=100), "runs past the end of the data section", \
        "data section cut short"
    yield "offset_huge.gguf", build(offsets=[0, 2**64 - 32, 4096, 8192], data_len=9000), "runs past the end of the data section", \
        "offset near 2^64"
    yield "no_data_section.gguf", build(data_pad=0, data_len=0), "", "tensor infos then end of file"
    yield "trunc_tensor_info.gguf", valid[:len(build(data_pad=0, data_len=0)) - 6], "truncated file", \
        "cut inside the last tensor info"
    # cut just before the data section, past all infos (data then starts past the end)
    hdr = len(build(data_pad=0, data_len=0))
    yield "trunc_before_data.gguf", valid[:hdr + pad(hdr) - 1] if pad(hdr) else valid[:hdr], "", \
        "cut in the padding"

    # truncated anywhere: a spread of cut points through the whole valid file
    for cut in sorted({1, 3, 5, 9, 17, 23, 40, 64, 100, 200, 333, 500, len(valid) // 2, len(valid) - 1}):
        if cut < len(valid):
            yield f"trunc_at_{cut}.gguf", valid[:cut], "", f"valid file cut to {cut} bytes"


def main() -> int:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lines = []
    names = set()
    for name, data, expect, what in cases():
        assert name not in names, name
        names.add(name)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        lines.append(f"{name}\t{expect}\t{what}")
    with open(os.path.join(out, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"gguf corpus: {len(lines)} files in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
