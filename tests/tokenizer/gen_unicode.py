#!/usr/bin/env python3
"""Generate src/tokenizer/unicode_tables.h: the Unicode data the tokenizer's pre-tokenizer and normalizer need.

The reference the tokenizer must match is Hugging Face `tokenizers` (0.20+), and its Unicode data comes
from two places of two different ages, so the tables do too:

  * The pre-tokenizer regexes (\\p{L}, \\p{N}, \\s) run on Oniguruma, whose tables are Unicode 16.0:
    letters are General_Category L*, numbers N*, and \\s is the White_Space property (25 code points).
    Source: `unicodedata2` 16.0.0 (PyPI), a backport of Python's unicodedata at Unicode 16.0.
  * SmolLM's Digits pre-tokenizer uses Rust's char::is_numeric, at the Unicode of the Rust that built
    `tokenizers` (newer than Oniguruma's): UNI_DIGITS_EXTRA holds what it calls numeric beyond \\p{N},
    probed from the installed `tokenizers` (pinned in tests/requirements.txt).
  * The NFC normalizer (Qwen2's tokenizer.json has one) uses the crate unicode-normalization-alignments,
    whose tables are Unicode 9.0: a mark added in 10.0 or later has combining class 0 there and never
    decomposes or composes. So the normalization data below is Unicode 16.0's restricted to the code
    points assigned by 9.0 (Age <= 9.0, from ICU's u_charAge). That restriction is exact because
    decompositions and combining classes of assigned characters never change (Unicode's stability
    policy) and composites added later are composition exclusions.

Run (needs `pip install unicodedata2==16.0.0` and libicuuc, e.g. Debian's libicu72):
    python3 tests/tokenizer/gen_unicode.py src/tokenizer/unicode_tables.h
    python3 tests/tokenizer/gen_unicode.py --verify     # compare every code point with Hugging Face

--verify checks, for all 1,112,064 scalar values, the L/N/White_Space classes against Oniguruma's inside
`tokenizers`, and NFC of every single code point, of every composition pair, and of random mark
sequences against `tokenizers.normalizers.NFC`, using a Python model of the C normalizer.
"""
import ctypes
import ctypes.util
import random
import sys

import unicodedata2 as ud

assert ud.unidata_version == "16.0.0", ud.unidata_version

MAX = 0x110000
SCALARS = [c for c in range(MAX) if not (0xD800 <= c < 0xE000)]

# ---- ages from ICU ----

def _icu_age():
    for ver in range(80, 60, -1):
        try:
            lib = ctypes.CDLL(f"libicuuc.so.{ver}")
            f = getattr(lib, f"u_charAge_{ver}")
            break
        except (OSError, AttributeError):
            continue
    else:
        sys.exit("gen_unicode: libicuuc not found (apt-get install libicu72)")
    f.argtypes = [ctypes.c_int32, ctypes.c_uint8 * 4]
    v = (ctypes.c_uint8 * 4)()

    def age(c):
        f(c, v)
        return (v[0], v[1])
    return age

# ---- classes (Unicode 16.0) ----

WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B)) + \
              [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]

def is_l(c):
    return ud.category(chr(c))[0] == "L"

def is_n(c):
    return ud.category(chr(c))[0] == "N"

# ---- normalization data (Unicode 9.0) ----

def norm_data():
    age = _icu_age()
    old = [c for c in SCALARS if age(c) != (0, 0) and age(c) <= (9, 0)]
    oldset = set(old)
    ccc = {c: ud.combining(chr(c)) for c in old if ud.combining(chr(c))}
    decomp = {}   # canonical, one level
    for c in old:
        d = ud.decomposition(chr(c))
        if d and not d.startswith("<"):
            parts = [int(x, 16) for x in d.split()]
            assert all(p in oldset for p in parts), hex(c)
            decomp[c] = parts
    full = {}

    def expand(c):
        if c in full:
            return full[c]
        out = []
        for p in decomp.get(c, [c]):
            out.extend(expand(p) if p in decomp else [p])
        full[c] = out
        return out
    for c in decomp:
        expand(c)
    # primary composites: two-element decomposition, starter first element, not excluded. Unicode 16's NFC
    # of the decomposition gives the composite back exactly when it is not a composition exclusion.
    comp = {}
    for c, d in decomp.items():
        if len(d) == 2 and ccc.get(d[0], 0) == 0 and ud.normalize("NFC", chr(d[0]) + chr(d[1])) == chr(c):
            comp[(d[0], d[1])] = c
    return ccc, full, comp

# ---- a Python model of the C normalizer (src/tokenizer.c nfc_*), for --verify ----

S_BASE, L_BASE, V_BASE, T_BASE, L_COUNT, V_COUNT, T_COUNT = 0xAC00, 0x1100, 0x1161, 0x11A7, 19, 21, 28
N_COUNT, S_COUNT = V_COUNT * T_COUNT, 19 * 21 * 28

