/*
 * tokenizer: byte-level BPE from GGUF metadata. Loading copies the vocabulary into two arenas (stored
 * text, decoded bytes) and builds two hash tables (text -> id, (left id, right id) -> merge). Encoding
 * is special-token partition -> NFC (qwen2) -> hand-written pre-tokenizer -> BPE on ids, with scratch
 * memory per call and nothing shared but the immutable tables.
 *
 * This file: loading, encoding, decoding, streaming, accessors. tokenizer/unicode.c: Unicode classes and
 * NFC; tokenizer/pretok.c: the pre-tokenizers; tokenizer/bpe.c: the byte table and merging (shared
 * declarations in tokenizer/internal.h).
 *
 * Not here: regex engines (each supported pattern is a small scanner, equivalent to the regex as
 * Oniguruma runs it), Unicode data (generated into tokenizer/unicode_tables.h by
 * tests/tokenizer/gen_unicode.py).
 */
#define _GNU_SOURCE /* qsort_r */
#include "tokenizer.h"

#include "log.h"
#include "tokenizer/internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------------------------- */
/* pre-tokenizer types and end-of-generation texts */

static const PreType PRE_TYPES[] = {
    {"qwen2", PRE_QWEN2, true, false},    {"llama-bpe", PRE_LLAMA3, false, true},
    {"llama3", PRE_LLAMA3, false, true},  {"llama-v3", PRE_LLAMA3, false, true},
    {"smollm", PRE_SMOLLM, false, false}, {"gpt2", PRE_GPT2, false, false},
};

/* Texts of control/user-defined tokens that end a generation (llama.cpp's list, plus the FIM pad,
 * repository and file separators, which a chat model emits only when it has left the conversation). */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>",    "<|im_end|>",    "<|end|>",      "<|return|>", "<|call|>",        "<end_of_turn>",
    "<|endoftext|>", "<|eom_id|>",    "<EOT>",        "_<EOT>",     "<|end_of_text|>", "<end_of_utterance>",
    "<|fim_pad|>",   "<|repo_name|>", "<|file_sep|>", "<fim_pad>",  "<reponame>",      "<file_sep>",
};

/* ---------------------------------------------------------------------------------------------------- */
/* scratch memory and hash tables */

