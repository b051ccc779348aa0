/*
 * libFuzzer target for the tokenizer: random bytes into encode (every flag combination), the
 * pre-tokenizer split, decode and the streaming decoder, and random token ids into the streaming decoder.
 * Checks beyond "no crash, no hang" (ASan/UBSan catch the rest):
 *  - encode reports the same count with and without room, never more than 3 * len + 1, all ids in range;
 *  - without normalization, decode(encode(x)) == x byte for byte (also with special tokens, decoded);
 *  - the split's pieces are non-empty and cover the text;
 *  - every chunk the streaming decoder returns is valid UTF-8 on its own, and for valid input the stream
 *    equals the input.
 * The model: $ORCD_FUZZ_MODEL, else models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf (run from the repo root).
 */
#include "../../src/gguf.h"
#include "../../src/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static GGUFFile *g_file;
static Tokenizer *g_tok;

#define CHECK_OR_DIE(c)                                                                                      \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "fuzz_tokenizer: check failed at line %d: %s\n", __LINE__, #c);                  \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *path = getenv("ORCD_FUZZ_MODEL");
    if (!path) path = "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
    char err[512];
    if (gguf_open(&g_file, path, err, sizeof err) != GGUF_OK ||
        tokenizer_load(&g_tok, g_file, err, sizeof err)) {
        fprintf(stderr, "fuzz_tokenizer: %s: %s (set ORCD_FUZZ_MODEL)\n", path, err);
        exit(1);
    }
    return 0;
}

/* Strict UTF-8 validity (no overlongs, surrogates or code points past U+10FFFF). */
static int valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (!k || i + k > n) return 0;
        if (k > 1) {
            uint8_t lo = c == 0xE0   ? 0xA0
                         : c == 0xF0 ? 0x90
                                     : 0x80,
                    hi = c == 0xED   ? 0x9F
                         : c == 0xF4 ? 0x8F
                                     : 0xBF;
            if (s[i + 1] < lo || s[i + 1] > hi) return 0;
            for (size_t j = 2; j < k; j++)
                if ((s[i + j] & 0xC0) != 0x80) return 0;
        }
        i += k;
    }
    return 1;
}

typedef struct Cover {
    size_t total;
    int empty;
} Cover;

static void on_piece(void *ctx, const char *piece, size_t len, int32_t special) {
    Cover *c = ctx;
    (void)piece, (void)special;
    c->total += len;
    c->empty |= len == 0;
}

/* Stream ids through a decoder; the whole output into out (cap bytes); returns its length. */
static size_t stream(const int32_t *ids, size_t n, unsigned flags, uint8_t *out, size_t cap) {
    TokenDecoder d;
    CHECK_OR_DIE(token_decoder_init(&d, g_tok, flags) == 0);
    size_t o = 0, len;
    for (size_t i = 0; i <= n; i++) {
        const char *p = i < n ? token_decoder_push(&d, ids[i], &len) : token_decoder_flush(&d, &len);
        CHECK_OR_DIE(valid_utf8((const uint8_t *)p, len));
        if (o + len <= cap) memcpy(out + o, p, len);
        o += len;
    }
    token_decoder_free(&d);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned mode = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    unsigned flags = mode & (TOKENIZE_PARSE_SPECIAL | TOKENIZE_ADD_BOS | TOKENIZE_NO_NORMALIZE);
    int32_t nv = tokenizer_n_vocab(g_tok);

    if (mode & 0x80) { /* the input is token ids for the streaming decoder */
        size_t n = len / 4;
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        size_t cap = n * (3 * tokenizer_max_piece(g_tok) + 8) + 8;
        uint8_t *out = malloc(cap);
        CHECK_OR_DIE(ids && out);
        for (size_t i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, text + 4 * i, 4);
            ids[i] =
                (v & 0x80000000u) ? (int32_t)v : (int32_t)(v % (uint32_t)(nv + 8)); /* some out of range */
        }
        size_t o = stream(ids, n, (mode & 1) ? TOKENIZER_DECODE_SPECIAL : 0, out, cap);
        CHECK_OR_DIE(o <= cap && valid_utf8(out, o));
        free(ids);
        free(out);
        return 0;
    }

    int64_t need = tokenizer_encode(g_tok, text, len, flags, NULL, 0);
    CHECK_OR_DIE(need >= 0 && (uint64_t)need <= 3 * (uint64_t)len + 1);
    int32_t *ids = malloc((size_t)(need ? need : 1) * sizeof *ids);
    CHECK_OR_DIE(ids);
    CHECK_OR_DIE(tokenizer_encode(g_tok, text, len, flags, ids, (size_t)need) == need);
    for (int64_t i = 0; i < need; i++) CHECK_OR_DIE(ids[i] >= 0 && ids[i] < nv);

    bool bos = (flags & TOKENIZE_ADD_BOS) && tokenizer_add_bos(g_tok);
    unsigned dflags = (flags & TOKENIZE_PARSE_SPECIAL) ? TOKENIZER_DECODE_SPECIAL : 0;
    int64_t dlen = tokenizer_decode(g_tok, ids, (size_t)need, dflags, NULL, 0);
    CHECK_OR_DIE(dlen >= 0);
    uint8_t *back = malloc((size_t)dlen + 1);
    CHECK_OR_DIE(back);
    CHECK_OR_DIE(tokenizer_decode(g_tok, ids, (size_t)need, dflags, (char *)back, (size_t)dlen) == dlen);
    if ((flags & TOKENIZE_NO_NORMALIZE) && !bos)
        CHECK_OR_DIE((size_t)dlen == len && !memcmp(back, text, len));

    Cover c = {0, 0};
    CHECK_OR_DIE(tokenizer_split(g_tok, text, len, flags & ~(unsigned)TOKENIZE_ADD_BOS, on_piece, &c) == 0);
    CHECK_OR_DIE(!c.empty);
    if (flags & TOKENIZE_NO_NORMALIZE) CHECK_OR_DIE(c.total == len);

    size_t cap = 3 * ((size_t)dlen + 4) + 8;
    uint8_t *out = malloc(cap);
    CHECK_OR_DIE(out);
    size_t o = stream(ids, (size_t)need, dflags, out, cap);
    CHECK_OR_DIE(o <= cap);
    if (valid_utf8(back, (size_t)dlen)) CHECK_OR_DIE(o == (size_t)dlen && !memcmp(out, back, o));
    free(out);
    free(back);
    free(ids);
    return 0;
}
