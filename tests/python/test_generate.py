"""`orcd generate` end to end on the default real model: the haiku test, determinism, stop strings, and bad
input (clear error, exit 1, no crash)."""
import datetime
import os
import re

import pytest

from conftest import run_orcd

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}


def number_word(n: int) -> str:
    """0..59 in English words, hyphenated as in "twenty-one"."""
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + ("-" + ONES[ones] if ones else "")


def test_number_words():
    assert [number_word(n) for n in (0, 7, 19, 20, 21, 35, 40, 59)] == \
        ["zero", "seven", "nineteen", "twenty", "twenty-one", "thirty-five", "forty", "fifty-nine"]


def generate(orcd_bin, model, *args, timeout=300):
    r = run_orcd(orcd_bin, "generate", "-m", model, *args, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8"), r.stderr.decode("utf-8", "replace")


def haiku(orcd_bin, model, minute: int, seed: int):
    word = number_word(minute)
    prompt = (f'Write a haiku (three short lines) that includes the word "{word}", spelled out in letters. '
              f'Start the first line with "{word.capitalize()}". Reply with the haiku only.')
    rc, out, err = generate(orcd_bin, model, "--chat", "-p", prompt, "--temp", "0.7", "--seed", str(seed),
                            "-n", "64")
    assert rc == 0, err
    found = re.search(re.escape(word).replace("\\-", "[- ]"), out, re.IGNORECASE) is not None
    return found, word, out


@pytest.mark.skipif(os.environ.get("ORCD_SAN") == "1",
                    reason="model quality, not memory safety: runs in the normal pass (one sampled haiku per CI run)")
def test_haiku(orcd_bin, default_model):
    """The proof of life: a haiku that contains the current UTC minute as a word, sampled at 0.7 with a seed
    from the clock."""
    now = datetime.datetime.now(datetime.timezone.utc)
    seed = int(now.timestamp() * 1e6) % 2**31
    found, word, out = haiku(orcd_bin, default_model, now.minute, seed)
    assert found, f"seed {seed}: expected the word {word!r} in:\n{out}"


@pytest.mark.skipif(not os.environ.get("ORCD_HAIKU_RUNS"), reason="pass-rate measurement: set ORCD_HAIKU_RUNS=N")
def test_haiku_pass_rate(orcd_bin, default_model):
    runs = int(os.environ["ORCD_HAIKU_RUNS"])
    passed = 0
    for k in range(runs):
        found, word, out = haiku(orcd_bin, default_model, (k * 7) % 60, 1000 + k)
        passed += found
        print(f"run {k}: {word!r} {'found' if found else 'MISSING'}: {out.strip()!r}")
    print(f"haiku pass rate: {passed}/{runs}")
    assert passed > 0


def test_greedy_is_deterministic_and_stops(orcd_bin, default_model):
    args = ("--chat", "-p", "Count from one to twenty, separated by commas.", "--temp", "0", "-n", "40")
    rc1, out1, err1 = generate(orcd_bin, default_model, *args)
    rc2, out2, _ = generate(orcd_bin, default_model, *args)
    assert rc1 == 0 and rc2 == 0, err1
    assert out1 == out2
    assert "one" in out1.lower() or "1" in out1
    # the same request with a stop string: the output ends right before it, and it never appears
    rc3, out3, err3 = generate(orcd_bin, default_model, *args, "--stop", "5")
    assert rc3 == 0, err3
    assert "5" not in out3
    assert out1.startswith(out3.rstrip("\n"))
    assert "stop: stop" in err3


def test_same_seed_same_tokens(orcd_bin, default_model):
    args = ("-p", "Once upon a time", "--temp", "1.0", "--seed", "1234", "-n", "24")
    a = generate(orcd_bin, default_model, *args)
    b = generate(orcd_bin, default_model, *args)
    assert a[0] == 0 and a[1] == b[1]


BAD = [
    (["-m", "/nonexistent.gguf", "-p", "hi"], "No such file"),
    (["-p", "hi"], "expected -m MODEL"),
    (["-m", "{model}"], "one of -p PROMPT, -f FILE or --ids IDS"),
    (["-m", "{model}", "-p", ""], "the prompt is empty"),
    (["-m", "{model}", "-p", "hi", "-n", "0"], "-n: expected"),
    (["-m", "{model}", "-p", "hi", "-n", "-3"], "-n: expected"),
    (["-m", "{model}", "-p", "hi", "-n", "lots"], "-n: expected"),
    (["-m", "{model}", "-p", "hi", "--temp", "-1"], "temperature: expected 0..2"),
    (["-m", "{model}", "-p", "hi", "--temp", "nan"], "--temp: expected a number"),
    (["-m", "{model}", "-p", "hi", "--top-p", "0"], "top_p"),
    (["-m", "{model}", "-p", "hi", "--top-p", "1.5"], "top_p"),
    (["-m", "{model}", "-p", "hi", "--min-p", "2"], "min_p"),
    (["-m", "{model}", "-p", "hi", "--top-k", "-5"], "--top-k: expected an integer"),
    (["-m", "{model}", "-p", "hi", "--repeat-penalty", "0"], "repetition_penalty"),
    (["-m", "{model}", "-p", "hi", "--seed", "x"], "--seed: expected an integer"),
    (["-m", "{model}", "-p", "word " * 300, "--ctx", "64"], "context exceeded"),
    (["-m", "{model}", "-p", "hi", "--bogus"], "usage"),
]


@pytest.mark.parametrize("args,expect", BAD, ids=[e for _, e in BAD])
def test_bad_input(orcd_bin, default_model, args, expect):
    args = [a.replace("{model}", str(default_model)) for a in args]
    r = run_orcd(orcd_bin, "generate", *args, timeout=120)
    assert r.returncode == 1, r.stderr
    assert expect in r.stderr.decode("utf-8", "replace")


def test_invalid_model_file(orcd_bin, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    r = run_orcd(orcd_bin, "generate", "-m", bad, "-p", "hi")
    assert r.returncode == 1 and b"too large" in r.stderr
