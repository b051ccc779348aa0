/*
 * tokenizer: byte-level BPE from GGUF metadata. Loading copies the vocabulary into two arenas (stored
 * text, decoded bytes) and builds two hash tables (text -> id, (left id, right id) -> merge). Encoding
 * is special-token partition -> NFC (qwen2) -> hand-written pre-tokenizer -> BPE on ids, with scratch
 * memory per call and nothing shared but the immutable tables.
 *
 * Not here: regex engines (each supported pattern is a small scanner below, equivalent to the regex as
 * Oniguruma runs it: leftmost alternative first, greedy, with the one backtracking case written out),
 * Unicode data (generated into tokenizer/unicode_tables.h by tests/tokenizer/gen_unicode.py).
 */
#define _GNU_SOURCE /* memmem */
#include "tokenizer.h"

#include "log.h"
#include "tokenizer/unicode_tables.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------------------------- */
/* pre-tokenizer types */

typedef enum PreKind {
    PRE_QWEN2,  /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
                   \s*[\r\n]+|\s+(?!\S)|\s+ */
    PRE_LLAMA3, /* the same with \p{N}{1,3} */
    PRE_GPT2,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    PRE_SMOLLM, /* every \p{N} alone (Digits, individual), then the GPT-2 pattern between them */
} PreKind;

typedef struct PreType {
    const char *name; /* tokenizer.ggml.pre */
    PreKind kind;
    bool nfc;           /* the tokenizer.json has an NFC normalizer */
    bool ignore_merges; /* a piece that is a whole token is that token (Llama 3's tokenizer.json) */
} PreType;

static const PreType PRE_TYPES[] = {
    {"qwen2", PRE_QWEN2, true, false},      {"llama-bpe", PRE_LLAMA3, false, true},
    {"llama3", PRE_LLAMA3, false, true},    {"llama-v3", PRE_LLAMA3, false, true},
    {"smollm", PRE_SMOLLM, false, false},   {"gpt2", PRE_GPT2, false, false},
};

/* Texts of control/user-defined tokens that end a generation (llama.cpp's list, plus the FIM pad,
 * repository and file separators, which a chat model emits only when it has left the conversation). */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>",    "<|im_end|>",  "<|end|>",       "<|return|>",    "<|call|>",
    "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",  "<EOT>",         "_<EOT>",
    "<|end_of_text|>", "<end_of_utterance>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    "<fim_pad>",     "<reponame>",  "<file_sep>",
};

/* ---------------------------------------------------------------------------------------------------- */
/* the tokenizer */

typedef struct MergeSlot {
    uint32_t a, b; /* left and right token ids; a == UINT32_MAX: empty slot */
    uint32_t rank; /* index in tokenizer.ggml.merges: lower merges first */
    int32_t id;    /* the merged token */
} MergeSlot;

struct Tokenizer {
    const PreType *pre;
    int32_t n_vocab;
    char *text;          /* arena: every token's stored text */
    size_t *text_off;    /* (n_vocab + 1,) token i is text[text_off[i] .. text_off[i+1]) */
    char *piece;         /* arena: every token's bytes (stored text through the byte table) */
    size_t *piece_off;   /* (n_vocab + 1,) */
    uint8_t *type;       /* (n_vocab,) TokenType */
    uint8_t *eog;        /* (n_vocab,) 1 for end-of-generation tokens */
    uint8_t *shadowed;   /* (n_vocab,) while loading: 1 if an earlier token has the same text */
    int32_t *vocab_tab;  /* open addressing, stored text -> id, -1 empty */
    uint64_t vocab_mask;
    MergeSlot *merge_tab;
    uint64_t merge_mask;
    int merge_bits;
    int32_t byte_id[256]; /* byte -> the token of its one-character text, -1 if the vocabulary lacks it */
    int32_t *special;     /* control and user-defined ids, sorted by (first byte, length descending) */
    uint32_t special_at[257]; /* special[special_at[b] .. special_at[b+1]) start with byte b */
    size_t n_special;
    int32_t bos, eos;
    bool add_bos;
    size_t max_piece;
};

/* ---------------------------------------------------------------------------------------------------- */
/* Unicode: classes (two-stage table built once from the generated ranges), UTF-8, NFC */

enum { CL_L = 1, CL_N = 2, CL_S = 4, CL_NFC = 8 }; /* "other": none of L, N, S */
#define UTF8_INVALID 0xFFFFFFFFu
#define INVALID_BASE 0x110000u /* NFC buffers hold an invalid byte b as INVALID_BASE + b */

static uint16_t uni_stage1[0x1100]; /* code point >> 8 -> block */
static uint8_t *uni_blocks;          /* (n_blocks, 256) class bits */
static uint8_t ascii_class[128];
static pthread_once_t uni_once = PTHREAD_ONCE_INIT;
static bool uni_ok;

static void uni_fill(uint8_t *flat, const uint32_t (*r)[2], size_t n, uint8_t bit) {
    for (size_t i = 0; i < n; i++)
        for (uint32_t c = r[i][0]; c <= r[i][1]; c++) flat[c] |= bit;
}

static void uni_init(void) {
    uint8_t *flat = calloc(0x110000, 1);
    if (!flat) return;
    uni_fill(flat, UNI_LETTER, NELEM(UNI_LETTER), CL_L);
    uni_fill(flat, UNI_NUMBER, NELEM(UNI_NUMBER), CL_N);
    uni_fill(flat, UNI_SPACE, NELEM(UNI_SPACE), CL_S);
    uni_fill(flat, UNI_NFC_CHECK, NELEM(UNI_NFC_CHECK), CL_NFC);
    /* blocks 0..15: uniform blocks of each class value, then one per non-uniform 256-block */
    size_t n_blocks = 16, mixed = 0;
    for (size_t b = 0; b < 0x1100; b++) {
        const uint8_t *p = flat + b * 256;
        for (size_t i = 1; i < 256; i++)
            if (p[i] != p[0]) {
                mixed++;
                break;
            }
    }
    uni_blocks = malloc((n_blocks + mixed) * 256);
    if (!uni_blocks) {
        free(flat);
        return;
    }
    for (size_t v = 0; v < 16; v++) memset(uni_blocks + v * 256, (int)v, 256);
    for (size_t b = 0; b < 0x1100; b++) {
        const uint8_t *p = flat + b * 256;
        bool uniform = true;
        for (size_t i = 1; i < 256 && uniform; i++) uniform = p[i] == p[0];
        if (uniform) uni_stage1[b] = p[0];
        else {
            memcpy(uni_blocks + n_blocks * 256, p, 256);
            uni_stage1[b] = (uint16_t)n_blocks++;
        }
    }
    memcpy(ascii_class, flat, 128);
    free(flat);
    uni_ok = true;
}

