/*
 * Tests of the GGUF parser: typed lookups on a known file, the malformed corpus (each file rejected with
 * its own message), truncation at every byte, and the real models. Files are read into buffers of their
 * exact size so that AddressSanitizer (make test SAN=1) catches any read past the end.
 *
 * Data: ORCD_CORPUS (written by tests/gguf/make_corpus.py) and ORCD_MODELS (make model).
 */
#define _POSIX_C_SOURCE 200809L
#include "../../src/gguf.h"
#include "../../src/model.h"
#include "../../src/quant.h"
#include "test.h"

#include <stdlib.h>

/* ---------------------------------------------------------------------------------------------------- */
/* helpers */

typedef struct Buf {
    uint8_t *data;
    size_t size;
} Buf;

static Buf read_file(const char *path) {
    Buf b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f) return b;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(n > 0 ? (size_t)n : 1);
    if (b.data && n > 0 && fread(b.data, 1, (size_t)n, f) != (size_t)n) {
        free(b.data);
        b.data = NULL;
    }
    b.size = n > 0 ? (size_t)n : 0;
    fclose(f);
    return b;
}

static const char *corpus_path(char *buf, size_t n, const char *file) {
    const char *dir = getenv("ORCD_CORPUS");
    if (!dir) return NULL;
    snprintf(buf, n, "%s/%s", dir, file);
    return buf;
}

/* Parse a copy of b's first `size` bytes in a buffer of exactly that size. */
static int parse_exact(const Buf *b, size_t size, GGUFFile **f, char *err, size_t errlen) {
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, b->data, size);
    int rc = gguf_parse(f, copy, size, err, errlen);
    if (rc == GGUF_OK) {
        gguf_close(*f);
        *f = NULL;
    }
    free(copy);
    return rc;
}

