"""The tokenizer against Hugging Face `tokenizers`, id for id, on generated strings (tests/tokenizer/tok_textgen.py),
each set compared in one orcd process (`orcd tokenize --batch0`).

References:
  * qwen2 (the default model): the Qwen tokenizer.json in shared/data (same 151,643 ordinary tokens and
    merges as Qwen2.5; its special tokens are Qwen3's, of which Qwen2.5 has the first 22).
  * smollm (the Llama-architecture model): a tokenizer built here from the GGUF's own vocabulary and merges
    with SmolLM2's pre-tokenizer (Digits(individual) then ByteLevel with the GPT-2 regex), no normalizer.
  * llama-bpe: the Qwen vocabulary in a GGUF written here with pre "llama-bpe", against the Qwen
    tokenizer.json rewritten to Llama 3's settings (its split regex with \\p{N}{1,3}, no normalizer,
    ignore_merges).

Strings are new each run: the seed comes from the clock unless ORCD_TEST_SEED is set, and is printed (and
named in every failure).
"""
import json
import os
import random
import sys
import time
import unicodedata

import pytest

from conftest import REPO, SHARED_DATA, run_orcd

sys.path.insert(0, str(REPO / "tests" / "tokenizer"))
import tok_gguf  # noqa: E402
import tok_reference  # noqa: E402
import tok_textgen  # noqa: E402

SEED = int(os.environ.get("ORCD_TEST_SEED", time.time_ns() % (1 << 32)))
N_QWEN = int(os.environ.get("ORCD_TOK_STRINGS", "10000"))
QWEN_JSON = SHARED_DATA / "qwen-tokenizer.json.gz"


def rng(tag: str) -> random.Random:
    return random.Random(f"{SEED}:{tag}")


def setup_module(module):
    print(f"\ntokenizer tests: ORCD_TEST_SEED={SEED}")


# ---- helpers ----