static inline unsigned uni_class(uint32_t c) {
    return c < 0x110000 ? uni_blocks[(size_t)uni_stage1[c >> 8] * 256 + (c & 255)] : 0;
}

/* The code point at s[i] (i < n) and its length; UTF8_INVALID and length 1 for a byte that does not
 * start a well-formed sequence (overlong, surrogate, > U+10FFFF, truncated). */
static inline uint32_t utf8_next(const uint8_t *s, size_t n, size_t i, size_t *len) {
    uint8_t c = s[i];
    *len = 1;
    if (c < 0x80) return c;
    if (c >= 0xC2 && c <= 0xDF) {
        if (i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
            *len = 2;
            return (uint32_t)(c & 0x1F) << 6 | (s[i + 1] & 0x3F);
        }
    } else if (c >= 0xE0 && c <= 0xEF) {
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (i + 2 < n && s[i + 1] >= lo && s[i + 1] <= hi && (s[i + 2] & 0xC0) == 0x80) {
            *len = 3;
            return (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (i + 3 < n && s[i + 1] >= lo && s[i + 1] <= hi && (s[i + 2] & 0xC0) == 0x80 && (s[i + 3] & 0xC0) == 0x80) {
            *len = 4;
            return (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 | (uint32_t)(s[i + 2] & 0x3F) << 6 |
                   (s[i + 3] & 0x3F);
        }
    }
    return UTF8_INVALID;
}

static inline size_t utf8_put(uint8_t *o, uint32_t c) {
    if (c < 0x80) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (uint8_t)(0xC0 | c >> 6), o[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12), o[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18), o[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* Class bits of the character at s[i] and its length (an invalid byte: "other", length 1). */
static inline unsigned cls_at(const uint8_t *s, size_t n, size_t i, size_t *len) {
    if (s[i] < 0x80) {
        *len = 1;
        return ascii_class[s[i]];
    }
    return uni_class(utf8_next(s, n, i, len));
}

/* -- NFC (UAX #15): canonical decomposition, canonical ordering, canonical composition -- */

enum { H_SBASE = 0xAC00, H_LBASE = 0x1100, H_VBASE = 0x1161, H_TBASE = 0x11A7 };
enum { H_LCOUNT = 19, H_VCOUNT = 21, H_TCOUNT = 28, H_NCOUNT = 21 * 28, H_SCOUNT = 19 * 21 * 28 };

static unsigned nfc_ccc(uint32_t c) {
    size_t lo = 0, hi = NELEM(UNI_CCC);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < UNI_CCC[mid][0]) hi = mid;
        else if (c > UNI_CCC[mid][1]) lo = mid + 1;
        else return UNI_CCC[mid][2];
    }
    return 0;
}

/* Appends the full canonical decomposition of c to d; returns the count (1..4). */
static size_t nfc_decompose(uint32_t c, uint32_t *d) {
    if (c >= H_SBASE && c < H_SBASE + H_SCOUNT) {
        uint32_t i = c - H_SBASE;
        d[0] = H_LBASE + i / H_NCOUNT, d[1] = H_VBASE + i % H_NCOUNT / H_TCOUNT;
        if (i % H_TCOUNT == 0) return 2;
        d[2] = H_TBASE + i % H_TCOUNT;
        return 3;
    }
    size_t lo = 0, hi = NELEM(UNI_DECOMP);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < UNI_DECOMP[mid][0]) hi = mid;
        else if (c > UNI_DECOMP[mid][0]) lo = mid + 1;
        else {
            memcpy(d, UNI_DECOMP_POOL + UNI_DECOMP[mid][1], UNI_DECOMP[mid][2] * sizeof *d);
            return UNI_DECOMP[mid][2];
        }
    }
    d[0] = c;
    return 1;
}

/* The primary composite of a + b, or 0. */
static uint32_t nfc_compose(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    size_t lo = 0, hi = NELEM(UNI_COMPOSE);
    uint64_t key = (uint64_t)a << 32 | b;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t k = (uint64_t)UNI_COMPOSE[mid][0] << 32 | UNI_COMPOSE[mid][1];
        if (key < k) hi = mid;
        else if (key > k) lo = mid + 1;
        else return UNI_COMPOSE[mid][2];
    }
    return 0;
}

/* true when NFC could change s: some character may decompose, reorder or combine (quick check). */
static bool nfc_needed(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l;
        uint32_t c = utf8_next(s, n, i, &l);
        if (uni_class(c) & CL_NFC) return true;
        i += l;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------------- */
/* scratch memory of one encode call */

typedef struct Scratch {
    uint8_t *norm; /* NFC output bytes */
    size_t norm_cap;
    uint32_t *cps; /* NFC: decomposed code points */
    size_t cps_cap;
    void *bpe; /* large pieces: symbols and heap */
    size_t bpe_cap;
} Scratch;

static bool grow(void **p, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c);
    if (!q) return false;
    *p = q, *cap = c;
    return true;
}

static void scratch_free(Scratch *sc) {
    free(sc->norm), free(sc->cps), free(sc->bpe);
}

/* NFC of s into sc->norm; *out and *out_len point there. Invalid bytes stay as they are (starters that
 * never combine). Returns false when out of memory. */
static bool nfc(const uint8_t *s, size_t n, Scratch *sc, const uint8_t **out, size_t *out_len) {
    if (!grow((void **)&sc->cps, &sc->cps_cap, (4 * n + 4) * sizeof(uint32_t))) return false;
    uint32_t *d = sc->cps;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t c = utf8_next(s, n, i, &l);
        if (c == UTF8_INVALID) d[m++] = INVALID_BASE + s[i];
        else m += nfc_decompose(c, d + m);
        i += l;
    }
    /* canonical ordering: a stable insertion sort of each run of non-starters by combining class */
    for (size_t i = 1; i < m; i++) {
        unsigned cc = nfc_ccc(d[i]);
        if (cc == 0) continue;
        uint32_t c = d[i];
        size_t j = i;
        while (j > 0 && nfc_ccc(d[j - 1]) > cc) d[j] = d[j - 1], j--;
        d[j] = c;
    }
    /* composition: each character combines with the last starter unless blocked */
    size_t k = 0;
    if (m) {
        long starter = nfc_ccc(d[0]) == 0 ? 0 : -1;
        unsigned last = starter == 0 ? 0 : 256;
        k = 1;
        for (size_t i = 1; i < m; i++) {
            uint32_t c = d[i];
            unsigned cc = nfc_ccc(c);
            uint32_t comp = starter >= 0 ? nfc_compose(d[starter], c) : 0;
            if (comp && (last < cc || last == 0)) {
                d[starter] = comp;
                continue;
            }
            if (cc == 0) starter = (long)k;
            last = cc;
            d[k++] = c;
        }
    }
    if (!grow((void **)&sc->norm, &sc->norm_cap, 4 * k + 1)) return false;
    size_t o = 0;
    for (size_t i = 0; i < k; i++) {
        if (d[i] >= INVALID_BASE) sc->norm[o++] = (uint8_t)(d[i] - INVALID_BASE);
        else o += utf8_put(sc->norm + o, d[i]);
    }
    *out = sc->norm, *out_len = o;
    return true;
}

