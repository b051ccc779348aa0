"""Chat prompts rendered by `orcd template` against the model's own tokenizer.chat_template rendered with
jinja2 (as transformers' apply_chat_template does: trim_blocks, lstrip_blocks, sandboxed), byte for byte,
for conversations of 1 to 6 turns with and without a system message: the two real models, and a Llama 3
template written here into a metadata-only GGUF. Contents are random strings (tests/tokenizer/tok_textgen.py;
seed printed, ORCD_TEST_SEED to repeat)."""
import os
import random
import sys
import time

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conftest import REPO, run_orcd

sys.path.insert(0, str(REPO / "tests" / "tokenizer"))
import tok_gguf  # noqa: E402
import tok_textgen  # noqa: E402

SEED = int(os.environ.get("ORCD_TEST_SEED", time.time_ns() % (1 << 32)))

# Meta's Llama 3 8B Instruct template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                 "a", "b"]


def setup_module(module):
    print(f"\nchat tests: ORCD_TEST_SEED={SEED}")


def jinja_render(template, messages, bos=""):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg):
        raise RuntimeError(msg)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token=bos,
                                            eos_token="")


def conversations(rng):
    """(messages) for 1..6 turns, with and without a system message first, three of each; now and then the
    roles do not alternate or a system message comes later."""
    out = []
    for turns in range(1, 7):
        for system in (False, True):
            for _ in range(3):
                msgs = [{"role": "system", "content": rng.choice(tok_textgen.strings(rng, 3))}] if system else []
                for i in range(turns):
                    role = ("user", "assistant")[i % 2] if rng.random() < 0.85 else rng.choice(
                        ["user", "assistant", "system"])
                    msgs.append({"role": role, "content": tok_textgen.strings(rng, 13)[rng.randrange(13)]})
                out.append(msgs)
    return out


def orcd_template(orcd_bin, model, msgs):
    args = []
    for m in msgs:
        args += [f"--{m['role']}", m["content"]]
    r = run_orcd(orcd_bin, "template", "-m", model, *args)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout


def check_model(orcd_bin, model, template, bos, tag):
    rng = random.Random(f"{SEED}:{tag}")
    bad = []
    convs = conversations(rng)
    for msgs in convs:
        got = orcd_template(orcd_bin, model, msgs)
        want = jinja_render(template, msgs, bos).encode()
        if got != want:
            bad.append((msgs, got, want))
    assert not bad, (f"{tag}: {len(bad)} of {len(convs)} conversations differ from jinja2 (ORCD_TEST_SEED={SEED}); "
                     f"first {bad[0][0]!r}\n  orcd  {bad[0][1]!r}\n  jinja {bad[0][2]!r}")


def test_qwen_template_matches_jinja(orcd_bin, default_model):
    meta = tok_gguf.read_metadata(default_model)
    check_model(orcd_bin, default_model, meta["tokenizer.chat_template"], "", "qwen")


def test_smollm_template_matches_jinja(orcd_bin, llama_model):
    meta = tok_gguf.read_metadata(llama_model)
    check_model(orcd_bin, llama_model, meta["tokenizer.chat_template"], "", "smollm")


@pytest.fixture
def llama3_model(tmp_path):
    p = tmp_path / "llama3-template.gguf"
    tok_gguf.write_metadata(p, [("general.architecture", "str", "llama"),
                                 ("tokenizer.ggml.model", "str", "gpt2"),
                                 ("tokenizer.ggml.tokens", "arr:str", LLAMA3_TOKENS),
                                 ("tokenizer.ggml.bos_token_id", "u32", 0),
                                 ("tokenizer.chat_template", "str", LLAMA3_TEMPLATE)])
    return p


def test_llama3_template_matches_jinja(orcd_bin, llama3_model):
    check_model(orcd_bin, llama3_model, LLAMA3_TEMPLATE, "<|begin_of_text|>", "llama3")


def test_default_system_prompt_comes_from_the_template(orcd_bin, default_model, llama_model, tmp_path):
    r = run_orcd(orcd_bin, "template", "-m", default_model, "--family")
    assert r.stdout == (b"family: chatml\n"
                        b"default system prompt: You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n")
    r = run_orcd(orcd_bin, "template", "-m", llama_model, "--family")
    assert b"named SmolLM, trained by Hugging Face\n" in r.stdout
    # another default in the same template shape is found the same way: nothing is keyed on the model's name
    meta = tok_gguf.read_metadata(default_model)
    tmpl = meta["tokenizer.chat_template"].replace("You are Qwen, created by Alibaba Cloud. You are a helpful "
                                                   "assistant.", "Sei un \\'assistente\\'.")
    p = tmp_path / "other.gguf"
    tok_gguf.write_metadata(p, [("tokenizer.chat_template", "str", tmpl)])
    msgs = [{"role": "user", "content": "ciao"}]
    assert orcd_template(orcd_bin, p, msgs) == jinja_render(tmpl, msgs).encode()
    assert b"<|im_start|>system\nSei un 'assistente'.<|im_end|>\n" in orcd_template(orcd_bin, p, msgs)


def test_unknown_template_warns_once_and_renders_chatml(orcd_bin, tmp_path):
    p = tmp_path / "unknown.gguf"
    tok_gguf.write_metadata(p, [("tokenizer.chat_template", "str", "{% for m in messages %}{{ m.content }}{% endfor %}")])
    r = run_orcd(orcd_bin, "template", "-m", p, "--user", "a", "--assistant", "b", "--user", "c")
    assert r.returncode == 0
    assert r.stdout == (b"<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n"
                        b"<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n")
    assert r.stderr.count(b"not recognised") == 1, r.stderr


@pytest.mark.parametrize("args,message", [
    (["--user", "x"], b"no model"),
    (["-m", "{model}"], b"no messages"),
    (["-m", "{model}", "--tool", "x"], b"--tool"),
    (["-m", "/nonexistent.gguf", "--user", "x"], b"/nonexistent.gguf"),
])
def test_template_cli_errors(orcd_bin, default_model, args, message):
    r = run_orcd(orcd_bin, "template", *[a.replace("{model}", str(default_model)) for a in args])
    assert r.returncode == 1 and message in r.stderr, r.stderr