def orcd_batch(orcd_bin, model, texts, *flags) -> bytes:
    data = b"".join((t.encode() if isinstance(t, str) else t) + b"\0" for t in texts)
    r = run_orcd(orcd_bin, "tokenize", "-m", model, "--batch0", *flags, input=data, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    return r.stdout


def orcd_ids(orcd_bin, model, texts, *flags):
    lines = orcd_batch(orcd_bin, model, texts, "--ids", *flags).decode().split("\n")
    assert lines[-1] == "" and len(lines) == len(texts) + 1, f"{len(lines) - 1} output lines for {len(texts)} texts"
    return [[int(x) for x in line.split()] for line in lines[:-1]]


def orcd_records(out: bytes, n):
    recs = out.split(b"\0")
    assert recs[-1] == b"" and len(recs) == n + 1, f"{len(recs) - 1} records for {n} texts"
    return recs[:-1]


def show(s, limit=160):
    r = repr(s)
    return r if len(r) <= limit else r[:limit] + f"... ({len(s)} chars)"


def assert_same_ids(texts, got, want, ref, what):
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    if not bad:
        return
    lines = [f"{what}: {len(bad)} of {len(texts)} strings give other ids than {ref} (ORCD_TEST_SEED={SEED})"]
    for t, g, w in bad[:5]:
        i = next((k for k, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
        lines.append(f"  text {show(t)}\n    first difference at token {i} of {len(g)} (orcd) / {len(w)} ({ref})"
                     f"\n    orcd {g[max(0, i - 8):i + 12]}\n    {ref:4} {w[max(0, i - 8):i + 12]}")
    pytest.fail("\n".join(lines))


def hf_ids(tok, texts):
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


# ---- references ----

@pytest.fixture(scope="session")
def qwen_json():
    if not QWEN_JSON.exists():
        pytest.fail(f"{QWEN_JSON} missing: shared/ must sit beside the repository")
    return tok_reference.qwen_json(QWEN_JSON)


@pytest.fixture(scope="session")
def qwen_hf(qwen_json):
    return tok_reference.Tokenizer.from_str(json.dumps(qwen_json))


@pytest.fixture(scope="session")
def qwen_specials(qwen_hf):
    return [t.content for t in qwen_hf.get_added_tokens_decoder().values()]


@pytest.fixture(scope="session")
def smol_meta(llama_model):
    return tok_gguf.read_metadata(llama_model)


@pytest.fixture(scope="session")
def smol_hf(smol_meta):
    return tok_reference.smollm(smol_meta)


@pytest.fixture(scope="session")
def llama_bpe(tmp_path_factory, default_model, qwen_json):
    """(GGUF path, HF tokenizer): the Qwen vocabulary with Llama 3's pre-tokenizer."""
    meta = tok_gguf.read_metadata(default_model)
    path = tmp_path_factory.mktemp("llama_bpe") / "llama-bpe.gguf"
    tok_gguf.write_metadata(path, [
        ("general.architecture", "str", "llama"),
        ("tokenizer.ggml.model", "str", "gpt2"),
        ("tokenizer.ggml.pre", "str", "llama-bpe"),
        ("tokenizer.ggml.tokens", "arr:str", meta["tokenizer.ggml.tokens"]),
        ("tokenizer.ggml.token_type", "arr:i32", meta["tokenizer.ggml.token_type"]),
        ("tokenizer.ggml.merges", "arr:str", meta["tokenizer.ggml.merges"]),
        ("tokenizer.ggml.bos_token_id", "u32", 151643),
        ("tokenizer.ggml.eos_token_id", "u32", 151645),
        ("tokenizer.ggml.add_bos_token", "bool", True),
    ])
    return path, tok_reference.llama_bpe(qwen_json)


# ---- id for id against Hugging Face ----

def test_qwen2_matches_hf(orcd_bin, default_model, qwen_hf, qwen_specials):
    texts = tok_textgen.strings(rng("qwen"), N_QWEN, avoid=qwen_specials)
    r = rng("qwen-long")
    texts += [tok_textgen.long_string(r, 1 << 20, avoid=qwen_specials) for _ in range(2)]
    got = orcd_ids(orcd_bin, default_model, texts)
    assert_same_ids(texts, got, hf_ids(qwen_hf, texts), "hf", "qwen2")
    assert sum(len(t.encode()) for t in texts) > 2 << 20


def test_qwen2_special_tokens_match_hf(orcd_bin, default_model, qwen_hf, qwen_specials):
    """With --special, the 22 Qwen2.5 special tokens inside text are single tokens, as HF makes them."""
    specials = qwen_specials[:22]
    assert specials[0] == "<|endoftext|>" and specials[21] == "<|file_sep|>"
    r = rng("qwen-special")
    base = tok_textgen.strings(r, 1500, avoid=qwen_specials)
    texts = []
    for t in base:
        parts = [t[i:i + r.randint(1, 20)] for i in range(0, len(t), 20)] or [""]
        texts.append("".join(p + (r.choice(specials) if r.random() < 0.5 else "") for p in parts))
    texts += ["<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
              "<|im_start|><|im_start|>", "<|im_end|", "<|im_start", "<<|im_end|>>", "<tool_call>x</tool_call>"]
    got = orcd_ids(orcd_bin, default_model, texts, "--special")
    assert_same_ids(texts, got, hf_ids(qwen_hf, texts), "hf", "qwen2 --special")


def test_smollm_digits_newer_than_oniguruma(orcd_bin, llama_model, smol_hf):
    """SmolLM's Digits pre-tokenizer uses Rust's is_numeric, newer than the regex's \\p{N}: U+11DE0..9 and
    U+16FF4..6 are digits to it (found by a CI seed: U+11DE3 before 's), alone, in runs, after spaces."""
    texts = ["\U00011de3's", "x\U00011de0\U00011de9y", "a  \U00016ff4 b", "\u2603\U00016ff6'", "1\U00011de5 2",
             "\u0378's"]  # the last: unassigned everywhere, "other" for both
    assert_same_ids(texts, orcd_ids(orcd_bin, llama_model, texts), hf_ids(smol_hf, texts), "hf", "smollm digits")


def test_smollm_matches_hf(orcd_bin, llama_model, smol_hf, smol_meta):
    specials = [t for t, ty in zip(smol_meta["tokenizer.ggml.tokens"], smol_meta["tokenizer.ggml.token_type"]) if ty == 3]
    texts = tok_textgen.strings(rng("smol"), 5000, avoid=specials)
    texts.append(tok_textgen.long_string(rng("smol-long"), 1 << 20, avoid=specials))
    got = orcd_ids(orcd_bin, llama_model, texts)
    assert_same_ids(texts, got, hf_ids(smol_hf, texts), "hf", "smollm")
    spec = ["<|im_start|>user\nHi 123<|im_end|>\n", "<|endoftext|><file_sep>x<jupyter_code>1"]
    assert_same_ids(spec, orcd_ids(orcd_bin, llama_model, spec, "--special"), hf_ids(smol_hf, spec), "hf",
                    "smollm --special")


def test_llama_bpe_matches_hf(orcd_bin, llama_bpe, qwen_specials):
    path, hf = llama_bpe
    texts = tok_textgen.strings(rng("llama3"), 3000, avoid=qwen_specials)
    texts.append(tok_textgen.long_string(rng("llama3-long"), 300_000, avoid=qwen_specials))
    texts += ["12345678", "1 22 333 4444 55555", "x1234y", "٣٤٥٦٧", "Hello"]
    assert_same_ids(texts, orcd_ids(orcd_bin, path, texts), hf_ids(hf, texts), "hf", "llama-bpe")


def test_llama_bpe_adds_bos_once(orcd_bin, llama_bpe):
    path, _ = llama_bpe
    plain, special = orcd_ids(orcd_bin, path, ["hi", "<|endoftext|>hi"], "--bos", "--special")
    assert plain[0] == 151643 and plain[1:] == orcd_ids(orcd_bin, path, ["hi"])[0]
    assert special[0] == 151643 and special.count(151643) == 1, special


def quote(b: bytes) -> str:
    """The quoting of `orcd tokenize --pieces/--split`."""
    out, i = ['"'], 0
    while i < len(b):
        c = b[i]
        if c >= 0x80:
            for n in (4, 3, 2):
                try:
                    ch = b[i:i + n].decode("utf-8")
                except UnicodeDecodeError:
                    continue
                if len(ch) == 1:
                    out.append(ch)
                    i += n
                    break
            else:
                out.append("\\x%02x" % c)
                i += 1
            continue
        out.append({0x22: '\\"', 0x5C: "\\\\", 0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}.get(
            c, chr(c) if 0x20 <= c < 0x7F else "\\x%02x" % c))
        i += 1
    return "".join(out + ['"'])


def test_split_classes_match_hf(orcd_bin, default_model, qwen_hf):
    """The pre-tokenizer's pieces (--split --raw: no NFC) equal the HF regex's for random code points in
    contexts that tell letters, numbers, whitespace and the rest apart."""
    r = rng("classes")
    cps = [tok_textgen.random_codepoint(r) for _ in range(20000)]
    texts = ["".join(f"a{c}a!{c}!x{c}{c}x {c}1\t{c} " for c in cps[i:i + 20]) for i in range(0, len(cps), 20)]
    lines = orcd_batch(orcd_bin, default_model, texts, "--split", "--raw").decode().split("\n")[:-1]
    byte_of = {v: k for k, v in _bytes_to_unicode().items()}
    pt = qwen_hf.pre_tokenizer
    want = [" ".join(quote(bytes(byte_of[ch] for ch in p)) for p, _ in pt.pre_tokenize_str(t)) for t in texts]
    bad = [(t, g, w) for t, g, w in zip(texts, lines, want) if g != w]
    assert not bad, (f"{len(bad)} of {len(texts)} splits differ (ORCD_TEST_SEED={SEED}); first: {show(bad[0][0])}\n"
                     f"  orcd {bad[0][1][:400]}\n  hf   {bad[0][2][:400]}")


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# ---- decoding ----

def test_roundtrip_and_stream(orcd_bin, default_model, llama_model, qwen_hf, qwen_specials, smol_meta):
    """decode(encode(s)) gives s back: for qwen2, which normalizes, NFC(s) as HF's normalizer makes it
    (and s itself with --raw); for SmolLM2, s less the bytes its vocabulary has no token for (F1, F2 and a
    few controls: HF drops them too). The streaming decoder fed token by token gives the same text."""
    texts = tok_textgen.strings(rng("roundtrip"), 3000, avoid=qwen_specials)
    texts.append(tok_textgen.long_string(rng("roundtrip-long"), 200_000, avoid=qwen_specials))
    table = _bytes_to_unicode()
    smol_vocab = set(smol_meta["tokenizer.ggml.tokens"])
    smol_missing = {b for b in range(256) if table[b] not in smol_vocab}
    cases = (
        (default_model, [], [qwen_hf.normalizer.normalize_str(t).encode() for t in texts]),
        (default_model, ["--raw"], [t.encode() for t in texts]),
        (llama_model, [], [bytes(b for b in t.encode() if b not in smol_missing) for t in texts]),
    )
    for model, flags, want in cases:
        for mode in ("--roundtrip", "--stream"):
            got = orcd_records(orcd_batch(orcd_bin, model, texts, mode, *flags), len(texts))
            exp = want if mode == "--roundtrip" else [w.decode("utf-8", "replace").encode() for w in want]
            bad = [(t, g, w) for t, g, w in zip(texts, got, exp) if g != w]
            assert not bad, (f"{model.name} {mode} {flags}: {len(bad)} of {len(texts)} differ (seed {SEED}); first "
                             f"{show(bad[0][0])}\n  got  {show(bad[0][1])}\n  want {show(bad[0][2])}")


def test_invalid_utf8(orcd_bin, default_model, llama_model):
    """Random bytes: no crash; --raw round trip gives the bytes back exactly; the stream is valid UTF-8
    equal to Python's decode(errors="replace") (U+FFFD per maximal invalid subpart)."""
    r = rng("invalid")
    texts = [tok_textgen.invalid_bytes(r).replace(b"\0", b"\1") for _ in range(2000)]
    for model in (default_model, llama_model):
        for flags in ([], ["--special"]):
            orcd_ids(orcd_bin, model, texts, *flags)
            orcd_batch(orcd_bin, model, texts, "--split", *flags)
    back = orcd_records(orcd_batch(orcd_bin, default_model, texts, "--roundtrip", "--raw"), len(texts))
    bad = [t for t, b in zip(texts, back) if b != t]
    assert not bad, f"{len(bad)} byte strings do not round-trip (seed {SEED}): {bad[0]!r}"
    stream = orcd_records(orcd_batch(orcd_bin, default_model, texts, "--stream", "--raw"), len(texts))
    bad = [t for t, s in zip(texts, stream) if s != t.decode("utf-8", "replace").encode()]
    assert not bad, f"{len(bad)} streams differ from decode('replace') (seed {SEED}): {bad[0]!r}"


# ---- the command line ----

def test_cli_text_is_taken_byte_for_byte(orcd_bin, default_model, qwen_hf):
    for text in ["Hello world", "a\n", "\n\n", "  x  ", "é"]:
        r = run_orcd(orcd_bin, "tokenize", "-m", default_model, "--ids", "-", input=text.encode())
        assert r.returncode == 0, r.stderr
        assert [int(x) for x in r.stdout.split()] == qwen_hf.encode(text, add_special_tokens=False).ids, text
    r = run_orcd(orcd_bin, "tokenize", "-m", default_model, "--ids", "Hello world")
    assert r.stdout == b"9707 1879\n"
    r = run_orcd(orcd_bin, "tokenize", "-m", default_model, "--pieces", "Hi there\n")
    assert r.stdout == b'"Hi" " there" "\\n"\n'
    r = run_orcd(orcd_bin, "tokenize", "-m", default_model, "Hi")
    assert r.returncode == 0 and b"13048" in r.stdout and b'"Hi"' in r.stdout


def test_cli_special_only_when_asked(orcd_bin, default_model):
    text = "<|im_start|>user\nhi<|im_end|>"
    plain = orcd_ids(orcd_bin, default_model, [text])[0]
    special = orcd_ids(orcd_bin, default_model, [text], "--special")[0]
    assert 151644 not in plain and 151645 not in plain and len(plain) > 10
    assert special[0] == 151644 and special[-1] == 151645 and len(special) == 5, special


def test_cli_batch_handles_empty_and_unterminated_records(orcd_bin, default_model):
    r = run_orcd(orcd_bin, "tokenize", "-m", default_model, "--batch0", "--ids", input=b"a\0\0b c")
    assert r.returncode == 0 and r.stdout == b"64\n\n65 272\n", r.stdout
    r = run_orcd(orcd_bin, "tokenize", "-m", default_model, "--batch0", "--ids", "--bench", input=b"")
    assert r.returncode == 0 and r.stdout == b"" and b"0 records" in r.stderr


@pytest.mark.parametrize("args,message", [
    ([], b"no model"),
    (["-m", "{model}"], b"no text"),
    (["-m", "/nonexistent.gguf", "x"], b"/nonexistent.gguf"),
    (["-m", "{model}", "--frobnicate", "x"], b"--frobnicate"),
])
def test_cli_errors(orcd_bin, default_model, args, message):
    r = run_orcd(orcd_bin, "tokenize", *[a.replace("{model}", str(default_model)) for a in args])
    assert r.returncode == 1 and message in r.stderr, r.stderr


def test_cli_unknown_pre_tokenizer_is_a_load_error(orcd_bin, tmp_path):
    base = [("tokenizer.ggml.model", "str", "gpt2"), ("tokenizer.ggml.tokens", "arr:str", ["a", "b", "ab"]),
            ("tokenizer.ggml.merges", "arr:str", ["a b"])]
    for pre, msg in ((("tokenizer.ggml.pre", "str", "deepseek-llm"),), b'found "deepseek-llm"'), ((), b"no such key"):
        p = tmp_path / "t.gguf"
        tok_gguf.write_metadata(p, base + list(pre))
        r = run_orcd(orcd_bin, "tokenize", "-m", p, "ab")
        assert r.returncode == 1 and b"tokenizer.ggml.pre" in r.stderr and msg in r.stderr, r.stderr
    tok_gguf.write_metadata(p, [("tokenizer.ggml.model", "str", "llama")] + base[1:])
    r = run_orcd(orcd_bin, "tokenize", "-m", p, "ab")
    assert r.returncode == 1 and b'expected "gpt2"' in r.stderr and b'"llama"' in r.stderr, r.stderr