bool tok_grow(void **p, size_t *cap, size_t need) {
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

uint64_t tok_hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

int32_t tok_vocab_find(const Tokenizer *t, const char *s, size_t n) {
    for (uint64_t h = tok_hash_bytes(s, n) & t->vocab_mask;; h = (h + 1) & t->vocab_mask) {
        int32_t id = t->vocab_tab[h];
        if (id < 0) return -1;
        size_t len = t->text_off[id + 1] - t->text_off[id];
        if (len == n && !memcmp(t->text + t->text_off[id], s, n)) return id;
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

/* An optional special id: -1 when absent or out of range (with a warning); not an integer is an error. */
static int load_special_id(const GGUFFile *f, const char *key, int32_t n, int32_t *out, char *err,
                           size_t errlen) {
    int64_t v;
    int rc = gguf_get_int(f, key, &v);
    *out = -1;
    if (rc == GGUF_ENOKEY) return 0;
    if (rc != GGUF_OK)
        return fail(err, errlen, "%s: expected an integer token id, found %s", key,
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
                    rc == GGUF_ENOKEY ? "no such key"
                    : rc != GGUF_OK   ? "another type"
                                      : gguf_type_name(toks.type));
    if (toks.n == 0 || toks.n > INT32_MAX - 1)
        return fail(err, errlen, "tokenizer.ggml.tokens: expected 1 to %d tokens, found %" PRIu64,
                    INT32_MAX - 1, toks.n);
    t->n_vocab = (int32_t)toks.n;
    size_t n = (size_t)toks.n;
    rc = gguf_get_arr(f, "tokenizer.ggml.token_type", &types);
    if (rc == GGUF_OK && types.n != toks.n)
        return fail(err, errlen,
                    "tokenizer.ggml.token_type: expected %zu entries (one per token), found %" PRIu64, n,
                    types.n);
    if (rc != GGUF_OK && rc != GGUF_ENOKEY)
        return fail(err, errlen,
                    "tokenizer.ggml.token_type: expected an array of integers, found another type");
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
    for (size_t i = 0; i < 16; i++) gguf_str_next(&ahead, &sa); /* ahead runs 16 tokens in front */
    for (size_t i = 0; i < n; i++) {
        if (!gguf_str_next(&it, &s))
            return fail(err, errlen, "tokenizer.ggml.tokens: token %zu unreadable", i);
        if (gguf_str_next(&ahead, &sa)) /* the slot of token i + 16: memory latency bounds this loop */
            __builtin_prefetch(&t->vocab_tab[tok_hash_bytes(sa.ptr, sa.len) & t->vocab_mask], 1);
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
            int b = ty == TOKEN_NORMAL && c != UTF8_INVALID ? tok_cp_to_byte(c) : -1;
            if (b >= 0)
                t->piece[po++] = (char)b;
            else
                memcpy(t->piece + po, u + j, l), po += l;
            j += l;
        }
        size_t plen = po - t->piece_off[i];
        if (plen > t->max_piece) t->max_piece = plen;
        /* text -> id; the first of duplicate texts wins */
        uint64_t h = tok_hash_bytes(s.ptr, s.len) & t->vocab_mask;
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
    const char *s;  /* "LEFT RIGHT" */
    size_t len, ll; /* whole length, left part's length */
} MergeText;

static void prefetch_token(const Tokenizer *t, const char *s, size_t n) {
    uint64_t h = tok_hash_bytes(s, n) & t->vocab_mask;
    int32_t id = t->vocab_tab[h];
    if (id >= 0) __builtin_prefetch(t->text + t->text_off[id]);
}

static int load_merges(Tokenizer *t, const GGUFFile *f, char *err, size_t errlen) {
    GGUFArray m;
    int rc = gguf_get_arr(f, "tokenizer.ggml.merges", &m);
    if (rc != GGUF_OK || m.type != GGUF_TYPE_STRING)
        return fail(err, errlen, "tokenizer.ggml.merges: expected an array of strings, found %s",
                    rc == GGUF_ENOKEY ? "no such key"
                    : rc != GGUF_OK   ? "another type"
                                      : gguf_type_name(m.type));
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
                ret = fail(err, errlen,
                           "tokenizer.ggml.merges[%" PRIu64 "]: expected \"LEFT RIGHT\", found \"%.*s\"",
                           r0 + k, (int)(s.len > 64 ? 64 : s.len), s.ptr);
                goto out;
            }
            batch[k] = (MergeText){s.ptr, s.len, (size_t)(sp - s.ptr)};
            __builtin_prefetch(&t->vocab_tab[tok_hash_bytes(s.ptr, batch[k].ll) & t->vocab_mask]);
            __builtin_prefetch(
                &t->vocab_tab[tok_hash_bytes(sp + 1, s.len - batch[k].ll - 1) & t->vocab_mask]);
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
            int32_t a = tok_vocab_find(t, p, ll), b = tok_vocab_find(t, p + ll + 1, rl), ab = -1;
            guess = guess >= 0 && guess + 1 < t->n_vocab ? guess + 1 : -1;
            if (guess >= 0 && t->text_off[guess + 1] - t->text_off[guess] == ll + rl &&
                !memcmp(t->text + t->text_off[guess], buf, ll + rl) && !t->shadowed[guess])
                ab = guess;
            else
                ab = tok_vocab_find(t, buf, ll + rl);
            if (a < 0 || b < 0 || ab < 0) {
                ret = fail(err, errlen,
                           "tokenizer.ggml.merges[%" PRIu64 "] \"%.*s\": expected tokens in the vocabulary, "
                           "found no token \"%.*s\"",
                           r, (int)(batch[k].len > 64 ? 64 : batch[k].len), p,
                           (int)(a < 0   ? ll
                                 : b < 0 ? rl
                                         : ll + rl),
                           a < 0   ? p
                           : b < 0 ? p + ll + 1
                                   : buf);
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
            if (strlen(EOG_TEXTS[k]) == len && !memcmp(EOG_TEXTS[k], t->text + t->text_off[i], len))
                t->eog[i] = 1;
        if (len) n++;
    }
    t->special = malloc((n ? n : 1) * sizeof *t->special);
    if (!t->special) return TOKENIZER_ENOMEM;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->type[i] == TOKEN_CONTROL || t->type[i] == TOKEN_USER_DEFINED) &&
            t->text_off[i + 1] > t->text_off[i])
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
    if (!tok_unicode_init()) {
        if (errlen) snprintf(err, errlen, "tokenizer: out of memory");
        return TOKENIZER_ENOMEM;
    }
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
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     PRE_TYPES[i].name);
        if (rc == GGUF_OK)
            return fail(err, errlen,
                        "tokenizer.ggml.pre: expected one of %s, found \"%.*s\" (unsupported pre-tokenizer)",
                        names, (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
        return fail(err, errlen, "tokenizer.ggml.pre: expected one of %s, found %s", names,
                    rc == GGUF_ENOKEY ? "no such key" : "another type");
    }
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        if (errlen) snprintf(err, errlen, "tokenizer: out of memory");
        return TOKENIZER_ENOMEM;
    }
    t->pre = pt;
    if ((rc = load_vocab(t, f, err, errlen)) || (rc = load_merges(t, f, err, errlen)) ||
        (rc = load_specials(t, f, err, errlen)))
        goto fail;
    int missing = 0;
    for (unsigned b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t l = utf8_put(u, tok_byte_to_cp(b));
        t->byte_id[b] = tok_vocab_find(t, (const char *)u, l);
        missing += t->byte_id[b] < 0;
    }
    free(t->shadowed);
    t->shadowed = NULL;
    if (missing)
        log_info(
            "tokenizer: %d of 256 byte tokens missing from the vocabulary; those bytes encode to nothing",
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
    const uint8_t *norm;
    if (t->pre->nfc && !(flags & TOKENIZE_NO_NORMALIZE) && tok_nfc(s, n, sc, &norm, &n)) {
        if (!norm) return TOKENIZER_ENOMEM;
        s = norm;
    }
    for (size_t i = 0; i < n;) {
        size_t e = tok_pretok_next(t->pre, s, n, i);
        if (fn)
            fn(ctx, (const char *)s + i, e - i, -1);
        else if (!tok_bpe(t, s + i, e - i, o, sc))
            return TOKENIZER_ENOMEM;
        i = e;
    }
    return 0;
}

