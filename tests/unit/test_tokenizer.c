/*
 * Unit tests of the tokenizer: the byte table, special-token matching, the streaming decoder's hold-back,
 * normalization, end-of-generation ids, output sizing, threads, and every load error (on GGUF files built
 * in memory here). Tests that need the real models ($ORCD_MODELS, default models/) skip without them;
 * the comparison with Hugging Face on thousands of strings is tests/python/test_tokenizer.py.
 */
#include "test.h"

#include "../../src/gguf.h"
#include "../../src/tokenizer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QWEN "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
#define SMOL "smollm2-135m-instruct-q4_1.gguf"

/* ---- helpers ---- */

typedef struct Loaded {
    GGUFFile *f;
    Tokenizer *t;
} Loaded;

/* Load a real model's tokenizer, or skip the test (returns 0). */
static int load_model(Loaded *l, const char *name) {
    const char *dir = getenv("ORCD_MODELS");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "models", name);
    l->f = NULL, l->t = NULL;
    if (gguf_open(&l->f, path, err, sizeof err) != GGUF_OK) {
        test_skip(err);
        return 0;
    }
    if (tokenizer_load(&l->t, l->f, err, sizeof err) != 0) {
        test_fail_at(__FILE__, __LINE__, "tokenizer_load(%s): %s", name, err);
        gguf_close(l->f);
        return 0;
    }
    return 1;
}

static void unload(Loaded *l) {
    tokenizer_free(l->t);
    gguf_close(l->f);
}

/* GPT-2's bytes_to_unicode, written independently of src/tokenizer.c: the code point standing for b. */
static unsigned ref_byte_cp(unsigned b) {
    unsigned n = 0;
    for (unsigned x = 0; x < 256; x++) {
        int printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE);
        if (x == b) return printable ? x : 256 + n;
        if (!printable) n++;
    }
    return 0;
}

static size_t put_utf8(char *o, unsigned c) {
    if (c < 0x80) return o[0] = (char)c, 1;
    o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F));
    return 2; /* the table's code points are all < 0x800 */
}

static int encode(const Tokenizer *t, const char *s, unsigned flags, int32_t *out, int cap) {
    int64_t n = tokenizer_encode(t, s, strlen(s), flags, out, (size_t)cap);
    return n > cap ? -1 : (int)n;
}

/* A GGUF file in memory: metadata only. */
typedef struct GB {
    uint8_t buf[1 << 16];
    size_t n;
    uint64_t n_kv;
} GB;

static void gb_raw(GB *g, const void *p, size_t n) {
    memcpy(g->buf + g->n, p, n);
    g->n += n;
}
static void gb_u32(GB *g, uint32_t v) {
    gb_raw(g, &v, 4);
}
static void gb_u64(GB *g, uint64_t v) {
    gb_raw(g, &v, 8);
}
static void gb_s(GB *g, const char *s) {
    gb_u64(g, strlen(s));
    gb_raw(g, s, strlen(s));
}
static void gb_key(GB *g, const char *k, uint32_t type) {
    gb_s(g, k);
    gb_u32(g, type);
    g->n_kv++;
}
static void gb_str(GB *g, const char *k, const char *v) {
    gb_key(g, k, GGUF_TYPE_STRING);
    gb_s(g, v);
}
static void gb_int(GB *g, const char *k, int32_t v) {
    gb_key(g, k, GGUF_TYPE_INT32);
    gb_raw(g, &v, 4);
}
static void gb_bool(GB *g, const char *k, int v) {
    uint8_t b = (uint8_t)v;
    gb_key(g, k, GGUF_TYPE_BOOL);
    gb_raw(g, &b, 1);
}
static void gb_strs(GB *g, const char *k, const char *const *v, size_t n) {
    gb_key(g, k, GGUF_TYPE_ARRAY);
    gb_u32(g, GGUF_TYPE_STRING);
    gb_u64(g, n);
    for (size_t i = 0; i < n; i++) gb_s(g, v[i]);
}
static void gb_i32s(GB *g, const char *k, const int32_t *v, size_t n) {
    gb_key(g, k, GGUF_TYPE_ARRAY);
    gb_u32(g, GGUF_TYPE_INT32);
    gb_u64(g, n);
    gb_raw(g, v, 4 * n);
}