/* ---------------------------------------------------------------------------------------------------- */
/* GPT-2's byte <-> unicode table: bytes that print (! .. ~, ¡ .. ¬, ® .. ÿ) stand for themselves, the
 * other 68 (controls, space, DEL, NBSP, soft hyphen) for U+0100 + n in byte order. */

static int byte_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static uint32_t byte_to_cp(unsigned b) {
    if (byte_printable(b)) return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++) n += !byte_printable(x);
    return 0x100 + n;
}

/* The byte a code point of a stored token text stands for, or -1. */
static int cp_to_byte(uint32_t c) {
    static const uint8_t low[68] = {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10,
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x7F,
        0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90,
        0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xAD,
    };
    if (c < 0x100) return byte_printable(c) ? (int)c : -1;
    if (c < 0x100 + 68) return low[c - 0x100];
    return -1;
}

/* ---------------------------------------------------------------------------------------------------- */
/* hash tables */

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static int32_t vocab_find(const Tokenizer *t, const char *s, size_t n) {
    for (uint64_t h = hash_bytes(s, n) & t->vocab_mask;; h = (h + 1) & t->vocab_mask) {
        int32_t id = t->vocab_tab[h];
        if (id < 0) return -1;
        size_t len = t->text_off[id + 1] - t->text_off[id];
        if (len == n && !memcmp(t->text + t->text_off[id], s, n)) return id;
    }
}

static inline uint64_t merge_hash(const Tokenizer *t, uint32_t a, uint32_t b) {
    return ((((uint64_t)a << 32) | b) * 0x9E3779B97F4A7C15ull) >> (64 - t->merge_bits);
}

/* Rank of merging a with b (UINT32_MAX: no such merge) and the merged token in *id. */
static inline uint32_t merge_find(const Tokenizer *t, int32_t a, int32_t b, int32_t *id) {
    for (uint64_t h = merge_hash(t, (uint32_t)a, (uint32_t)b);; h = (h + 1) & t->merge_mask) {
        const MergeSlot *s = &t->merge_tab[h];
        if (s->a == (uint32_t)a && s->b == (uint32_t)b) {
            *id = s->id;
            return s->rank;
        }
        if (s->a == UINT32_MAX) return UINT32_MAX;
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* loading */

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return TOKENIZER_EFORMAT;
}

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t p = 16;
    while (p < n) p *= 2;
    return p;
}