static void emit_special(const Tokenizer *t, int32_t id, Out *o, TokenizerPieceFn fn, void *ctx) {
    if (fn)
        fn(ctx, t->text + t->text_off[id], t->text_off[id + 1] - t->text_off[id], id);
    else
        out_push(o, id);
}

static int64_t encode(const Tokenizer *t, const char *text, size_t len, unsigned flags, Out *o,
                      TokenizerPieceFn fn, void *ctx) {
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

int64_t tokenizer_encode(const Tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *out,
                         size_t cap) {
    Out o = {out, out ? cap : 0, 0};
    return encode(t, text, len, flags, &o, NULL, NULL);
}

int tokenizer_split(const Tokenizer *t, const char *text, size_t len, unsigned flags, TokenizerPieceFn fn,
                    void *ctx) {
    Out o = {NULL, 0, 0};
    int64_t rc = encode(t, text, len, flags, &o, fn, ctx);
    return rc < 0 ? (int)rc : 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* decoding */

static bool piece_visible(const Tokenizer *t, int32_t id, unsigned flags) {
    switch (t->type[id]) {
    case TOKEN_CONTROL:
    case TOKEN_UNKNOWN:
        return flags & TOKENIZER_DECODE_SPECIAL;
    case TOKEN_UNUSED:
        return false;
    default:
        return true;
    }
}

int64_t tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char *out,
                         size_t cap) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return TOKENIZER_EINVAL;
        if (!piece_visible(t, ids[i], flags)) continue;
        size_t l = t->piece_off[ids[i] + 1] - t->piece_off[ids[i]];
        if (out && total < cap)
            memcpy(out + total, t->piece + t->piece_off[ids[i]], l < cap - total ? l : cap - total);
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
            if (lead == 0xE0)
                lo = 0xA0;
            else if (lead == 0xED)
                hi = 0x9F;
            else if (lead == 0xF0)
                lo = 0x90;
            else if (lead == 0xF4)
                hi = 0x8F;
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
    if (b < 0x80)
        d->buf[(*o)++] = (char)b;
    else if (b >= 0xC2 && b <= 0xDF)
        d->pend[0] = b, d->n_pend = 1, d->need = 2;
    else if (b >= 0xE0 && b <= 0xEF)
        d->pend[0] = b, d->n_pend = 1, d->need = 3;
    else if (b >= 0xF0 && b <= 0xF4)
        d->pend[0] = b, d->n_pend = 1, d->need = 4;
    else
        put_fffd(d, o);
}

const char *token_decoder_push(TokenDecoder *d, int32_t id, size_t *len) {
    const Tokenizer *t = d->tok;
    size_t o = 0;
    if (id >= 0 && id < t->n_vocab && piece_visible(t, id, d->flags)) {
        const uint8_t *p = (const uint8_t *)t->piece + t->piece_off[id];
        size_t n = t->piece_off[id + 1] - t->piece_off[id];
        for (size_t i = 0; i < n; i++) {
            if (p[i] < 0x80 && !d->n_pend)
                d->buf[o++] = (char)p[i]; /* fast path */
            else
                decoder_byte(d, p[i], &o);
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
    return tok_vocab_find(t, text, len);
}

size_t tokenizer_max_piece(const Tokenizer *t) {
    return t->max_piece;
}