/* Parse the built metadata (header prepended) and load a tokenizer from it; returns tokenizer_load's
 * code, the tokenizer in *out (NULL on failure) and the file in *f for the caller to close. */
static int gb_load(GB *g, GGUFFile **f, Tokenizer **out, char *err, size_t errlen) {
    static uint8_t file[sizeof g->buf + 32];
    size_t n = 0;
    memcpy(file, "GGUF", 4), n = 4;
    uint32_t ver = 3;
    uint64_t nt = 0;
    memcpy(file + n, &ver, 4), n += 4;
    memcpy(file + n, &nt, 8), n += 8;
    memcpy(file + n, &g->n_kv, 8), n += 8;
    memcpy(file + n, g->buf, g->n), n += g->n;
    *out = NULL;
    if (gguf_parse(f, file, n, err, errlen) != GGUF_OK) return 99;
    return tokenizer_load(out, *f, err, errlen);
}

/* A small valid vocabulary: a, b, ab, abb and three specials. */
static const char *const TINY_TOKENS[] = {"a", "b", "ab", "abb", "<s>", "<s><t>", "<t>", "Ġ"};
static const int32_t TINY_TYPES[] = {1, 1, 1, 1, 3, 3, 4, 1};
static const char *const TINY_MERGES[] = {"a b", "ab b"};

static void gb_tiny(GB *g, const char *pre) {
    memset(g, 0, sizeof *g);
    gb_str(g, "tokenizer.ggml.model", "gpt2");
    if (pre) gb_str(g, "tokenizer.ggml.pre", pre);
    gb_strs(g, "tokenizer.ggml.tokens", TINY_TOKENS, 8);
    gb_i32s(g, "tokenizer.ggml.token_type", TINY_TYPES, 8);
    gb_strs(g, "tokenizer.ggml.merges", TINY_MERGES, 2);
}

/* ---- the byte table ---- */

TEST(tokenizer_byte_table_both_ways) {
    Loaded l;
    if (!load_model(&l, QWEN)) return;
    unsigned seen[512] = {0};
    for (unsigned b = 0; b < 256; b++) {
        unsigned cp = ref_byte_cp(b);
        if (cp >= 512 || seen[cp]++) FAIL("byte %u: code point %u used twice", b, cp);
        char text[4];
        size_t n = put_utf8(text, cp);
        int32_t id = tokenizer_find(l.t, text, n);
        if (id < 0) FAIL("byte 0x%02x: no token \"%.*s\"", b, (int)n, text);
        size_t len;
        const char *p = tokenizer_piece(l.t, id, &len);
        if (len != 1 || (uint8_t)p[0] != b) FAIL("byte 0x%02x: token %d decodes to %zu bytes", b, id, len);
        int32_t out[4];
        char one[1] = {(char)b};
        int64_t k = tokenizer_encode(l.t, one, 1, TOKENIZE_NO_NORMALIZE, out, 4);
        if (k != 1 || out[0] != id)
            FAIL("byte 0x%02x encodes to %lld tokens, first %d, expected [%d]", b, (long long)k, out[0], id);
    }
    /* the two everyone checks: space is Ġ, newline is Ċ */
    ASSERT_EQ_INT(tokenizer_find(l.t, "\xC4\xA0", 2), 220);
    ASSERT_EQ_INT(tokenizer_find(l.t, "\xC4\x8A", 2), 198);
    unload(&l);
}