def nfc_model(s, ccc, full, comp):
    d = []
    for ch in s:
        c = ord(ch)
        if S_BASE <= c < S_BASE + S_COUNT:
            i = c - S_BASE
            d += [L_BASE + i // N_COUNT, V_BASE + (i % N_COUNT) // T_COUNT]
            if i % T_COUNT:
                d.append(T_BASE + i % T_COUNT)
        else:
            d += full.get(c, [c])
    # canonical order: stable sort of each run of non-starters
    i = 0
    while i < len(d):
        if ccc.get(d[i], 0) == 0:
            i += 1
            continue
        j = i
        while j < len(d) and ccc.get(d[j], 0) != 0:
            j += 1
        d[i:j] = sorted(d[i:j], key=lambda c: ccc.get(c, 0))
        i = j
    if not d:
        return ""

    def compose(a, b):
        if L_BASE <= a < L_BASE + L_COUNT and V_BASE <= b < V_BASE + V_COUNT:
            return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT
        if S_BASE <= a < S_BASE + S_COUNT and (a - S_BASE) % T_COUNT == 0 and T_BASE < b < T_BASE + T_COUNT:
            return a + (b - T_BASE)
        return comp.get((a, b))
    out = [d[0]]
    starter = 0 if ccc.get(d[0], 0) == 0 else -1
    last = 0 if starter == 0 else 256
    for c in d[1:]:
        cc = ccc.get(c, 0)
        k = compose(out[starter], c) if starter >= 0 else None
        if k is not None and (last < cc or last == 0):
            out[starter] = k
            continue
        if cc == 0:
            starter = len(out)
        last = cc
        out.append(c)
    return "".join(map(chr, out))

# ---- output ----

def ranges(pred):
    out, start = [], None
    for c in range(MAX + 1):
        inside = c < MAX and pred(c)
        if inside and start is None:
            start = c
        elif not inside and start is not None:
            out.append((start, c - 1))
            start = None
    return out

def emit_ranges(f, name, rs):
    f.write(f"static const uint32_t {name}[][2] = {{ /* {len(rs)} ranges */\n")
    for i in range(0, len(rs), 6):
        f.write("    " + " ".join(f"{{0x{a:X}, 0x{b:X}}}," for a, b in rs[i:i + 6]) + "\n")
    f.write("};\n\n")

def generate(path):
    ccc, full, comp = norm_data()
    seconds = {b for (_, b) in comp}
    # NFC quick check: a code point that may change or combine under NFC (ccc != 0, NFC(c) != c, or the
    # second half of a composition, Hangul vowels and trailing consonants included).
    def nq(c):
        if c in ccc or c in seconds or V_BASE <= c < V_BASE + V_COUNT or T_BASE < c < T_BASE + T_COUNT:
            return True
        return c in full and nfc_model(chr(c), ccc, full, comp) != chr(c)
    with open(path, "w") as f:
        f.write("/*\n * unicode_tables: generated by tests/tokenizer/gen_unicode.py; do not edit. Included by\n"
                " * src/tokenizer.c only. Classes at Unicode 16.0 (what Oniguruma in Hugging Face tokenizers uses for\n"
                " * \\\\p{L}, \\\\p{N}, \\\\s); normalization data at Unicode 9.0 (what its NFC normalizer uses).\n */\n")
        f.write("#ifndef ORCD_TOKENIZER_UNICODE_TABLES_H\n#define ORCD_TOKENIZER_UNICODE_TABLES_H\n\n#include <stdint.h>\n\n"
                "/* clang-format off */\n\n")
        f.write("/* General_Category L* (letters) */\n")
        emit_ranges(f, "UNI_LETTER", ranges(is_l))
        f.write("/* General_Category N* (numbers) */\n")
        emit_ranges(f, "UNI_NUMBER", ranges(is_n))
        ws = set(WHITE_SPACE)
        extra = digits_extra()
        f.write("/* numeric for the Digits pre-tokenizer (Rust's char::is_numeric in the reference's build, a newer\n"
                " * Unicode than Oniguruma's) but not \\\\p{N}: probed from `tokenizers` */\n")
        emit_ranges(f, "UNI_DIGITS_EXTRA", ranges(lambda c: c in extra))
        f.write("/* White_Space */\n")
        emit_ranges(f, "UNI_SPACE", ranges(lambda c: c in ws))
        f.write("/* may change under NFC: ccc != 0, NFC_Quick_Check No or Maybe (Unicode 9.0) */\n")
        emit_ranges(f, "UNI_NFC_CHECK", ranges(nq))
        cr = []
        for c in sorted(ccc):
            if cr and cr[-1][1] == c - 1 and cr[-1][2] == ccc[c]:
                cr[-1][1] = c
            else:
                cr.append([c, c, ccc[c]])
        f.write(f"/* canonical combining class != 0: {{first, last, ccc}} */\n"
                f"static const uint32_t UNI_CCC[][3] = {{ /* {len(cr)} ranges */\n")
        for i in range(0, len(cr), 5):
            f.write("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, {k}}}," for a, b, k in cr[i:i + 5]) + "\n")
        f.write("};\n\n")
        pool, idx = [], []
        for c in sorted(full):
            idx.append((c, len(pool), len(full[c])))
            pool += full[c]
        f.write(f"/* full canonical decompositions (Hangul syllables are algorithmic): {{code point, offset in\n"
                f" * UNI_DECOMP_POOL, length}} */\nstatic const uint32_t UNI_DECOMP[][3] = {{ /* {len(idx)} */\n")
        for i in range(0, len(idx), 5):
            f.write("    " + " ".join(f"{{0x{a:X}, {o}, {n}}}," for a, o, n in idx[i:i + 5]) + "\n")
        f.write("};\n\n")
        f.write(f"static const uint32_t UNI_DECOMP_POOL[] = {{ /* {len(pool)} */\n")
        for i in range(0, len(pool), 10):
            f.write("    " + " ".join(f"0x{c:X}," for c in pool[i:i + 10]) + "\n")
        f.write("};\n\n")
        ps = sorted(comp.items())
        f.write(f"/* primary composites (Hangul is algorithmic): {{first, second, composite}}, sorted */\n"
                f"static const uint32_t UNI_COMPOSE[][3] = {{ /* {len(ps)} */\n")
        for i in range(0, len(ps), 4):
            f.write("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, 0x{k:X}}}," for (a, b), k in ps[i:i + 4]) + "\n")
        f.write("};\n\n/* clang-format on */\n\n#endif\n")
    print(f"gen_unicode: wrote {path}")

