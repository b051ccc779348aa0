"""Hugging Face `tokenizers` references for orcd's tokenizer (tests and bench/tokenizer.py).

  qwen(path)              the Qwen tokenizer.json (shared/data/qwen-tokenizer.json.gz)
  smollm(meta)            SmolLM2's tokenizer rebuilt from a GGUF's metadata (tok_gguf.read_metadata):
                          its vocabulary and merges, Digits(individual) then ByteLevel with the GPT-2 regex
                          (what SmolLM2's tokenizer.json and llama.cpp's "smollm" pre-tokenizer do), no
                          normalizer, control tokens as special added tokens
  llama_bpe(qwen_json)    the Qwen vocabulary with Llama 3's settings: its split regex (\\p{N}{1,3}), no
                          normalizer, ignore_merges
"""
import gzip
import json

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")


def qwen_json(path):
    return json.loads(gzip.open(path).read())


def qwen(path):
    return Tokenizer.from_str(json.dumps(qwen_json(path)))


def smollm(meta):
    toks, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    assert len(set(toks)) == len(toks)
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(toks)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(toks, types) if ty == 3])
    return tok


def llama_bpe(qwen_json_dict):
    j = json.loads(json.dumps(qwen_json_dict))
    j["normalizer"] = None
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = LLAMA3_SPLIT
    j["model"]["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(j))
