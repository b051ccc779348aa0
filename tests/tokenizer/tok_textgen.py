"""Random test text for the tokenizer: every kind of string a tokenizer gets wrong, from a seeded RNG.

Used by tests/python/test_tokenizer.py (comparison with Hugging Face `tokenizers`) and bench/tokenizer.py.
`strings(rng, n)` gives n strings cycling through the kinds below; `long_string(rng, size)` about `size`
UTF-8 bytes of them joined; `invalid_bytes(rng)` byte strings that are mostly not UTF-8.
"""
import random

WORDS = ("the of and to in is was he for it with as his on be at by had are but from or have an they which "
         "one you were her all she there would their we him been has when who will more no if out so said what "
         "up its about into than them can only other new some could time these two may then do first any my "
         "now such like our over man me even most made after also did many before must through back years "
         "where much your way well down should because each just those people Mr how too little state good very "
         "make world still own see men work long get here between both life being under never day same another "
         "know while last might us great old year off come since against go came right used take three "
         "HTTP JSON URL iPhone McDonald O'Neil naïve café façade résumé Zürich São Paulo Ærøskøbing").split()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'lL", "'D",
                "'ſ", "'x", "'", "''", "'1", "' s", "’s", "n't", "N'T"]
PUNCT = list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "—", "–", "«", "»", "“", "”", "‘", "’", "…", "·",
                                                   "¿", "¡", "§", "¶", "†", "‰", "€", "£", "¥", "©", "®", "™",
                                                   "→", "⇒", "∀", "∑", "√", "∞", "≠", "≤", "【", "】", "。", "、",
                                                   "，", "！", "？", "：", "；", "〜", "・"]
SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\t\n", " \t ",
          "\u00a0", "\u3000", "\u2028", "\u2029", "\u2003", "\u200a", "\u202f", "\u205f", "\u1680", "\u0085",
          "\u000b", "\u000c", "\u200b", "\ufeff", "\u001c"]
CODE = [
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
    "if __name__ == '__main__':\n    main()\n", "#include <stdio.h>\nint main(void) { return 0; }\n",
    "const x = {a: 1, 'b': [2, 3]};", "SELECT * FROM users WHERE id = 42;", "x+=1;y-=2;z*=3",
    "    \n    \n", "std::vector<int> v{1,2,3};", "fn main() -> Result<(), Box<dyn Error>> {}",
    "<div class=\"x\">&nbsp;</div>", "$ ls -la | grep '.py'", "a == b != c <= d >= e", "/* comment */ // line",
    "   indented\n\t\ttabbed\n", "x = [i**2 for i in range(10)]", "```python\nprint('hi')\n```",
    "0x1F 0b1010 1e-9 3.14159 -42 1_000_000", "lambda x: x@y", "\\n\\t\\\\", "{{ template }}", "<|im_sep|>",
]
CJK = ("你好世界我们今天天气很好中文分词测试人工智能机器学习深度网络日本語のテキストです漢字ひらがなカタカナ"
       "한국어텍스트입니다안녕하세요세계")
KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコ"
HANGUL_JAMO = [chr(c) for c in list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3))]
EMOJI = ["😀", "😂", "👍", "👍🏽", "❤️", "🇺🇸", "🇯🇵", "👨‍👩‍👧‍👦", "👩🏾‍💻", "🏳️‍🌈", "1️⃣", "#️⃣", "🤷‍♀️", "🧑‍🚀",
         "😶‍🌫️", "❤️‍🔥", "🫠", "🪿", "©️", "☺", "✌🏿", "🐻‍❄️", "\u200d", "\ufe0f", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
COMBINING = [chr(c) for c in list(range(0x300, 0x370)) + [0x483, 0x591, 0x5B0, 0x5BC, 0x5C1, 0x64B, 0x650, 0x670,
                                                            0x93C, 0x94D, 0x9BE, 0x9D7, 0xB3E, 0xB56, 0xB57, 0xBBE,
                                                            0xBD7, 0xCD5, 0xD3E, 0xE48, 0xF71, 0xF72, 0xF74, 0x1DC0,
                                                            0x1DF6, 0x1DFB, 0x20D0, 0x20E3, 0x302A, 0x3099, 0x309A,
                                                            0xFE20, 0x1D165, 0x1D16D, 0x11127, 0x1E944]]
DECOMPOSABLE = "aeiouAEIOUcnsyzgkhlrwxCNSYZGKHLRWXΑΕΗΙΟΥΩαεηιουωиеИЕуУ"
RTL = ["مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "שָׁלוֹם עוֹלָם", "עברית", "٠١٢٣٤٥٦٧٨٩", "۱۲۳", "فارسی",
       "\u200f", "\u200e", "\u202b", "\u202c", "ﷺ", "ﻻ"]
SCRIPTS = ["Привет мир", "Ελληνικά κείμενο", "ภาษาไทยง่ายๆ", "हिन्दी पाठ", "বাংলা", "ქართული", "Հայերեն",
           "ᚠᚢᚦᚨᚱᚲ", "ⴰⵣⵓⵍ", "𐌰𐌱𐌲", "Ꭰ Ꭱ Ꭲ", "ᠮᠣᠩᠭᠣᠯ", "ꦗꦮ", "𝕳𝖊𝖑𝖑𝖔", "ｆｕｌｌｗｉｄｔｈ", "Ⅻ ⅻ ↂ", "²³¹ ½ ¾",
           "①②③", "𝟘𝟙𝟚", "ǅungla", "ﬁ ﬂ ﬃ", "Ǆ ǈ", "İstanbul ı", "ß ẞ", "Å Å Å", "Ω Ω", "K K", "ĳ"]
DIGITS = "0123456789"
UNI_DIGITS = "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९০১২৩০１２３４５６７８９𝟎𝟏𝟐³²¹⁴½⅓ⅠⅡⅢ〇一二三"


def random_codepoint(rng: random.Random) -> str:
    """Any scalar value: uniform over the planes, biased toward the assigned parts of planes 0 to 3."""
    r = rng.random()
    if r < 0.35:
        c = rng.randrange(0x80, 0x10000)
    elif r < 0.55:
        c = rng.randrange(0x10000, 0x40000)
    elif r < 0.65:
        c = rng.randrange(0x40000, 0x110000)
    else:
        c = rng.choice([rng.randrange(0x80, 0x800), rng.randrange(0x1100, 0x3400), rng.randrange(0xA000, 0xFFFF),
                        rng.randrange(0x1F000, 0x1FB00), rng.randrange(0x10000, 0x10FFF),
                        rng.randrange(0x1D000, 0x1E900), rng.randrange(0x30000, 0x323B0),
                        rng.randrange(0x2E80, 0x2FFF), rng.randrange(0xE0000, 0xE0080)])
    if 0xD800 <= c < 0xE000:
        c = 0xFFFD
    return chr(c)


def _prose(rng):
    out = []
    for _ in range(rng.randint(1, 30)):
        w = rng.choice(WORDS)
        if rng.random() < 0.15:
            w = w.capitalize() if rng.random() < 0.7 else w.upper()
        if rng.random() < 0.1:
            w += rng.choice(CONTRACTIONS)
        out.append(w)
        if rng.random() < 0.15:
            out.append(rng.choice([",", ".", "!", "?", ";", ":", " -", "\n", ".\n\n", " (", ")", "\""]))
    return rng.choice([" ", " ", "", "  "]).join(out) if rng.random() < 0.2 else " ".join(out)


def _code(rng):
    return "".join(rng.choice(CODE) for _ in range(rng.randint(1, 5)))


def _spaces(rng):
    parts = []
    for _ in range(rng.randint(1, 12)):
        parts.append(rng.choice(SPACES) * rng.randint(1, 4))
        if rng.random() < 0.6:
            parts.append(rng.choice([rng.choice(WORDS), rng.choice(PUNCT), rng.choice(DIGITS), rng.choice(CJK),
                                     rng.choice(EMOJI), "'s", rng.choice(COMBINING)]))
    return "".join(parts)


def _digits(rng):
    parts = []
    for _ in range(rng.randint(1, 10)):
        k = rng.random()
        if k < 0.5:
            parts.append("".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 12))))
        elif k < 0.7:
            parts.append("".join(rng.choice(UNI_DIGITS) for _ in range(rng.randint(1, 6))))
        else:
            parts.append(rng.choice(["3.14", "1,000,000", "2024-11-24", "12:30", "+1 (555) 123-4567", "v1.2.3",
                                     "1e10", "50%", "$9.99", "#1", "x2", "H2O", "a1b2c3"]))
        parts.append(rng.choice(["", " ", "  ", ", ", "\n", "-", "a", "\t"]))
    return "".join(parts)


def _contractions(rng):
    return "".join(rng.choice([rng.choice(WORDS), rng.choice(CONTRACTIONS), " ", "'", rng.choice(CONTRACTIONS) +
                               rng.choice(["a", "x", " ", "1", "ſ", "s", "S", ""])]) for _ in range(rng.randint(1, 12)))