/* Optional special id: absent is -1; present must be an integer in [0, n). */
static int load_special_id(const GGUFFile *f, const char *key, int32_t n, int32_t *out, char *err, size_t errlen) {
    int64_t v;
    int rc = gguf_get_int(f, key, &v);
    *out = -1;
    if (rc == GGUF_ENOKEY) return 0;
    if (rc != GGUF_OK) return fail(err, errlen, "%s: expected an integer token id, found %s", key,
                                   rc == GGUF_ETYPE ? "another type" : "an out-of-range value");
    if (v < 0 || v >= n) {
        /* Some converters write -1 or a huge value for "none"; llama.cpp ignores those, so do we. */
        log_warn("%s = %" PRId64 " is not a token id (vocabulary of %d): ignored", key, v, n);
        return 0;
    }
    *out = (int32_t)v;
    return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const Tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint8_t fx = (uint8_t)t->text[t->text_off[x]], fy = (uint8_t)t->text[t->text_off[y]];
    if (fx != fy) return fx < fy ? -1 : 1;
    size_t lx = t->text_off[x + 1] - t->text_off[x], ly = t->text_off[y + 1] - t->text_off[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int load_vocab(Tokenizer *t, const GGUFFile *f, char *err, size_t errlen) {
    GGUFArray toks, types = {0};
    int rc = gguf_get_arr(f, "tokenizer.ggml.tokens", &toks);
    if (rc != GGUF_OK || toks.type != GGUF_TYPE_STRING)
        return fail(err, errlen, "tokenizer.ggml.tokens: expected an array of strings, found %s",
                    rc == GGUF_ENOKEY ? "no such key" : rc != GGUF_OK ? "another type" : gguf_type_name(toks.type));
    if (toks.n == 0 || toks.n > INT32_MAX - 1)
        return fail(err, errlen, "tokenizer.ggml.tokens: expected 1 to %d tokens, found %" PRIu64, INT32_MAX - 1,
                    toks.n);
    t->n_vocab = (int32_t)toks.n;
    size_t n = (size_t)toks.n;
    rc = gguf_get_arr(f, "tokenizer.ggml.token_type", &types);
    if (rc == GGUF_OK && types.n != toks.n)
        return fail(err, errlen, "tokenizer.ggml.token_type: expected %zu entries (one per token), found %" PRIu64, n,
                    types.n);
    if (rc != GGUF_OK && rc != GGUF_ENOKEY)
        return fail(err, errlen, "tokenizer.ggml.token_type: expected an array of integers, found another type");
    bool have_types = rc == GGUF_OK;

    t->text = malloc(toks.nbytes + 1);
    t->piece = malloc(toks.nbytes + 1);
    t->text_off = malloc((n + 1) * sizeof *t->text_off);
    t->piece_off = malloc((n + 1) * sizeof *t->piece_off);
    t->type = malloc(n);
    t->eog = calloc(n, 1);
    t->shadowed = calloc(n, 1);
    t->vocab_mask = pow2_at_least(2 * (uint64_t)n) - 1;
    t->vocab_tab = malloc((t->vocab_mask + 1) * sizeof *t->vocab_tab);
    if (!t->text || !t->piece || !t->text_off || !t->piece_off || !t->type || !t->eog || !t->shadowed ||
        !t->vocab_tab)
        return TOKENIZER_ENOMEM;
    memset(t->vocab_tab, 0xff, (t->vocab_mask + 1) * sizeof *t->vocab_tab);

    GGUFStrIter it = gguf_str_iter(&toks), ahead = it;
    GGUFStr s, sa;
    size_t to = 0, po = 0;
    for (size_t i = 0; i < 16 && gguf_str_next(&ahead, &sa); i++) {
    }
    for (size_t i = 0; i < n; i++) {
        if (!gguf_str_next(&it, &s)) return fail(err, errlen, "tokenizer.ggml.tokens: token %zu unreadable", i);
        if (gguf_str_next(&ahead, &sa)) /* the slot of token i + 16: memory latency bounds this loop */
            __builtin_prefetch(&t->vocab_tab[hash_bytes(sa.ptr, sa.len) & t->vocab_mask], 1);
        int64_t ty = TOKEN_NORMAL;
        if (have_types && (gguf_arr_int(&types, i, &ty) != GGUF_OK || ty < TOKEN_NORMAL || ty > TOKEN_BYTE))
            return fail(err, errlen, "tokenizer.ggml.token_type[%zu]: expected 1..6, found %" PRId64, i, ty);
        t->type[i] = (uint8_t)ty;
        t->text_off[i] = to, t->piece_off[i] = po;
        memcpy(t->text + to, s.ptr, s.len);
        to += s.len;
        /* bytes: a normal token's text is byte-table characters; anything else is its own UTF-8 */
        const uint8_t *u = (const uint8_t *)s.ptr;
        for (size_t j = 0; j < s.len;) {
            size_t l = 1;
            uint32_t c = utf8_next(u, s.len, j, &l);
            int b = ty == TOKEN_NORMAL && c != UTF8_INVALID ? cp_to_byte(c) : -1;
            if (b >= 0) t->piece[po++] = (char)b;
            else memcpy(t->piece + po, u + j, l), po += l;
            j += l;
        }
        size_t plen = po - t->piece_off[i];
        if (plen > t->max_piece) t->max_piece = plen;
        /* text -> id; the first of duplicate texts wins */
        uint64_t h = hash_bytes(s.ptr, s.len) & t->vocab_mask;
        for (;; h = (h + 1) & t->vocab_mask) {
            int32_t id = t->vocab_tab[h];
            if (id < 0) {
                t->vocab_tab[h] = (int32_t)i;
                break;
            }
            size_t len = t->text_off[id + 1] - t->text_off[id]; /* id < i: its end is known */
            if (len == s.len && !memcmp(t->text + t->text_off[id], s.ptr, s.len)) {
                t->shadowed[i] = 1;
                break;
            }
        }
    }
    t->text_off[n] = to, t->piece_off[n] = po;
    return 0;
}

/* Merges are resolved in batches: a first pass over a batch computes the hashes of the left and right
 * parts and prefetches their table slots and texts, so that the lookups of the second pass (which alone
 * decide anything) find them in cache. Loading is bound by memory latency otherwise (~3x slower). */
#define MERGE_BATCH 64

typedef struct MergeText {
    const char *s; /* "LEFT RIGHT" */
    size_t len, ll; /* whole length, left part's length */
} MergeText;

static void prefetch_token(const Tokenizer *t, const char *s, size_t n) {
    uint64_t h = hash_bytes(s, n) & t->vocab_mask;
    int32_t id = t->vocab_tab[h];
    if (id >= 0) __builtin_prefetch(t->text + t->text_off[id]);
}

static int load_merges(Tokenizer *t, const GGUFFile *f, char *err, size_t errlen) {
    GGUFArray m;
    int rc = gguf_get_arr(f, "tokenizer.ggml.merges", &m);
    if (rc != GGUF_OK || m.type != GGUF_TYPE_STRING)
        return fail(err, errlen, "tokenizer.ggml.merges: expected an array of strings, found %s",
                    rc == GGUF_ENOKEY ? "no such key" : rc != GGUF_OK ? "another type" : gguf_type_name(m.type));
    if (m.n >= UINT32_MAX / 2) return fail(err, errlen, "tokenizer.ggml.merges: %" PRIu64 " merges", m.n);
    uint64_t slots = pow2_at_least(m.n + m.n / 3 + 1);
    t->merge_mask = slots - 1;
    t->merge_bits = 0;
    while ((1ull << t->merge_bits) < slots) t->merge_bits++;
    t->merge_tab = malloc(slots * sizeof *t->merge_tab);
    char *buf = malloc(256);
    size_t buf_cap = 256;
    if (!t->merge_tab || !buf) {
        free(buf);
        return TOKENIZER_ENOMEM;
    }
    memset(t->merge_tab, 0xff, slots * sizeof *t->merge_tab);
    GGUFStrIter it = gguf_str_iter(&m);
    GGUFStr s;
    MergeText batch[MERGE_BATCH];
    int32_t guess = -1; /* merged tokens usually follow each other in the vocabulary */
    int ret = 0;
    for (uint64_t r0 = 0; r0 < m.n; r0 += MERGE_BATCH) {
        size_t nb = m.n - r0 < MERGE_BATCH ? (size_t)(m.n - r0) : MERGE_BATCH;
        for (size_t k = 0; k < nb; k++) {
            if (!gguf_str_next(&it, &s)) {
                ret = fail(err, errlen, "tokenizer.ggml.merges: merge %" PRIu64 " unreadable", r0 + k);
                goto out;
            }
            const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
            if (!sp || sp + 1 == s.ptr + s.len) {
                ret = fail(err, errlen, "tokenizer.ggml.merges[%" PRIu64 "]: expected \"LEFT RIGHT\", found \"%.*s\"",
                           r0 + k, (int)(s.len > 64 ? 64 : s.len), s.ptr);
                goto out;
            }
            batch[k] = (MergeText){s.ptr, s.len, (size_t)(sp - s.ptr)};
            __builtin_prefetch(&t->vocab_tab[hash_bytes(s.ptr, batch[k].ll) & t->vocab_mask]);
            __builtin_prefetch(&t->vocab_tab[hash_bytes(sp + 1, s.len - batch[k].ll - 1) & t->vocab_mask]);
        }
        for (size_t k = 0; k < nb; k++) {
            prefetch_token(t, batch[k].s, batch[k].ll);
            prefetch_token(t, batch[k].s + batch[k].ll + 1, batch[k].len - batch[k].ll - 1);
        }
        for (size_t k = 0; k < nb; k++) {
            uint64_t r = r0 + k;
            const char *p = batch[k].s;
            size_t ll = batch[k].ll, rl = batch[k].len - ll - 1;
            if (ll + rl > buf_cap) {
                char *q = realloc(buf, ll + rl);
                if (!q) {
                    ret = TOKENIZER_ENOMEM;
                    goto out;
                }
                buf = q, buf_cap = ll + rl;
            }
            memcpy(buf, p, ll);
            memcpy(buf + ll, p + ll + 1, rl);
            int32_t a = vocab_find(t, p, ll), b = vocab_find(t, p + ll + 1, rl), ab = -1;
            guess = guess >= 0 && guess + 1 < t->n_vocab ? guess + 1 : -1;
            if (guess >= 0 && t->text_off[guess + 1] - t->text_off[guess] == ll + rl &&
                !memcmp(t->text + t->text_off[guess], buf, ll + rl) && !t->shadowed[guess])
                ab = guess;
            else
                ab = vocab_find(t, buf, ll + rl);
            if (a < 0 || b < 0 || ab < 0) {
                ret = fail(err, errlen, "tokenizer.ggml.merges[%" PRIu64 "] \"%.*s\": expected tokens in the vocabulary, "
                           "found no token \"%.*s\"", r, (int)(batch[k].len > 64 ? 64 : batch[k].len), p,
                           (int)(a < 0 ? ll : b < 0 ? rl : ll + rl), a < 0 ? p : b < 0 ? p + ll + 1 : buf);
                goto out;
            }
            guess = ab;
            /* a pair listed twice keeps its last rank, as Hugging Face's merge map does */
            for (uint64_t h = merge_hash(t, (uint32_t)a, (uint32_t)b);; h = (h + 1) & t->merge_mask) {
                MergeSlot *e = &t->merge_tab[h];
                if (e->a == UINT32_MAX || (e->a == (uint32_t)a && e->b == (uint32_t)b)) {
                    *e = (MergeSlot){(uint32_t)a, (uint32_t)b, (uint32_t)r, ab};
                    break;
                }
            }
        }
    }
out:
    free(buf);
    return ret;
}

static int load_specials(Tokenizer *t, const GGUFFile *f, char *err, size_t errlen) {
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    int32_t ids[4];
    for (size_t k = 0; k < 4; k++) {
        int rc = load_special_id(f, keys[k], t->n_vocab, &ids[k], err, errlen);
        if (rc) return rc;
    }
    t->bos = ids[0], t->eos = ids[1];
    for (size_t k = 1; k < 4; k++)
        if (ids[k] >= 0) t->eog[ids[k]] = 1;
    bool add_bos = false;
    int rc = gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos);
    if (rc != GGUF_OK && rc != GGUF_ENOKEY)
        return fail(err, errlen, "tokenizer.ggml.add_bos_token: expected a bool, found another type");
    t->add_bos = add_bos && t->bos >= 0;

    size_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->type[i] != TOKEN_CONTROL && t->type[i] != TOKEN_USER_DEFINED) continue;
        size_t len = t->text_off[i + 1] - t->text_off[i];
        for (size_t k = 0; k < NELEM(EOG_TEXTS); k++)
            if (strlen(EOG_TEXTS[k]) == len && !memcmp(EOG_TEXTS[k], t->text + t->text_off[i], len)) t->eog[i] = 1;
        if (len) n++;
    }
    t->special = malloc((n ? n : 1) * sizeof *t->special);
    if (!t->special) return TOKENIZER_ENOMEM;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->type[i] == TOKEN_CONTROL || t->type[i] == TOKEN_USER_DEFINED) && t->text_off[i + 1] > t->text_off[i])
            t->special[t->n_special++] = i;
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);
    size_t j = 0;
    for (unsigned b = 0; b < 256; b++) {
        t->special_at[b] = (uint32_t)j;
        while (j < t->n_special && (uint8_t)t->text[t->text_off[t->special[j]]] == b) j++;
    }
    t->special_at[256] = (uint32_t)j;
    return 0;
}

