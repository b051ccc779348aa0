/*
 * tokenizer/internal: what the tokenizer's source files share (the Tokenizer struct, UTF-8 and Unicode class
 * lookups, the hash tables, per-call scratch memory). Not a public API: only src/tokenizer.c and
 * the files in src/tokenizer/ include it; everyone else uses tokenizer.h.
 *
 * Files: tokenizer.c (loading, encoding, decoding, streaming), tokenizer/unicode.c (class table, NFC),
 * tokenizer/pretok.c (the pre-tokenizers), tokenizer/bpe.c (the byte table and the merges).
 */
#ifndef ORCD_TOKENIZER_INTERNAL_H
#define ORCD_TOKENIZER_INTERNAL_H

#include "../tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- pre-tokenizer types ---- */

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

/* ---- the tokenizer ---- */

typedef struct MergeSlot {
    uint32_t a, b; /* left and right token ids; a == UINT32_MAX: empty slot */
    uint32_t rank; /* index in tokenizer.ggml.merges: lower merges first */
    int32_t id;    /* the merged token */
} MergeSlot;

struct Tokenizer {
    const PreType *pre;
    int32_t n_vocab;
    char *text;         /* arena: every token's stored text */
    size_t *text_off;   /* (n_vocab + 1,) token i is text[text_off[i] .. text_off[i+1]) */
    char *piece;        /* arena: every token's bytes (stored text through the byte table) */
    size_t *piece_off;  /* (n_vocab + 1,) */
    uint8_t *type;      /* (n_vocab,) TokenType */
    uint8_t *eog;       /* (n_vocab,) 1 for end-of-generation tokens */
    uint8_t *shadowed;  /* (n_vocab,) while loading: 1 if an earlier token has the same text */
    int32_t *vocab_tab; /* open addressing, stored text -> id, -1 empty */
    uint64_t vocab_mask;
    MergeSlot *merge_tab;
    uint64_t merge_mask;
    int merge_bits;
    int32_t byte_id[256];     /* byte -> the token of its one-character text, -1 if the vocabulary lacks it */
    int32_t *special;         /* control and user-defined ids, sorted by (first byte, length descending) */
    uint32_t special_at[257]; /* special[special_at[b] .. special_at[b+1]) start with byte b */
    size_t n_special;
    int32_t bos, eos;
    bool add_bos;
    size_t max_piece;
};

/* ---- Unicode classes (tokenizer/unicode.c) ---- */

/* CL_D: numeric for the Digits pre-tokenizer (Rust's char::is_numeric in the reference's build, a newer
 * Unicode than Oniguruma's \p{N}: a superset of CL_N) */
enum { CL_L = 1, CL_N = 2, CL_S = 4, CL_NFC = 8, CL_D = 16 }; /* "other": none of L, N, S */
#define OTHER_MASK   (CL_L | CL_N | CL_S)          /* "other" = [^\s\p{L}\p{N}]: none of these bits */
#define UTF8_INVALID 0xFFFFFFFFu

extern uint16_t tok_uni_stage1[0x1100]; /* code point >> 8 -> block */
extern uint8_t *tok_uni_blocks;         /* (n_blocks, 256) class bits */
extern uint8_t tok_ascii_class[128];

/* Build the class table once (thread-safe); false when out of memory. */
bool tok_unicode_init(void);

static inline unsigned uni_class(uint32_t c) {
    return c < 0x110000 ? tok_uni_blocks[(size_t)tok_uni_stage1[c >> 8] * 256 + (c & 255)] : 0;
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
        if (i + 3 < n && s[i + 1] >= lo && s[i + 1] <= hi && (s[i + 2] & 0xC0) == 0x80 &&
            (s[i + 3] & 0xC0) == 0x80) {
            *len = 4;
            return (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 |
                   (uint32_t)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
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
        o[0] = (uint8_t)(0xE0 | c >> 12), o[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F)),
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
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
        return tok_ascii_class[s[i]];
    }
    return uni_class(utf8_next(s, n, i, len));
}

/* ---- scratch memory of one encode call ---- */

typedef struct Scratch {
    uint8_t *norm; /* NFC output bytes */
    size_t norm_cap;
    uint32_t *cps; /* NFC: decomposed code points */
    size_t cps_cap;
    void *bpe; /* large pieces: symbols and heap */
    size_t bpe_cap;
} Scratch;

/* Grow *p to at least need bytes; false when out of memory (*p unchanged). */
bool tok_grow(void **p, size_t *cap, size_t need);

/* NFC of s when it needs it: false if it does not (s is already NFC), else true with *out and *out_len
 * pointing at the normalized text in sc->norm (*out NULL when out of memory). */
bool tok_nfc(const uint8_t *s, size_t n, Scratch *sc, const uint8_t **out, size_t *out_len);

/* ---- pre-tokenizers (tokenizer/pretok.c) ---- */

/* The end of the piece that starts at s[i] (i < n). */
size_t tok_pretok_next(const PreType *p, const uint8_t *s, size_t n, size_t i);

/* ---- vocabulary and merges (tokenizer.c, tokenizer/bpe.c) ---- */

uint64_t tok_hash_bytes(const void *p, size_t n);

/* The id of the token whose stored text is s[0..n), or -1 (the first of duplicate texts). */
int32_t tok_vocab_find(const Tokenizer *t, const char *s, size_t n);

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

/* GPT-2's byte <-> unicode table: the code point standing for byte b, and the byte a code point stands
 * for (-1 if none). */
uint32_t tok_byte_to_cp(unsigned b);
int tok_cp_to_byte(uint32_t c);

typedef struct Out {
    int32_t *ids;
    size_t cap, n; /* n counts every id, also those past cap */
} Out;

static inline void out_push(Out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* Append the BPE tokens of one piece; false when out of memory. */
bool tok_bpe(const Tokenizer *t, const uint8_t *p, size_t n, Out *o, Scratch *sc);

#endif