def _punct(rng):
    return "".join(rng.choice([rng.choice(PUNCT) * rng.randint(1, 5), " ", "\n", "\r\n", rng.choice(WORDS),
                               rng.choice(DIGITS), " " + rng.choice(PUNCT), rng.choice(PUNCT) + "\n"])
                   for _ in range(rng.randint(1, 15)))


def _cjk(rng):
    return "".join(rng.choice([rng.choice(CJK) * 1, "".join(rng.choice(CJK) for _ in range(rng.randint(1, 10))),
                               rng.choice(KANA), "".join(rng.choice(HANGUL_JAMO) for _ in range(rng.randint(1, 4))),
                               rng.choice(["。", "、", "！", " ", "\n", "（", "）"]), rng.choice(WORDS)])
                   for _ in range(rng.randint(1, 12)))


def _emoji(rng):
    return "".join(rng.choice([rng.choice(EMOJI), rng.choice(EMOJI) + rng.choice(EMOJI), " ", rng.choice(WORDS),
                               "\u200d", rng.choice(DIGITS) + "\ufe0f\u20e3"]) for _ in range(rng.randint(1, 10)))


def _combining(rng):
    parts = []
    for _ in range(rng.randint(1, 10)):
        parts.append(rng.choice(DECOMPOSABLE + " " + CJK[:5] + "ᄀ가"))
        parts.append("".join(rng.choice(COMBINING) for _ in range(rng.randint(0, 4))))
        if rng.random() < 0.2:
            parts.append(rng.choice([" ", "\n", rng.choice(WORDS)]))
    return "".join(parts)


def _rtl(rng):
    return "".join(rng.choice([rng.choice(RTL), " ", rng.choice(WORDS), rng.choice(DIGITS), rng.choice(PUNCT)])
                   for _ in range(rng.randint(1, 10)))


def _mixed(rng):
    return "".join(rng.choice([rng.choice(SCRIPTS), rng.choice(WORDS), rng.choice(RTL), rng.choice(CJK),
                               rng.choice(EMOJI), rng.choice(SPACES), rng.choice(PUNCT), rng.choice(COMBINING)])
                   for _ in range(rng.randint(1, 12)))


def _random_cps(rng):
    return "".join(random_codepoint(rng) if rng.random() < 0.7 else
                   rng.choice([" ", "a", "1", "\n", "'s", " x", "!", rng.choice(COMBINING)])
                   for _ in range(rng.randint(1, 24)))


KINDS = [_prose, _code, _spaces, _digits, _contractions, _punct, _cjk, _emoji, _combining, _rtl, _mixed,
         _random_cps, _random_cps]


def strings(rng: random.Random, n: int, avoid=()) -> list:
    """n strings, the kinds in turn, none containing any text in `avoid` (special tokens' texts)."""
    out = []
    while len(out) < n:
        s = KINDS[len(out) % len(KINDS)](rng)
        if not any(a in s for a in avoid):
            out.append(s)
    return out


def long_string(rng: random.Random, size: int, avoid=()) -> str:
    """About `size` UTF-8 bytes: the kinds joined, with long runs of one class (letters without a space,
    spaces, punctuation, digits, CJK) mixed in so that long pieces occur."""
    parts, n = [], 0
    while n < size:
        k = rng.random()
        if k < 0.003:  # about a tenth of the bytes
            s = rng.choice(["a", "é", "语", " ", "\n", "!", "1", "\t", "ab", "😀", "e\u0301"]) * rng.randint(100, 2000)
        else:
            s = KINDS[rng.randrange(len(KINDS))](rng)
            if any(a in s for a in avoid):
                continue
        parts.append(s)
        n += len(s.encode())
    return "".join(parts)


def invalid_bytes(rng: random.Random) -> bytes:
    """Mostly not UTF-8: random bytes, truncated and overlong sequences, surrogates, mixed with text."""
    parts = []
    for _ in range(rng.randint(1, 16)):
        k = rng.random()
        if k < 0.3:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))))
        elif k < 0.5:
            parts.append(rng.choice([b"\xf0\x9f\x98", b"\xe4\xb8", b"\xc3", b"\xc0\xaf", b"\xe0\x80\xaf",
                                     b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xff", b"\xfe",
                                     b"\x80", b"\xbf\xbf", b"\xf0\x9f", b"\xe2\x82"]))
        else:
            parts.append(rng.choice([_prose, _cjk, _emoji, _spaces, _combining])(rng).encode())
    return b"".join(parts)