int tokenizer_load(Tokenizer **out, const GGUFFile *f, char *err, size_t errlen) {
    *out = NULL;
    if (errlen) err[0] = 0;
    pthread_once(&uni_once, uni_init);
    if (!uni_ok) return TOKENIZER_ENOMEM;
    GGUFStr model, pre;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (rc != GGUF_OK)
        return fail(err, errlen, "tokenizer.ggml.model: expected \"gpt2\" (byte-level BPE), found %s",
                    rc == GGUF_ENOKEY ? "no such key" : "another type");
    if (!gguf_str_eq(model, "gpt2"))
        return fail(err, errlen, "tokenizer.ggml.model: expected \"gpt2\" (byte-level BPE), found \"%.*s\"",
                    (int)(model.len > 64 ? 64 : model.len), model.ptr);
    rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre);
    const PreType *pt = NULL;
    for (size_t i = 0; rc == GGUF_OK && i < NELEM(PRE_TYPES); i++)
        if (gguf_str_eq(pre, PRE_TYPES[i].name)) pt = &PRE_TYPES[i];
    if (!pt) {
        char names[128] = "";
        for (size_t i = 0; i < NELEM(PRE_TYPES); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", PRE_TYPES[i].name);
        if (rc == GGUF_OK)
            return fail(err, errlen, "tokenizer.ggml.pre: expected one of %s, found \"%.*s\" (unsupported pre-tokenizer)",
                        names, (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
        return fail(err, errlen, "tokenizer.ggml.pre: expected one of %s, found %s", names,
                    rc == GGUF_ENOKEY ? "no such key" : "another type");
    }
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return TOKENIZER_ENOMEM;
    t->pre = pt;
    if ((rc = load_vocab(t, f, err, errlen)) || (rc = load_merges(t, f, err, errlen)) ||
        (rc = load_specials(t, f, err, errlen)))
        goto fail;
    int missing = 0;
    for (unsigned b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t l = utf8_put(u, byte_to_cp(b));
        t->byte_id[b] = vocab_find(t, (const char *)u, l);
        missing += t->byte_id[b] < 0;
    }
    free(t->shadowed);
    t->shadowed = NULL;
    if (missing) log_info("tokenizer: %d of 256 byte tokens missing from the vocabulary; those bytes encode to nothing",
                          missing);
    *out = t;
    return 0;
fail:
    if (rc == TOKENIZER_ENOMEM && errlen) snprintf(err, errlen, "tokenizer: out of memory");
    tokenizer_free(t);
    return rc;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->text), free(t->text_off), free(t->piece), free(t->piece_off), free(t->type), free(t->eog);
    free(t->vocab_tab), free(t->merge_tab), free(t->special), free(t->shadowed);
    free(t);
}

/* ---------------------------------------------------------------------------------------------------- */
/* pre-tokenizers: each returns the end of the piece that starts at s[i] (i < n). The regexes, with
 * Oniguruma's semantics (at each position the first alternative that matches wins, quantifiers greedy),
 * are in PreKind; docs/tokenizer.md walks through why each branch below equals its alternative. */

#define OTHER_MASK (CL_L | CL_N | CL_S) /* "other" = [^\s\p{L}\p{N}]: none of these bits */

/* The end of the run from i of characters that have some bit of mask (want) or none (!want). */
static size_t run_of(const uint8_t *s, size_t n, size_t i, unsigned mask, bool want) {
    while (i < n) {
        size_t l;
        unsigned k = cls_at(s, n, i, &l);
        if (((k & mask) != 0) != want) break;
        i += l;
    }
    return i;
}

static size_t run_crlf(const uint8_t *s, size_t n, size_t i) {
    while (i < n && (s[i] == '\r' || s[i] == '\n')) i++;
    return i;
}

/* Length of s|t|re|ve|m|ll|d at s[i] (after the apostrophe), or 0. Case-insensitive (ci) is (?i:...):
 * Unicode simple case folding, so S, T, RE, ... and U+017F (long s, folds to s) match too. */
static size_t contraction(const uint8_t *s, size_t n, size_t i, bool ci) {
    if (i >= n) return 0;
    unsigned c = s[i], c2 = i + 1 < n ? s[i + 1] : 0;
    if (ci) {
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c2 >= 'A' && c2 <= 'Z') c2 += 32;
        if (c == 0xC5 && c2 == 0xBF) return 2; /* ſ */
    }
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 1;
    if ((c == 'r' && c2 == 'e') || (c == 'v' && c2 == 'e') || (c == 'l' && c2 == 'l')) return 2;
    return 0;
}