TEST(tokenizer_multibyte_pieces_are_bytes) {
    Loaded l;
    if (!load_model(&l, QWEN)) return;
    int32_t ids[16];
    int n = encode(l.t, "café 你好", 0, ids, 16);
    ASSERT(n > 0);
    char out[64];
    int64_t m = tokenizer_decode(l.t, ids, (size_t)n, 0, out, sizeof out);
    ASSERT_EQ_INT(m, strlen("café 你好"));
    out[m] = 0;
    ASSERT_EQ_STR(out, "café 你好"); /* no Ã© leaking out of the byte table */
    unload(&l);
}

/* ---- special tokens ---- */

TEST(tokenizer_special_tokens_only_when_asked) {
    Loaded l;
    if (!load_model(&l, QWEN)) return;
    const char *s = "<|im_start|>user\nhi<|im_end|>";
    int32_t ids[64];
    int n = encode(l.t, s, TOKENIZE_PARSE_SPECIAL, ids, 64);
    ASSERT_EQ_INT(n, 5);
    ASSERT_EQ_INT(ids[0], 151644);
    ASSERT_EQ_INT(ids[4], 151645);
    n = encode(l.t, s, 0, ids, 64);
    ASSERT(n > 5);
    for (int i = 0; i < n; i++)
        if (ids[i] >= 151643) FAIL("plain text gave special token %d at %d", ids[i], i);
    /* adjacent, partial and nested */
    n = encode(l.t, "<|im_end|><|im_end|><|im_end|", TOKENIZE_PARSE_SPECIAL, ids, 64);
    ASSERT(n > 2);
    ASSERT_EQ_INT(ids[0], 151645);
    ASSERT_EQ_INT(ids[1], 151645);
    ASSERT(ids[2] < 151643);
    n = encode(l.t, "<<|endoftext|>>", TOKENIZE_PARSE_SPECIAL, ids, 64);
    ASSERT_EQ_INT(n, 3);
    ASSERT_EQ_INT(ids[1], 151643);
    /* a user-defined token (type 4) counts as special */
    ASSERT_EQ_INT(tokenizer_token_type(l.t, 151657), TOKEN_USER_DEFINED);
    n = encode(l.t, "<tool_call>", TOKENIZE_PARSE_SPECIAL, ids, 64);
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_INT(ids[0], 151657);
    unload(&l);
}

TEST(tokenizer_special_longest_match_and_decode) {
    GB g;
    GGUFFile *f;
    Tokenizer *t;
    char err[256];
    gb_tiny(&g, "gpt2");
    ASSERT_EQ_INT(gb_load(&g, &f, &t, err, sizeof err), 0);
    int32_t ids[16];
    int n = encode(t, "<s><t>ab<s>abb<t>", TOKENIZE_PARSE_SPECIAL, ids, 16);
    int32_t want[] = {5, 2, 4, 3, 6}; /* <s><t> is longer than <s>; abb merges in rank order */
    ASSERT_EQ_INT(n, 5);
    for (int i = 0; i < 5; i++) ASSERT_EQ_INT(ids[i], want[i]);
    /* control tokens decode to nothing unless asked; user-defined ones always */
    char out[32];
    int64_t m = tokenizer_decode(t, ids, 5, 0, out, sizeof out);
    out[m] = 0;
    ASSERT_EQ_STR(out, "ababb<t>");
    m = tokenizer_decode(t, ids, 5, TOKENIZER_DECODE_SPECIAL, out, sizeof out);
    out[m] = 0;
    ASSERT_EQ_STR(out, "<s><t>ab<s>abb<t>");
    int32_t bad = 8;
    ASSERT_EQ_INT(tokenizer_decode(t, &bad, 1, 0, out, sizeof out), TOKENIZER_EINVAL);
    tokenizer_free(t);
    gguf_close(f);
}