/* 0 if the int32 array holds 1, 2, 3, ... and index n is out of range. */
static int load_check_i32(const GGUFArray *a) {
    for (uint64_t k = 0; k < a->n; k++) {
        int64_t v;
        if (gguf_arr_int(a, k, &v) != GGUF_OK || v != (int64_t)k + 1) return -1;
    }
    int64_t v;
    return gguf_arr_int(a, a->n, &v) == GGUF_ERANGE ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------------- */

TEST(gguf_lookups) {
    char path[512], err[512];
    if (!corpus_path(path, sizeof path, "valid.gguf")) return test_skip("ORCD_CORPUS not set");
    GGUFFile *f;
    int rc = gguf_open(&f, path, err, sizeof err);
    if (rc) FAIL("gguf_open: %d %s", rc, err);

    ASSERT_EQ_INT(f->version, 3);
    ASSERT_EQ_INT(f->n_tensors, 4);
    ASSERT_EQ_INT(f->alignment, 32);
    int64_t i;
    double d;
    bool b;
    GGUFStr s;
    ASSERT_EQ_INT(gguf_get_int(f, "test.u8", &i), GGUF_OK);
    ASSERT_EQ_INT(i, 200);
    ASSERT_EQ_INT(gguf_get_int(f, "test.i8", &i), GGUF_OK);
    ASSERT_EQ_INT(i, -5);
    ASSERT_EQ_INT(gguf_get_int(f, "test.u16", &i), GGUF_OK);
    ASSERT_EQ_INT(i, 60000);
    ASSERT_EQ_INT(gguf_get_int(f, "test.i16", &i), GGUF_OK);
    ASSERT_EQ_INT(i, -30000);
    ASSERT_EQ_INT(gguf_get_int(f, "test.i32", &i), GGUF_OK);
    ASSERT_EQ_INT(i, -2000000000);
    ASSERT_EQ_INT(gguf_get_int(f, "test.i64", &i), GGUF_OK);
    ASSERT_EQ_INT(i, -(1ll << 40));
    ASSERT_EQ_INT(gguf_get_int(f, "test.u64", &i), GGUF_ERANGE); /* 2^63 + 5 */
    uint32_t u;
    ASSERT_EQ_INT(gguf_get_u32(f, "qwen2.block_count", &u), GGUF_OK);
    ASSERT_EQ_INT(u, 1);
    ASSERT_EQ_INT(gguf_get_u32(f, "test.i8", &u), GGUF_ERANGE);
    ASSERT_EQ_INT(gguf_get_float(f, "test.f64", &d), GGUF_OK);
    ASSERT_NEAR(d, 0.25, 0);
    ASSERT_EQ_INT(gguf_get_float(f, "qwen2.rope.freq_base", &d), GGUF_OK);
    ASSERT_NEAR(d, 1e6, 0);
    ASSERT_EQ_INT(gguf_get_bool(f, "test.bool", &b), GGUF_OK);
    ASSERT(b);
    ASSERT_EQ_INT(gguf_get_str(f, "general.name", &s), GGUF_OK);
    ASSERT(gguf_str_eq(s, "corpus"));
    /* wrong types and missing keys */
    ASSERT_EQ_INT(gguf_get_int(f, "general.name", &i), GGUF_ETYPE);
    ASSERT_EQ_INT(gguf_get_str(f, "test.u8", &s), GGUF_ETYPE);
    ASSERT_EQ_INT(gguf_get_bool(f, "test.u8", &b), GGUF_ETYPE);
    ASSERT_EQ_INT(gguf_get_int(f, "test.bool", &i), GGUF_ETYPE);
    ASSERT_EQ_INT(gguf_get_int(f, "no.such.key", &i), GGUF_ENOKEY);
    ASSERT(gguf_find(f, "general") == NULL);

    /* arrays: strings in order, nested arrays, ranges */
    GGUFArray a;
    ASSERT_EQ_INT(gguf_get_arr(f, "tokenizer.ggml.tokens", &a), GGUF_OK);
    ASSERT_EQ_INT(a.type, GGUF_TYPE_STRING);
    ASSERT_EQ_INT(a.n, 4);
    GGUFStrIter it = gguf_str_iter(&a);
    const char *want[] = {"a", "b", "c", "d"};
    for (int k = 0; k < 4; k++) {
        ASSERT(gguf_str_next(&it, &s));
        ASSERT(gguf_str_eq(s, want[k]));
    }
    ASSERT(!gguf_str_next(&it, &s));
    ASSERT_EQ_INT(gguf_arr_int(&a, 0, &i), GGUF_ETYPE);
    ASSERT_EQ_INT(gguf_get_arr(f, "test.nested", &a), GGUF_OK);
    ASSERT_EQ_INT(a.type, GGUF_TYPE_ARRAY);
    ASSERT_EQ_INT(a.n, 3);
    /* the first nested element is [int32 x 3]: 4 (type) + 8 (count) + 12 bytes */
    GGUFArray inner = {GGUF_TYPE_INT32, 3, a.data + 12, 12};
    ASSERT_EQ_INT(load_check_i32(&inner), 0);

    /* tensors */
    const GGUFTensor *t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    ASSERT(t != NULL);
    ASSERT_EQ_INT(t->type, QT_Q4_K);
    ASSERT_EQ_INT(t->n_dims, 2);
    ASSERT_EQ_INT(t->ne[0], 512);
    ASSERT_EQ_INT(t->ne[1], 256);
    ASSERT_EQ_INT(t->ne[2], 1);
    ASSERT_EQ_INT(t->n_elems, 512 * 256);
    ASSERT_EQ_INT(t->nbytes, 512 / 256 * 144 * 256);
    ASSERT((const uint8_t *)t->data == f->base + f->data_offset + t->offset);
    ASSERT_EQ_INT(f->data_offset % 32, 0);
    ASSERT(gguf_find_tensor(f, "blk.0.ffn_down") == NULL);
    gguf_close(f);
}

TEST(gguf_corpus_each_rejected_with_its_message) {
    char path[2048], line[1024], err[512];
    if (!corpus_path(path, sizeof path, "manifest.tsv")) return test_skip("ORCD_CORPUS not set");
    FILE *m = fopen(path, "r");
    if (!m) FAIL("cannot open %s", path);
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, m)) {
        /* file<TAB>expect<TAB>what; expect may be empty (any message) */
        char *file = line, *expect = strchr(line, '\t'), *end;
        if (!expect || !(end = strchr(expect + 1, '\t'))) continue;
        *expect++ = 0;
        *end = 0;
        Buf b = read_file(corpus_path(path, sizeof path, file));
        if (!b.data) FAIL("cannot read %s", path);
        GGUFFile *f = NULL;
        int rc = parse_exact(&b, b.size, &f, err, sizeof err);
        free(b.data);
        n++;
        if (!strcmp(expect, "ok")) {
            if (rc != GGUF_OK) fprintf(stderr, "  %s: expected to load, got %d: %s\n", file, rc, err), bad++;
        } else if (rc != GGUF_EFORMAT || !err[0] || !strstr(err, expect)) {
            fprintf(stderr, "  %s: expected GGUF_EFORMAT with \"%s\", got %d: \"%s\"\n", file, expect, rc, err);
            bad++;
        }
    }
    fclose(m);
    ASSERT(n >= 30);
    ASSERT_EQ_INT(bad, 0);
}

TEST(gguf_truncated_at_every_byte) {
    char path[512], err[512];
    if (!corpus_path(path, sizeof path, "valid.gguf")) return test_skip("ORCD_CORPUS not set");
    Buf b = read_file(path);
    if (!b.data) FAIL("cannot read %s", path);
    GGUFFile *f;
    ASSERT_EQ_INT(parse_exact(&b, b.size, &f, err, sizeof err), GGUF_OK);
    for (size_t cut = 0; cut < b.size; cut++) {
        err[0] = 0;
        int rc = parse_exact(&b, cut, &f, err, sizeof err);
        if (rc != GGUF_EFORMAT || !err[0]) {
            free(b.data);
            FAIL("cut at %zu of %zu: expected GGUF_EFORMAT and a message, got %d \"%s\"", cut, b.size, rc, err);
        }
    }
    free(b.data);
}

