/*
 * model: the architecture table and the GGUF-key-to-Config mapping (the only place that knows the
 * "{arch}.embedding_length" style names). Every value is checked: a file that parses can still describe an
 * impossible network.
 */
#include "model.h"

#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const ArchInfo ARCHS[] = {
    {"qwen2", ROPE_NEOX, true},
    {"llama", ROPE_NORM, false},
    {NULL, ROPE_NORM, false},
};

typedef struct Ctx {
    const GGUFFile *f;
    const char *arch;
    char *err;
    size_t errlen;
} Ctx;

/* Read "{arch}.{suffix}" as an integer in [lo, hi]; `def` < 0 means required. */
static int get_int(Ctx *x, const char *suffix, long long def, long long lo, long long hi, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", x->arch, suffix);
    int64_t v;
    int rc = gguf_get_int(x->f, key, &v);
    if (rc == GGUF_ENOKEY && def >= 0) {
        *out = (int)def;
        return 0;
    }
    if (rc == GGUF_ENOKEY) return snprintf(x->err, x->errlen, "missing metadata key %s", key), -1;
    if (rc == GGUF_ERANGE) v = INT64_MAX; /* a uint64 past INT64_MAX: out of any range below */
    else if (rc) {
        const GGUFKV *kv = gguf_find(x->f, key);
        snprintf(x->err, x->errlen, "%s: expected an integer, found %s", key, gguf_type_name(kv->type));
        return -1;
    }
    if (v < lo || v > hi) {
        snprintf(x->err, x->errlen, "%s: expected %lld..%lld, found %lld", key, lo, hi, (long long)v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int get_float(Ctx *x, const char *suffix, double def, double lo, double hi, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", x->arch, suffix);
    double v;
    int rc = gguf_get_float(x->f, key, &v);
    if (rc == GGUF_ENOKEY) {
        *out = (float)def;
        return 0;
    }
    if (rc) {
        const GGUFKV *kv = gguf_find(x->f, key);
        snprintf(x->err, x->errlen, "%s: expected a number, found %s", key, gguf_type_name(kv->type));
        return -1;
    }
    if (!(v >= lo && v <= hi)) { /* also catches NaN */
        snprintf(x->err, x->errlen, "%s: expected %g..%g, found %g", key, lo, hi, v);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int model_config(Config *c, const GGUFFile *f, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    GGUFStr a;
    if (gguf_get_str(f, "general.architecture", &a) != GGUF_OK) {
        snprintf(err, errlen, "general.architecture: expected a string naming the architecture");
        return -1;
    }
    for (const ArchInfo *ai = ARCHS; ai->name; ai++)
        if (gguf_str_eq(a, ai->name)) c->arch = ai;
    if (!c->arch) {
        snprintf(err, errlen, "unsupported architecture \"%.*s\": expected qwen2 or llama",
                 (int)(a.len > 64 ? 64 : a.len), a.ptr);
        return -1;
    }
    Ctx x = {f, c->arch->name, err, errlen};
    const int BIG = 1 << 20;
    if (get_int(&x, "embedding_length", -1, 1, BIG, &c->dim)) return -1;
    if (get_int(&x, "feed_forward_length", -1, 1, BIG, &c->hidden_dim)) return -1;
    if (get_int(&x, "block_count", -1, 1, 4096, &c->n_layers)) return -1;
    if (get_int(&x, "attention.head_count", -1, 1, 4096, &c->n_heads)) return -1;
    if (get_int(&x, "attention.head_count_kv", c->n_heads, 1, c->n_heads, &c->n_kv_heads)) return -1;
    if (c->n_heads % c->n_kv_heads) {
        snprintf(err, errlen, "%s.attention.head_count_kv: expected a divisor of head_count %d, found %d",
                 x.arch, c->n_heads, c->n_kv_heads);
        return -1;
    }
    if (get_int(&x, "attention.key_length", c->dim / c->n_heads, 1, BIG, &c->head_dim)) return -1;
    if (c->head_dim % 2) {
        snprintf(err, errlen, "%s: head_dim must be even for RoPE, found %d", x.arch, c->head_dim);
        return -1;
    }
    if (get_int(&x, "rope.dimension_count", c->head_dim, 2, c->head_dim, &c->rope_dim)) return -1;
    if (get_int(&x, "context_length", -1, 1, 1 << 24, &c->n_ctx)) return -1;
    if (get_float(&x, "rope.freq_base", 10000.0, 1.0, 1e12, &c->rope_theta)) return -1;
    if (get_float(&x, "attention.layer_norm_rms_epsilon", 1e-5, 0.0, 1.0, &c->norm_eps)) return -1;

    /* vocab_size: the rows of token_embd are the truth; the metadata, where present, must agree. */
    const GGUFTensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb || emb->n_dims != 2 || emb->ne[0] != (uint64_t)c->dim || emb->ne[1] > (uint64_t)BIG * 4) {
        if (!emb) snprintf(err, errlen, "missing tensor token_embd.weight");
        else
            snprintf(err, errlen, "token_embd.weight: expected shape [%d, vocab_size], found %u dims [%llu, %llu]",
                     c->dim, emb->n_dims, (unsigned long long)emb->ne[0], (unsigned long long)emb->ne[1]);
        return -1;
    }
    c->vocab_size = (int)emb->ne[1];
    int meta_vocab;
    if (get_int(&x, "vocab_size", c->vocab_size, 1, BIG * 4, &meta_vocab)) return -1;
    if (meta_vocab != c->vocab_size) {
        snprintf(err, errlen, "%s.vocab_size: expected %d (the rows of token_embd.weight), found %d", x.arch,
                 c->vocab_size, meta_vocab);
        return -1;
    }
    c->tied_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* weights */

/* Bind `name` as a (cols,) vector when rows == 0, else a (cols, rows) matrix. F32 only when f32_only. */
static int bind(Tensor *t, const GGUFFile *f, const char *name, int64_t cols, int64_t rows, bool f32_only,
                char *err, size_t errlen) {
    const GGUFTensor *g = gguf_find_tensor(f, name);
    if (!g) return snprintf(err, errlen, "missing tensor %s", name), -1;
    uint32_t want_dims = rows ? 2 : 1;
    bool ok = g->n_dims == want_dims && g->ne[0] == (uint64_t)cols && (!rows || g->ne[1] == (uint64_t)rows);
    if (!ok) {
        char want[64], found[96];
        if (rows) snprintf(want, sizeof want, "[%lld, %lld]", (long long)cols, (long long)rows);
        else snprintf(want, sizeof want, "[%lld]", (long long)cols);
        size_t o = (size_t)snprintf(found, sizeof found, "[");
        for (uint32_t d = 0; d < g->n_dims; d++)
            o += (size_t)snprintf(found + o, sizeof found - o, "%s%llu", d ? ", " : "", (unsigned long long)g->ne[d]);
        snprintf(found + o, sizeof found - o, "]");
        snprintf(err, errlen, "%s: expected shape %s, found %s", name, want, found);
        return -1;
    }
    if (f32_only && g->type != QT_F32) {
        snprintf(err, errlen, "%s: expected type F32, found %s", name, quant_name(g->type));
        return -1;
    }
    t->type = g->type;
    t->ne[0] = (int64_t)g->ne[0];
    t->ne[1] = rows ? (int64_t)g->ne[1] : 1;
    t->data = g->data;
    t->nbytes = g->nbytes;
    return 0;
}

int model_weights(Weights *w, const Config *c, const GGUFFile *f, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    const int64_t dim = c->dim, q_dim = (int64_t)c->n_heads * c->head_dim,
                  kv_dim = (int64_t)c->n_kv_heads * c->head_dim, hid = c->hidden_dim, vocab = c->vocab_size;
    if (bind(&w->token_embd, f, "token_embd.weight", dim, vocab, false, err, errlen)) return -1;
    if (bind(&w->output_norm, f, "output_norm.weight", dim, 0, true, err, errlen)) return -1;
    if (c->tied_embeddings) w->output = w->token_embd;
    else if (bind(&w->output, f, "output.weight", dim, vocab, false, err, errlen)) return -1;
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) return snprintf(err, errlen, "out of memory"), -1;
    for (int l = 0; l < c->n_layers; l++) {
        LayerWeights *L = &w->layers[l];
        char n[96];
#define BIND(field, suffix, cols, rows, f32)                                                               \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                                                         \
    if (bind(&L->field, f, n, cols, rows, f32, err, errlen)) goto fail;
        BIND(attn_norm, "attn_norm.weight", dim, 0, true)
        BIND(wq, "attn_q.weight", dim, q_dim, false)
        BIND(wk, "attn_k.weight", dim, kv_dim, false)
        BIND(wv, "attn_v.weight", dim, kv_dim, false)
        if (c->arch->qkv_bias) {
            BIND(bq, "attn_q.bias", q_dim, 0, true)
            BIND(bk, "attn_k.bias", kv_dim, 0, true)
            BIND(bv, "attn_v.bias", kv_dim, 0, true)
        }
        BIND(wo, "attn_output.weight", q_dim, dim, false)
        BIND(ffn_norm, "ffn_norm.weight", dim, 0, true)
        BIND(w_gate, "ffn_gate.weight", dim, hid, false)
        BIND(w_up, "ffn_up.weight", dim, hid, false)
        BIND(w_down, "ffn_down.weight", hid, dim, false)
#undef BIND
    }
    return 0;
fail:
    model_weights_free(w);
    return -1;
}

void model_weights_free(Weights *w) {
    free(w->layers);
    w->layers = NULL;
}

/* ---------------------------------------------------------------------------------------------------- */

Model *model_open(const char *path, char *err, size_t errlen) {
    Model *m = calloc(1, sizeof *m);
    if (!m) return snprintf(err, errlen, "out of memory"), NULL;
    if (gguf_open(&m->file, path, err, errlen) != GGUF_OK) goto fail;
    if (model_config(&m->config, m->file, err, errlen)) goto fail;
    if (model_weights(&m->weights, &m->config, m->file, err, errlen)) goto fail;
    return m;
fail:
    model_close(m);
    return NULL;
}

void model_close(Model *m) {
    if (!m) return;
    model_weights_free(&m->weights);
    gguf_close(m->file);
    free(m);
}