TEST(tokenizer_add_bos_once) {
    GB g;
    GGUFFile *f;
    Tokenizer *t;
    char err[256];
    gb_tiny(&g, "gpt2");
    gb_int(&g, "tokenizer.ggml.bos_token_id", 4);
    gb_bool(&g, "tokenizer.ggml.add_bos_token", 1);
    ASSERT_EQ_INT(gb_load(&g, &f, &t, err, sizeof err), 0);
    ASSERT(tokenizer_add_bos(t));
    int32_t ids[8];
    ASSERT_EQ_INT(encode(t, "ab", TOKENIZE_ADD_BOS, ids, 8), 2);
    ASSERT_EQ_INT(ids[0], 4);
    ASSERT_EQ_INT(encode(t, "<s>ab", TOKENIZE_ADD_BOS | TOKENIZE_PARSE_SPECIAL, ids, 8), 2);
    ASSERT_EQ_INT(ids[0], 4);
    ASSERT_EQ_INT(encode(t, "ab", 0, ids, 8), 1);
    tokenizer_free(t);
    gguf_close(f);
}

/* ---- streaming decode ---- */

static int32_t byte_token(const Tokenizer *t, unsigned b) {
    char text[4];
    return tokenizer_find(t, text, put_utf8(text, ref_byte_cp(b)));
}

#define PUSH_EXPECT(d, id, want)                                                                             \
    do {                                                                                                     \
        size_t n_;                                                                                           \
        const char *p_ = token_decoder_push(d, id, &n_);                                                     \
        if (n_ != strlen(want) || memcmp(p_, want, n_))                                                      \
            FAIL("push %d: got \"%.*s\" (%zu bytes), want \"%s\"", (int)(id), (int)n_, p_, n_, want);        \
    } while (0)

TEST(tokenizer_stream_holds_back_split_emoji) {
    Loaded l;
    if (!load_model(&l, QWEN)) return;
    TokenDecoder d;
    ASSERT_EQ_INT(token_decoder_init(&d, l.t, 0), 0);
    const unsigned char emoji[] = {0xF0, 0x9F, 0x98, 0x80}; /* U+1F600 */
    PUSH_EXPECT(&d, tokenizer_find(l.t, "Hi", 2), "Hi");
    PUSH_EXPECT(&d, byte_token(l.t, emoji[0]), "");
    PUSH_EXPECT(&d, byte_token(l.t, emoji[1]), "");
    PUSH_EXPECT(&d, byte_token(l.t, emoji[2]), "");
    PUSH_EXPECT(&d, byte_token(l.t, emoji[3]), "\xF0\x9F\x98\x80");
    /* two tokens of two bytes each, the first ending mid-character */
    int32_t ids[8];
    int n = encode(l.t, " \xF0\x9F\x98\x80!", 0, ids, 8);
    ASSERT(n >= 2);
    size_t len, total = 0;
    char all[32];
    for (int i = 0; i < n; i++) {
        const char *p = token_decoder_push(&d, ids[i], &len);
        memcpy(all + total, p, len);
        total += len;
    }
    ASSERT_EQ_INT(total, 6);
    ASSERT(!memcmp(all, " \xF0\x9F\x98\x80!", 6));
    /* a sequence that cannot complete: U+FFFD once it is known, then the byte that broke it */
    PUSH_EXPECT(&d, byte_token(l.t, 0xE4), "");
    PUSH_EXPECT(&d, byte_token(l.t, 0xB8), "");
    PUSH_EXPECT(&d, tokenizer_find(l.t, "a", 1),
                "\xEF\xBF\xBD"
                "a");
    PUSH_EXPECT(&d, byte_token(l.t, 0xFF), "\xEF\xBF\xBD");
    PUSH_EXPECT(&d, byte_token(l.t, 0x80), "\xEF\xBF\xBD");
    PUSH_EXPECT(&d, byte_token(l.t, 0xE0), "");
    PUSH_EXPECT(&d, byte_token(l.t, 0x80), "\xEF\xBF\xBD\xEF\xBF\xBD"); /* E0 80 is overlong: two subparts */
    PUSH_EXPECT(&d, byte_token(l.t, 0xED), "");
    PUSH_EXPECT(&d, byte_token(l.t, 0xA0), "\xEF\xBF\xBD\xEF\xBF\xBD"); /* a surrogate */
    /* held at the end of the stream: flush gives U+FFFD and resets */
    PUSH_EXPECT(&d, byte_token(l.t, 0xF0), "");
    PUSH_EXPECT(&d, byte_token(l.t, 0x9F), "");
    size_t fl;
    const char *p = token_decoder_flush(&d, &fl);
    ASSERT(fl == 3 && !memcmp(p, "\xEF\xBF\xBD", 3));
    p = token_decoder_flush(&d, &fl);
    ASSERT_EQ_INT(fl, 0);
    /* ids out of range and control tokens decode to nothing */
    PUSH_EXPECT(&d, -1, "");
    PUSH_EXPECT(&d, tokenizer_n_vocab(l.t), "");
    PUSH_EXPECT(&d, 151645, "");
    token_decoder_free(&d);
    ASSERT_EQ_INT(token_decoder_init(&d, l.t, TOKENIZER_DECODE_SPECIAL), 0);
    PUSH_EXPECT(&d, 151645, "<|im_end|>");
    token_decoder_free(&d);
    unload(&l);
}