TEST(gguf_open_errors) {
    char err[512];
    GGUFFile *f = (GGUFFile *)1;
    ASSERT_EQ_INT(gguf_open(&f, "/nonexistent/model.gguf", err, sizeof err), GGUF_EIO);
    ASSERT(f == NULL);
    ASSERT_CONTAINS(err, "No such file");
    ASSERT_EQ_INT(gguf_open(&f, "/", err, sizeof err), GGUF_EIO);
    ASSERT_CONTAINS(err, "expected a regular file");
    /* a message longer than the caller's buffer is cut, never overrun */
    char tiny[8];
    ASSERT_EQ_INT(gguf_open(&f, "/nonexistent/model.gguf", tiny, sizeof tiny), GGUF_EIO);
    ASSERT_EQ_INT(strlen(tiny), 7);
}

/* ---------------------------------------------------------------------------------------------------- */
/* the real models (make model) */

typedef struct RealModel {
    const char *file;
    uint64_t n_kv, n_tensors;
    const char *arch;
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, vocab_size, n_ctx;
    double rope_theta, norm_eps;
    bool tied;
} RealModel;

static const RealModel REAL[] = {
    {"qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 26, 291, "qwen2", 896, 4864, 24, 14, 2, 64, 151936, 32768, 1e6,
     1e-6, false},
    {"smollm2-135m-instruct-q4_1.gguf", 33, 272, "llama", 576, 1536, 30, 9, 3, 64, 49152, 8192, 1e5, 1e-5, true},
};

TEST(gguf_real_models) {
    const char *dir = getenv("ORCD_MODELS");
    if (!dir) return test_skip("ORCD_MODELS not set");
    for (size_t k = 0; k < sizeof REAL / sizeof REAL[0]; k++) {
        const RealModel *r = &REAL[k];
        char path[512], err[512];
        snprintf(path, sizeof path, "%s/%s", dir, r->file);
        GGUFFile *f;
        int rc = gguf_open(&f, path, err, sizeof err);
        if (rc) FAIL("%s: %s", path, err);
        ASSERT_EQ_INT(f->n_kv, r->n_kv);
        ASSERT_EQ_INT(f->n_tensors, r->n_tensors);
        Config c;
        rc = model_config(&c, f, err, sizeof err);
        if (rc) {
            gguf_close(f);
            FAIL("%s: model_config: %s", r->file, err);
        }
        ASSERT_EQ_STR(c.arch->name, r->arch);
        ASSERT_EQ_INT(c.dim, r->dim);
        ASSERT_EQ_INT(c.hidden_dim, r->hidden_dim);
        ASSERT_EQ_INT(c.n_layers, r->n_layers);
        ASSERT_EQ_INT(c.n_heads, r->n_heads);
        ASSERT_EQ_INT(c.n_kv_heads, r->n_kv_heads);
        ASSERT_EQ_INT(c.head_dim, r->head_dim);
        ASSERT_EQ_INT(c.vocab_size, r->vocab_size);
        ASSERT_EQ_INT(c.n_ctx, r->n_ctx);
        ASSERT_NEAR(c.rope_theta, r->rope_theta, 1e-3 * r->rope_theta);
        ASSERT_NEAR(c.norm_eps, r->norm_eps, 1e-3 * r->norm_eps);
        ASSERT_EQ_INT(c.tied_embeddings, r->tied);
        /* every tensor: data inside the file, sizes as the type table says */
        uint64_t total = 0;
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const GGUFTensor *t = &f->tensors[i];
            const QuantTraits *q = quant_traits(t->type);
            ASSERT(q != NULL);
            ASSERT_EQ_INT(t->nbytes, t->n_elems / q->block_elems * q->block_bytes);
            ASSERT((const uint8_t *)t->data + t->nbytes <= f->base + f->size);
            total += t->nbytes;
        }
        ASSERT(total <= f->size - f->data_offset);
        gguf_close(f);
    }
}

TEST(quant_traits_table) {
    ASSERT(quant_traits(QT_Q8_1) == NULL); /* in-memory only */
    ASSERT(quant_traits(4) == NULL);       /* retired */
    ASSERT(quant_traits(QT_COUNT) == NULL);
    ASSERT(quant_traits(0xffffffffu) == NULL);
    ASSERT_EQ_STR(quant_name(QT_Q4_K), "Q4_K");
    ASSERT_EQ_STR(quant_name(4), "?");
    ASSERT_EQ_INT(quant_traits(QT_Q6_K)->block_bytes, 210);
    ASSERT_EQ_INT(quant_traits(QT_BF16)->block_elems, 1);
}