/* qwen2 (max_digits 1) and llama-bpe (3). */
static size_t split_qwen(const uint8_t *s, size_t n, size_t i, unsigned max_digits) {
    uint8_t c = s[i];
    size_t l0, l1, m;
    unsigned k0 = cls_at(s, n, i, &l0);
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c == '\'' && (m = contraction(s, n, i + 1, true))) return i + 1 + m;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k0 & CL_L) return run_of(s, n, i + l0, CL_L, true);
    if (c != '\r' && c != '\n' && !(k0 & CL_N) && i + l0 < n && (cls_at(s, n, i + l0, &l1) & CL_L))
        return run_of(s, n, i + l0 + l1, CL_L, true);
    /* \p{N}{1,max_digits} */
    if (k0 & CL_N) {
        size_t j = i + l0;
        for (unsigned d = 1; d < max_digits && j < n && (cls_at(s, n, j, &l1) & CL_N); d++) j += l1;
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (c == ' ' && i + 1 < n && !(cls_at(s, n, i + 1, &l1) & OTHER_MASK))
        return run_crlf(s, n, run_of(s, n, i + 1 + l1, OTHER_MASK, false));
    if (!(k0 & OTHER_MASK)) return run_crlf(s, n, run_of(s, n, i + l0, OTHER_MASK, false));
    /* c is \s. \s*[\r\n]+ backtracks to the last \r or \n of the run; else \s+(?!\S) leaves the run's last
     * character to the next piece when a non-space follows and the run has two or more; else \s+. */
    size_t j = i, last = i, nl = SIZE_MAX;
    while (j < n) {
        size_t l;
        if (!(cls_at(s, n, j, &l) & CL_S)) break;
        if (s[j] == '\r' || s[j] == '\n') nl = j;
        last = j;
        j += l;
    }
    if (nl != SIZE_MAX) return nl + 1;
    return j == n || last == i ? j : last;
}

/* gpt2, and smollm (isolate_digits: every \p{N} is a piece of its own and ends the text the GPT-2
 * pattern sees, which matters for \s+(?!\S) before a digit). */
static size_t split_gpt2(const uint8_t *s, size_t n, size_t i, bool isolate_digits) {
    uint8_t c = s[i];
    size_t l0, l1, m;
    unsigned k0 = cls_at(s, n, i, &l0);
    if (isolate_digits && (k0 & CL_N)) return i + l0;
    /* 's|'t|'re|'ve|'m|'ll|'d */
    if (c == '\'' && (m = contraction(s, n, i + 1, false))) return i + 1 + m;
    /*  ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+ */
    if (c == ' ' && i + 1 < n) {
        unsigned k1 = cls_at(s, n, i + 1, &l1);
        if (k1 & CL_L) return run_of(s, n, i + 1 + l1, CL_L, true);
        if ((k1 & CL_N) && !isolate_digits) return run_of(s, n, i + 1 + l1, CL_N, true);
        if (!(k1 & OTHER_MASK)) return run_of(s, n, i + 1 + l1, OTHER_MASK, false);
    }
    if (k0 & CL_L) return run_of(s, n, i + l0, CL_L, true);
    if (k0 & CL_N) return run_of(s, n, i + l0, CL_N, true);
    if (!(k0 & OTHER_MASK)) return run_of(s, n, i + l0, OTHER_MASK, false);
    /* \s+(?!\S)|\s+ */
    size_t j = i, last = i;
    while (j < n) {
        size_t l;
        if (!(cls_at(s, n, j, &l) & CL_S)) break;
        last = j;
        j += l;
    }
    bool at_end = j == n || (isolate_digits && (cls_at(s, n, j, &l1) & CL_N));
    return at_end || last == i ? j : last;
}

static size_t pretok_next(const PreType *p, const uint8_t *s, size_t n, size_t i) {
    switch (p->kind) {
    case PRE_QWEN2: return split_qwen(s, n, i, 1);
    case PRE_LLAMA3: return split_qwen(s, n, i, 3);
    case PRE_SMOLLM: return split_gpt2(s, n, i, true);
    case PRE_GPT2: break;
    }
    return split_gpt2(s, n, i, false);
}

/* ---------------------------------------------------------------------------------------------------- */
/* BPE: a piece's bytes start as byte tokens; the adjacent pair with the lowest merge rank merges (the
 * leftmost on ties) until no pair has a merge. Short pieces: a linear scan per merge; long ones: a heap,
 * with entries checked for staleness when popped (as Hugging Face's word.rs does). */

typedef struct Out {
    int32_t *ids;
    size_t cap, n; /* n counts every id, also those past cap */
} Out;

static inline void out_push(Out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

#define BPE_SMALL 64

typedef struct HeapItem {
    uint32_t rank, pos; /* pos: the left symbol's index */
    int32_t id;         /* the merged token */
} HeapItem;

static inline bool heap_less(HeapItem a, HeapItem b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(HeapItem *h, size_t *n, HeapItem x) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!heap_less(x, h[p])) break;
        h[i] = h[p], i = p;
    }
    h[i] = x;
}