/* ---- normalization, end of generation, sizes ---- */

TEST(tokenizer_qwen2_normalizes_nfc) {
    Loaded l;
    if (!load_model(&l, QWEN)) return;
    int32_t a[8], b[8], c[8];
    int na = encode(l.t, "caf\xC3\xA9", 0, a, 8);  /* é precomposed */
    int nb = encode(l.t, "cafe\xCC\x81", 0, b, 8); /* e + combining acute */
    int nc = encode(l.t, "cafe\xCC\x81", TOKENIZE_NO_NORMALIZE, c, 8);
    ASSERT(na > 0 && na == nb);
    ASSERT(!memcmp(a, b, (size_t)na * sizeof *a));
    ASSERT(nc != na || memcmp(a, c, (size_t)na * sizeof *a));
    unload(&l);
}

TEST(tokenizer_end_of_generation_ids) {
    Loaded l;
    if (!load_model(&l, QWEN)) return;
    ASSERT_EQ_INT(tokenizer_n_vocab(l.t), 151936);
    ASSERT_EQ_INT(tokenizer_eos(l.t), 151645);
    ASSERT_EQ_INT(tokenizer_bos(l.t), 151643);
    ASSERT(!tokenizer_add_bos(l.t));
    ASSERT(tokenizer_is_eog(l.t, 151645)); /* <|im_end|> */
    ASSERT(tokenizer_is_eog(l.t, 151643)); /* <|endoftext|> */
    ASSERT(tokenizer_is_eog(l.t, 151664)); /* <|file_sep|> */
    ASSERT(!tokenizer_is_eog(l.t, 151644));
    ASSERT(!tokenizer_is_eog(l.t, 9707));
    ASSERT(!tokenizer_is_eog(l.t, -1));
    ASSERT(!tokenizer_is_eog(l.t, 151936));
    ASSERT_EQ_STR(tokenizer_pre_name(l.t), "qwen2");
    unload(&l);
    if (!load_model(&l, SMOL)) return;
    ASSERT_EQ_INT(tokenizer_n_vocab(l.t), 49152);
    ASSERT(tokenizer_is_eog(l.t, 2)); /* <|im_end|>, eos */
    ASSERT(tokenizer_is_eog(l.t, 0)); /* <|endoftext|> */
    ASSERT(!tokenizer_is_eog(l.t, 1));
    ASSERT_EQ_STR(tokenizer_pre_name(l.t), "smollm");
    unload(&l);
}