# ---- verification against Hugging Face ----

def hf_digits():
    """The code points the Digits pre-tokenizer (individual_digits) isolates: Rust's char::is_numeric, at
    the Unicode version of the Rust that built `tokenizers`. Probed as "a" c "a" c ...: a piece of one
    character other than "a" is a digit."""
    from tokenizers import pre_tokenizers
    d = pre_tokenizers.Digits(individual_digits=True)
    out = set()
    for base in range(0, len(SCALARS), 50000):
        text = "".join("a" + chr(c) for c in SCALARS[base:base + 50000])
        out.update(ord(p) for p, _ in d.pre_tokenize_str(text) if len(p) == 1 and p != "a")
    return out

def digits_extra():
    digits = hf_digits()
    n = {c for c in SCALARS if is_n(c)}
    assert n <= digits, [hex(c) for c in sorted(n - digits)[:10]]
    return digits - n

def hf_class(pat):
    from tokenizers import pre_tokenizers, Regex
    sp = pre_tokenizers.Split(Regex(pat), "removed")
    out = set()
    for base in range(0, len(SCALARS), 50000):
        cps = SCALARS[base:base + 50000]
        kept = set()
        for p, _ in sp.pre_tokenize_str("".join(map(chr, cps))):
            kept.update(p)
        out.update(c for c in cps if chr(c) not in kept)
    return out

def verify():
    from tokenizers import normalizers
    bad = 0
    for name, pat, pred in (("L", r"\p{L}", is_l), ("N", r"\p{N}", is_n), ("\\s", r"\s", lambda c: c in WHITE_SPACE)):
        hf = hf_class(pat)
        mine = {c for c in SCALARS if pred(c)}
        diff = sorted(hf ^ mine)
        print(f"class {name}: {len(mine)} code points, {len(diff)} differ from tokenizers", [hex(c) for c in diff[:10]])
        bad += len(diff)
    d = hf_digits()
    mine_d = {c for c in SCALARS if is_n(c)} | digits_extra()
    diff = sorted(d ^ mine_d)
    print(f"class D (Digits): {len(mine_d)} code points, {len(diff)} differ from tokenizers", [hex(c) for c in diff[:10]])
    bad += len(diff)
    ccc, full, comp = norm_data()
    nfc = normalizers.NFC()
    cases = [chr(c) for c in SCALARS]
    cases += [chr(a) + chr(b) for (a, b) in comp]
    marks = sorted(ccc)
    rng = random.Random(1)
    for _ in range(200000):
        base = rng.choice("aeiouAEIOUnsczgkh" + "".join(chr(a) for (a, _) in rng.sample(sorted(comp), 3)))
        s = base + "".join(chr(rng.choice(marks)) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.3:
            s += chr(rng.choice([b for (_, b) in comp]))
        cases.append(s)
    for _ in range(20000):  # Hangul jamo and syllables
        cases.append("".join(chr(rng.choice([rng.randrange(0x1100, 0x1113), rng.randrange(0x1161, 0x1176),
                                            rng.randrange(0x11A8, 0x11C3), rng.randrange(0xAC00, 0xD7A4)]))
                             for _ in range(rng.randint(2, 5))))
    wrong = [s for s in cases if nfc.normalize_str(s) != nfc_model(s, ccc, full, comp)]
    print(f"nfc: {len(cases)} strings, {len(wrong)} differ from tokenizers", [ascii(s) for s in wrong[:5]])
    bad += len(wrong)
    return 1 if bad else 0

if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--verify":
        sys.exit(verify())
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    generate(sys.argv[1])
