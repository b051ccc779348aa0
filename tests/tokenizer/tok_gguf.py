"""Read a GGUF file's metadata (not its tensors) in plain Python, fast enough for 150k-token vocabularies
(gguf.GGUFReader takes ~9 s on the Qwen2.5 file because it maps every tensor and array element).
Independent of orcd's C parser on purpose: tests use it to build reference tokenizers and templates.

    meta = read_metadata(path)            # {key: value}; strings as str, arrays as lists
"""
import struct

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_metadata(path):
    with open(path, "rb") as f:
        head = f.read(24)
        if head[:4] != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        version, _n_tensors, n_kv = struct.unpack_from("<IQQ", head, 4)
        if version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {version}")
        # metadata of real models is at most tens of MB; read generously and grow if needed
        data = head + f.read(64 << 20)
    pos = 24

    def string():
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        s = data[pos + 8:pos + 8 + n]
        pos += 8 + n
        return s.decode("utf-8", "surrogateescape")

    def value(t):
        nonlocal pos
        if t == 8:
            return string()
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if et in _SCALAR:
                fmt = _SCALAR[et]
                size = struct.calcsize(fmt)
                vals = list(struct.unpack_from("<%d%s" % (n, fmt[1]), data, pos))
                pos += size * n
                return vals
            return [value(et) for _ in range(n)]
        fmt = _SCALAR[t]
        (v,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v

    meta = {}
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        meta[key] = value(t)
    return meta


_TYPE_IDS = {"u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8, "u64": 10,
             "i64": 11, "f64": 12}


def write_metadata(path, items, version=3):
    """Write a GGUF file with metadata only (no tensors). items: (key, type, value) with type one of
    _TYPE_IDS's names or "arr:TYPE" for an array of that type (value a list)."""

    def s(x):
        b = x.encode("utf-8", "surrogateescape") if isinstance(x, str) else x
        return struct.pack("<Q", len(b)) + b

    def scalar(t, v):
        return s(v) if t == "str" else struct.pack(_SCALAR[_TYPE_IDS[t]], v)

    out = [b"GGUF", struct.pack("<IQQ", version, 0, len(items))]
    for key, t, v in items:
        out.append(s(key))
        if t.startswith("arr:"):
            et = t[4:]
            out.append(struct.pack("<IIQ", 9, _TYPE_IDS[et], len(v)))
            out.extend(scalar(et, x) for x in v)
        else:
            out.append(struct.pack("<I", _TYPE_IDS[t]) + scalar(t, v))
    with open(path, "wb") as f:
        f.write(b"".join(out))