TEST(tokenizer_output_sizing) {
    Loaded l;
    if (!load_model(&l, QWEN)) return;
    const char *s = "one two three four five";
    int64_t need = tokenizer_encode(l.t, s, strlen(s), 0, NULL, 0);
    ASSERT_EQ_INT(need, 5);
    int32_t ids[8] = {-7, -7, -7, -7, -7, -7, -7, -7};
    ASSERT_EQ_INT(tokenizer_encode(l.t, s, strlen(s), 0, ids, 2), 5);
    ASSERT(ids[1] >= 0 && ids[2] == -7); /* no write past cap */
    ASSERT_EQ_INT(tokenizer_encode(l.t, "", 0, 0, ids, 8), 0);
    char out[4] = "xxx";
    ASSERT_EQ_INT(tokenizer_decode(l.t, ids, 2, 0, out, 2), 7); /* "one two": 7 bytes needed */
    ASSERT(out[2] == 'x');
    unload(&l);
}

typedef struct ThreadJob {
    const Tokenizer *t;
    int32_t ids[64][64];
    int n[64];
} ThreadJob;

static const char *thread_text(int i) {
    static const char *const texts[] = {
        "Hello world",         "naïve café",   "你好，世界",   "int main(void) { return 0; }",
        "e\xCC\x81\xCC\xA3 x", "   spaces   ", "😀👍🏽", "'s 'LL 123456"};
    return texts[i % 8];
}

static void *thread_main(void *arg) {
    ThreadJob *j = arg;
    for (int r = 0; r < 200; r++)
        for (int i = 0; i < 64; i++) {
            int32_t tmp[64];
            int64_t n = tokenizer_encode(j->t, thread_text(i), strlen(thread_text(i)), 0, tmp, 64);
            if (r == 0)
                j->n[i] = (int)n, memcpy(j->ids[i], tmp, sizeof tmp);
            else if (n != j->n[i] || memcmp(tmp, j->ids[i], (size_t)n * sizeof *tmp))
                j->n[i] = -1;
        }
    return NULL;
}

TEST(tokenizer_encode_from_threads) {
    Loaded l;
    if (!load_model(&l, QWEN)) return;
    static ThreadJob jobs[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        jobs[k].t = l.t;
        ASSERT_EQ_INT(pthread_create(&th[k], NULL, thread_main, &jobs[k]), 0);
    }
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    for (int i = 0; i < 64; i++) {
        int32_t want[64];
        int n = encode(l.t, thread_text(i), 0, want, 64);
        for (int k = 0; k < 4; k++) {
            if (jobs[k].n[i] != n || memcmp(jobs[k].ids[i], want, (size_t)n * sizeof *want))
                FAIL("thread %d, text %d: results differ from a single thread", k, i);
        }
    }
    unload(&l);
}

/* ---- load errors ---- */