static HeapItem heap_pop(HeapItem *h, size_t *n) {
    HeapItem top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], x)) break;
        h[i] = h[c], i = c;
    }
    h[i] = x;
    return top;
}

static bool bpe_large(const Tokenizer *t, const uint8_t *p, size_t n, Out *o, Scratch *sc) {
    if (!grow(&sc->bpe, &sc->bpe_cap, n * 3 * sizeof(int32_t) + 3 * n * sizeof(HeapItem))) return false;
    int32_t *ids = sc->bpe, *prev = ids + n, *next = prev + n; /* (n,) each: the symbols as a list */
    HeapItem *heap = (HeapItem *)(next + n);                    /* (3n,) every pair ever adjacent */
    size_t m = 0, hn = 0;
    for (size_t i = 0; i < n; i++)
        if (t->byte_id[p[i]] >= 0) ids[m++] = t->byte_id[p[i]];
    for (size_t i = 0; i < m; i++) prev[i] = (int32_t)i - 1, next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    for (size_t i = 0; i + 1 < m; i++) {
        int32_t id;
        uint32_t r = merge_find(t, ids[i], ids[i + 1], &id);
        if (r != UINT32_MAX) heap_push(heap, &hn, (HeapItem){r, (uint32_t)i, id});
    }
    while (hn) {
        HeapItem top = heap_pop(heap, &hn);
        int32_t pos = (int32_t)top.pos, nx = next[pos], id;
        if (ids[pos] < 0 || nx < 0) continue;
        if (merge_find(t, ids[pos], ids[nx], &id) == UINT32_MAX || id != top.id) continue; /* stale */
        ids[pos] = top.id, ids[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        uint32_t r;
        if (prev[pos] >= 0 && (r = merge_find(t, ids[prev[pos]], ids[pos], &id)) != UINT32_MAX)
            heap_push(heap, &hn, (HeapItem){r, (uint32_t)prev[pos], id});
        if (next[pos] >= 0 && (r = merge_find(t, ids[pos], ids[next[pos]], &id)) != UINT32_MAX)
            heap_push(heap, &hn, (HeapItem){r, (uint32_t)pos, id});
    }
    for (int32_t i = m ? 0 : -1; i >= 0; i = next[i]) out_push(o, ids[i]);
    return true;
}

/* The stored text of raw bytes (each byte through the byte table) into buf (2n bytes); its length. */
static size_t bytes_to_text(const uint8_t *p, size_t n, char *buf) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) o += utf8_put((uint8_t *)buf + o, byte_to_cp(p[i]));
    return o;
}

static bool bpe(const Tokenizer *t, const uint8_t *p, size_t n, Out *o, Scratch *sc) {
    if (n == 1) {
        if (t->byte_id[p[0]] >= 0) out_push(o, t->byte_id[p[0]]);
        return true;
    }
    if (t->pre->ignore_merges && n <= 128) {
        char buf[256];
        int32_t id = vocab_find(t, buf, bytes_to_text(p, n, buf));
        if (id >= 0) {
            out_push(o, id);
            return true;
        }
    }
    if (n > BPE_SMALL) return bpe_large(t, p, n, o, sc);
    int32_t ids[BPE_SMALL], nid[BPE_SMALL]; /* symbols; nid[i]: the merge of symbols i and i+1 */
    uint32_t rank[BPE_SMALL];               /* rank[i]: of that merge, UINT32_MAX if none */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (t->byte_id[p[i]] >= 0) ids[m++] = t->byte_id[p[i]];
    for (size_t i = 0; i + 1 < m; i++) rank[i] = merge_find(t, ids[i], ids[i + 1], &nid[i]);
    while (m > 1) {
        size_t b = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rank[i] < rank[b]) b = i;
        if (rank[b] == UINT32_MAX) break;
        ids[b] = nid[b];
        memmove(ids + b + 1, ids + b + 2, (m - b - 2) * sizeof *ids);
        if (b + 2 < m) {
            memmove(rank + b + 1, rank + b + 2, (m - b - 3) * sizeof *rank);
            memmove(nid + b + 1, nid + b + 2, (m - b - 3) * sizeof *nid);
        }
        m--;
        if (b > 0) rank[b - 1] = merge_find(t, ids[b - 1], ids[b], &nid[b - 1]);
        if (b + 1 < m) rank[b] = merge_find(t, ids[b], ids[b + 1], &nid[b]);
    }
    for (size_t i = 0; i < m; i++) out_push(o, ids[i]);
    return true;
}

/* ---------------------------------------------------------------------------------------------------- */
/* encoding */

/* The special token that starts at s[i], longest first: its id and *len, or -1. */
static int32_t special_at(const Tokenizer *t, const uint8_t *s, size_t n, size_t i, size_t *len) {
    for (uint32_t j = t->special_at[s[i]]; j < t->special_at[s[i] + 1]; j++) {
        int32_t id = t->special[j];
        size_t l = t->text_off[id + 1] - t->text_off[id];
        if (l <= n - i && !memcmp(s + i, t->text + t->text_off[id], l)) {
            *len = l;
            return id;
        }
    }
    return -1;
}

/* Steps b to d (or to c when fn is set) of one plain-text segment. */
static int encode_plain(const Tokenizer *t, const uint8_t *s, size_t n, unsigned flags, Out *o, Scratch *sc,
                        TokenizerPieceFn fn, void *ctx) {
    if (t->pre->nfc && !(flags & TOKENIZE_NO_NORMALIZE) && nfc_needed(s, n) && !nfc(s, n, sc, &s, &n))
        return TOKENIZER_ENOMEM;
    for (size_t i = 0; i < n;) {
        size_t e = pretok_next(t->pre, s, n, i);
        if (fn) fn(ctx, (const char *)s + i, e - i, -1);
        else if (!bpe(t, s + i, e - i, o, sc)) return TOKENIZER_ENOMEM;
        i = e;
    }
    return 0;
}

static void emit_special(const Tokenizer *t, int32_t id, Out *o, TokenizerPieceFn fn, void *ctx) {
    if (fn) fn(ctx, t->text + t->text_off[id], t->text_off[id + 1] - t->text_off[id], id);
    else out_push(o, id);
}