static void expect_load_error(GB *g, const char *needle) {
    GGUFFile *f = NULL;
    Tokenizer *t = NULL;
    char err[256] = "";
    int rc = gb_load(g, &f, &t, err, sizeof err);
    if (rc != TOKENIZER_EFORMAT || t)
        test_fail_at(__FILE__, __LINE__, "load gave %d, want TOKENIZER_EFORMAT (%s)", rc, err);
    else if (!strstr(err, needle))
        test_fail_at(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", err, needle);
    tokenizer_free(t);
    gguf_close(f);
}

TEST(tokenizer_load_errors) {
    GB g;
    memset(&g, 0, sizeof g);
    gb_str(&g, "general.architecture", "llama");
    expect_load_error(&g, "tokenizer.ggml.model: expected \"gpt2\"");

    memset(&g, 0, sizeof g);
    gb_str(&g, "tokenizer.ggml.model", "llama");
    expect_load_error(&g, "found \"llama\"");

    gb_tiny(&g, NULL);
    expect_load_error(&g, "tokenizer.ggml.pre: expected one of qwen2, llama-bpe");

    gb_tiny(&g, "deepseek-coder");
    expect_load_error(&g, "found \"deepseek-coder\" (unsupported pre-tokenizer)");

    memset(&g, 0, sizeof g);
    gb_str(&g, "tokenizer.ggml.model", "gpt2");
    gb_str(&g, "tokenizer.ggml.pre", "qwen2");
    expect_load_error(&g, "tokenizer.ggml.tokens: expected an array of strings, found no such key");

    static const int32_t short_types[] = {1, 1};
    gb_tiny(&g, "qwen2");
    g.n = 0, g.n_kv = 0;
    gb_str(&g, "tokenizer.ggml.model", "gpt2");
    gb_str(&g, "tokenizer.ggml.pre", "qwen2");
    gb_strs(&g, "tokenizer.ggml.tokens", TINY_TOKENS, 8);
    gb_i32s(&g, "tokenizer.ggml.token_type", short_types, 2);
    expect_load_error(&g, "expected 8 entries (one per token), found 2");

    static const int32_t bad_types[] = {1, 1, 1, 1, 9, 3, 4, 1};
    g.n = 0, g.n_kv = 0;
    gb_str(&g, "tokenizer.ggml.model", "gpt2");
    gb_str(&g, "tokenizer.ggml.pre", "qwen2");
    gb_strs(&g, "tokenizer.ggml.tokens", TINY_TOKENS, 8);
    gb_i32s(&g, "tokenizer.ggml.token_type", bad_types, 8);
    expect_load_error(&g, "token_type[4]: expected 1..6, found 9");

    g.n = 0, g.n_kv = 0;
    gb_str(&g, "tokenizer.ggml.model", "gpt2");
    gb_str(&g, "tokenizer.ggml.pre", "qwen2");
    gb_strs(&g, "tokenizer.ggml.tokens", TINY_TOKENS, 8);
    expect_load_error(&g, "tokenizer.ggml.merges: expected an array of strings, found no such key");

    static const char *const bad_merge[] = {"a b", "ab c"};
    g.n = 0, g.n_kv = 0;
    gb_str(&g, "tokenizer.ggml.model", "gpt2");
    gb_str(&g, "tokenizer.ggml.pre", "qwen2");
    gb_strs(&g, "tokenizer.ggml.tokens", TINY_TOKENS, 8);
    gb_strs(&g, "tokenizer.ggml.merges", bad_merge, 2);
    expect_load_error(&g, "merges[1] \"ab c\": expected tokens in the vocabulary, found no token \"c\"");

    static const char *const no_space[] = {"ab"};
    g.n = 0, g.n_kv = 0;
    gb_str(&g, "tokenizer.ggml.model", "gpt2");
    gb_str(&g, "tokenizer.ggml.pre", "qwen2");
    gb_strs(&g, "tokenizer.ggml.tokens", TINY_TOKENS, 8);
    gb_strs(&g, "tokenizer.ggml.merges", no_space, 1);
    expect_load_error(&g, "merges[0]: expected \"LEFT RIGHT\", found \"ab\"");

    gb_tiny(&g, "smollm");
    gb_str(&g, "tokenizer.ggml.bos_token_id", "1");
    expect_load_error(&g, "tokenizer.ggml.bos_token_id: expected an integer token id");
}

TEST(tokenizer_out_of_range_special_ids_are_ignored) {
    GB g;
    GGUFFile *f;
    Tokenizer *t;
    char err[256];
    gb_tiny(&g, "smollm");
    gb_int(&g, "tokenizer.ggml.bos_token_id", 100);
    gb_int(&g, "tokenizer.ggml.eos_token_id", -1);
    gb_bool(&g, "tokenizer.ggml.add_bos_token", 1);
    ASSERT_EQ_INT(gb_load(&g, &f, &t, err, sizeof err), 0);
    ASSERT_EQ_INT(tokenizer_bos(t), -1);
    ASSERT_EQ_INT(tokenizer_eos(t), -1);
    ASSERT(!tokenizer_add_bos(t));
    int32_t ids[4];
    ASSERT_EQ_INT(encode(t, "ab", TOKENIZE_ADD_BOS, ids, 4), 1);
    tokenizer_free(t);
    gguf_close(f);
}