static int64_t encode(const Tokenizer *t, const char *text, size_t len, unsigned flags, Out *o, TokenizerPieceFn fn,
                      void *ctx) {
    const uint8_t *s = (const uint8_t *)text;
    Scratch sc = {0};
    int rc = 0;
    size_t l, start = 0;
    if ((flags & TOKENIZE_ADD_BOS) && t->add_bos &&
        !((flags & TOKENIZE_PARSE_SPECIAL) && len && special_at(t, s, len, 0, &l) == t->bos))
        emit_special(t, t->bos, o, fn, ctx);
    if ((flags & TOKENIZE_PARSE_SPECIAL) && t->n_special) {
        for (size_t i = 0; i < len;) {
            int32_t id = t->special_at[s[i]] == t->special_at[s[i] + 1] ? -1 : special_at(t, s, len, i, &l);
            if (id < 0) {
                i++;
                continue;
            }
            if ((rc = encode_plain(t, s + start, i - start, flags, o, &sc, fn, ctx))) goto out;
            emit_special(t, id, o, fn, ctx);
            start = i += l;
        }
    }
    rc = encode_plain(t, s + start, len - start, flags, o, &sc, fn, ctx);
out:
    scratch_free(&sc);
    return rc ? rc : (int64_t)o->n;
}

int64_t tokenizer_encode(const Tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *out, size_t cap) {
    Out o = {out, out ? cap : 0, 0};
    return encode(t, text, len, flags, &o, NULL, NULL);
}

int tokenizer_split(const Tokenizer *t, const char *text, size_t len, unsigned flags, TokenizerPieceFn fn, void *ctx) {
    Out o = {NULL, 0, 0};
    int64_t rc = encode(t, text, len, flags, &o, fn, ctx);
    return rc < 0 ? (int)rc : 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* decoding */

static bool piece_visible(const Tokenizer *t, int32_t id, unsigned flags) {
    switch (t->type[id]) {
    case TOKEN_CONTROL:
    case TOKEN_UNKNOWN: return flags & TOKENIZER_DECODE_SPECIAL;
    case TOKEN_UNUSED: return false;
    default: return true;
    }
}

int64_t tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char *out, size_t cap) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return TOKENIZER_EINVAL;
        if (!piece_visible(t, ids[i], flags)) continue;
        size_t l = t->piece_off[ids[i] + 1] - t->piece_off[ids[i]];
        if (out && total < cap) memcpy(out + total, t->piece + t->piece_off[ids[i]], l < cap - total ? l : cap - total);
        total += l;
    }
    return (int64_t)total;
}

int token_decoder_init(TokenDecoder *d, const Tokenizer *t, unsigned flags) {
    memset(d, 0, sizeof *d);
    d->tok = t, d->flags = flags;
    d->cap = 3 * (t->max_piece + 4) + 8; /* every byte may become U+FFFD, plus a held-back sequence */
    d->buf = malloc(d->cap);
    return d->buf ? 0 : TOKENIZER_ENOMEM;
}

void token_decoder_free(TokenDecoder *d) {
    free(d->buf);
    d->buf = NULL;
}

static void put_fffd(TokenDecoder *d, size_t *o) {
    memcpy(d->buf + *o, "\xEF\xBF\xBD", 3);
    *o += 3;
}

/* One byte through the UTF-8 state machine (Unicode's "maximal subpart" replacement practice). */
static void decoder_byte(TokenDecoder *d, uint8_t b, size_t *o) {
    if (d->n_pend) {
        uint8_t lo = 0x80, hi = 0xBF, lead = d->pend[0];
        if (d->n_pend == 1) {
            if (lead == 0xE0) lo = 0xA0;
            else if (lead == 0xED) hi = 0x9F;
            else if (lead == 0xF0) lo = 0x90;
            else if (lead == 0xF4) hi = 0x8F;
        }
        if (b >= lo && b <= hi) {
            d->pend[d->n_pend++] = b;
            if (d->n_pend == d->need) {
                memcpy(d->buf + *o, d->pend, d->need);
                *o += d->need;
                d->n_pend = 0;
            }
            return;
        }
        put_fffd(d, o); /* the held sequence can never complete */
        d->n_pend = 0;
    }
    if (b < 0x80) d->buf[(*o)++] = (char)b;
    else if (b >= 0xC2 && b <= 0xDF) d->pend[0] = b, d->n_pend = 1, d->need = 2;
    else if (b >= 0xE0 && b <= 0xEF) d->pend[0] = b, d->n_pend = 1, d->need = 3;
    else if (b >= 0xF0 && b <= 0xF4) d->pend[0] = b, d->n_pend = 1, d->need = 4;
    else put_fffd(d, o);
}

const char *token_decoder_push(TokenDecoder *d, int32_t id, size_t *len) {
    const Tokenizer *t = d->tok;
    size_t o = 0;
    if (id >= 0 && id < t->n_vocab && piece_visible(t, id, d->flags)) {
        const uint8_t *p = (const uint8_t *)t->piece + t->piece_off[id];
        size_t n = t->piece_off[id + 1] - t->piece_off[id];
        for (size_t i = 0; i < n; i++) {
            if (p[i] < 0x80 && !d->n_pend) d->buf[o++] = (char)p[i]; /* fast path */
            else decoder_byte(d, p[i], &o);
        }
    }
    *len = o;
    return d->buf;
}

const char *token_decoder_flush(TokenDecoder *d, size_t *len) {
    size_t o = 0;
    if (d->n_pend) put_fffd(d, &o);
    d->n_pend = 0;
    *len = o;
    return d->buf;
}

/* ---------------------------------------------------------------------------------------------------- */
/* accessors */

int32_t tokenizer_n_vocab(const Tokenizer *t) {
    return t->n_vocab;
}

int32_t tokenizer_bos(const Tokenizer *t) {
    return t->bos;
}

int32_t tokenizer_eos(const Tokenizer *t) {
    return t->eos;
}

bool tokenizer_add_bos(const Tokenizer *t) {
    return t->add_bos;
}

const char *tokenizer_pre_name(const Tokenizer *t) {
    return t->pre->name;
}

bool tokenizer_is_eog(const Tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

TokenType tokenizer_token_type(const Tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? (TokenType)t->type[id] : TOKEN_UNUSED;
}

const char *tokenizer_piece(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = t->piece_off[id + 1] - t->piece_off[id];
    return t->piece + t->piece_off[id];
}

const char *tokenizer_token_text(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = t->text_off[id + 1] - t->text_off[id];
    return t->text + t->text_off[id];
}

int32_t tokenizer_find(const Tokenizer *t, const char *text, size_t len) {
    return vocab_find(t, text, len);
}

size_t tokenizer_max_piece(const Tokenizer *t) {
    return t->max_piece;
}
