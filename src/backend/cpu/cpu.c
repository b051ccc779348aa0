/*
 * The CPU backend: the forward pass over a batch of (sequence, token, position) entries, with the weights
 * used in place in the file's mapping (dequantized inside the dot products, never converted up front),
 * threads from pool.c, and keys/values in a paged fp32 store.
 *
 * Matrix products: activations are quantized to BlockQ8A once per product input (with the norm or SwiGLU
 * that makes them, per entry). Entries that only fill the KV cache (a prompt but its last token) go through
 * quant_matmul's tile kernels, 64 at a time over each thread's rows (prefill is a matrix-matrix pass);
 * entries that want logits (decode steps, a prompt's last token, the LM head) through the one-row kernels
 * of quant_gemv, the fastest for a lone entry. The split depends on each entry alone, so a sequence gets
 * the same logits bit for bit alone or in a batch.
 *
 * Attention: one task per (entry, kv head) walks the sequence's pages once for the query heads sharing
 * that kv head (vec.c's AVX2 loops); the store keeps each kv head's page contiguous.
 *
 * Not here: scheduling (engine), sampling (sampler). The CUDA forward mirrors this one step for step.
 */
#include "../../log.h"
#include "../../quant.h"
#include "../backend.h"
#include "vec.h"
#include "ops.h"
#include "../../pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROWS_PER_TASK 16
#define TOKENS_PER_PASS 64
#ifndef TASKS_PER_THREAD
#define TASKS_PER_THREAD 8
#endif
/* one entry (decode): fewer, longer runs of rows per thread stream better (measured 53 -> 55 tok/s) */
#define TASKS_PER_THREAD_ONE 2

typedef struct CpuBackend {
    Backend base;
    const Config *c;
    const Weights *w;
    Pool *pool;
    int q_dim, kv_dim;
    float *inv_freq;          /* (rope_dim/2,) */
    float *k_store, *v_store; /* (n_layers, n_pages, n_kv_heads, page_size, head_dim) keys after RoPE, values */
    /* scratch for max_batch = T entries */
    float *x;                 /* (T, dim) residual stream */
    float *xb;                /* (T, max(dim, q_dim)) a branch's normed input, then attention output */
    float *q;                 /* (T, q_dim) */
    float *k, *v;             /* (T, kv_dim) */
    float *hb, *hb2;          /* (T, hidden_dim) FFN gate and up */
    float *proj;              /* (T, dim) a branch's output before the residual add */
    BlockQ8A *xq;             /* (T, max(dim, q_dim, hidden_dim) / 32) quantized product input */
    float *wrow;              /* (n_threads, max(dim, q_dim, hidden_dim)) dequantized weight rows (exact mode) */
    int widest_in;
    float *att;               /* (n_threads, heads per kv head, n_pages * page_size) attention scores */
    float *logits;            /* (n_slots, vocab) forward_argmax's logits */
    VecKernels vk;            /* attention and SwiGLU inner loops (AVX2 or portable) */
} CpuBackend;

/* ---------------------------------------------------------------------------------------------------- */
/* matrix products */

/* fp32 dot with 8 independent partial sums (vectorizable), combined in double. */
static float dot_f32(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int u = 0; u < 8; u++) acc[u] += a[k + u] * b[k + u];
    double sum = 0;
    for (int u = 0; u < 8; u++) sum += acc[u];
    for (; k < n; k++) sum += (double)a[k] * b[k];
    return (float)sum;
}

static int is_float_type(uint32_t t) {
    return t == QT_F32 || t == QT_F16 || t == QT_BF16;
}

typedef struct MatmulJob {
    const CpuBackend *s;
    int64_t rows_per_task;
    float *y;           /* (T, rows) */
    const float *x;     /* (T, cols) */
    const BlockQ8A *xq; /* (T, cols/32) or NULL */
    const Tensor *w;    /* (cols, rows) */
    int T;
    size_t row_bytes;
    const uint8_t *one_row; /* (T,) nonzero: entry t goes through the one-row kernels; NULL: all do */
} MatmulJob;


/* Exact mode: each weight row dequantized to fp32 and dotted with the fp32 activations. */
static void matmul_exact_task(void *ctx, int i, int thread) {
    const MatmulJob *j = ctx;
    const int64_t rows = j->w->ne[1], cols = j->w->ne[0];
    const int64_t r0 = (int64_t)i * j->rows_per_task, r1 = r0 + j->rows_per_task < rows ? r0 + j->rows_per_task : rows;
    float *wr = j->s->wrow + (size_t)thread * j->s->widest_in;
    for (int64_t r = r0; r < r1; r++) {
        quant_dequantize_row(j->w->type, (const uint8_t *)j->w->data + r * j->row_bytes, wr, cols);
        for (int t = 0; t < j->T; t++) j->y[(size_t)t * rows + r] = dot_f32(wr, j->x + (size_t)t * cols, cols);
    }
}

static void matmul_task(void *ctx, int i, int thread) {
    (void)thread;
    const MatmulJob *j = ctx;
    const int64_t rows = j->w->ne[1], cols = j->w->ne[0];
    const int64_t r0 = (int64_t)i * j->rows_per_task, r1 = r0 + j->rows_per_task < rows ? r0 + j->rows_per_task : rows;
    const uint8_t *w = (const uint8_t *)j->w->data + r0 * j->row_bytes;
    /* runs of entries of one kind; the tiled runs in chunks whose activations stay in L2 while the task's
     * rows pass over them */
    for (int t0 = 0, t1; t0 < j->T; t0 = t1) {
        const int one = !j->one_row || j->one_row[t0];
        for (t1 = t0 + 1; t1 < j->T && t1 - t0 < TOKENS_PER_PASS && (!j->one_row || !j->one_row[t1] == !one);) t1++;
        const float *x = j->x + (size_t)t0 * cols;
        const BlockQ8A *xq = j->xq ? j->xq + (size_t)t0 * (cols / QK8A) : NULL;
        float *y = j->y + (size_t)t0 * rows + r0;
        if (one)
            for (int t = t0; t < t1; t++, x += cols, xq = xq ? xq + cols / QK8A : NULL, y += rows)
                quant_gemv(j->w->type, w, j->row_bytes, r1 - r0, cols, x, xq, y);
        else
            quant_matmul(j->w->type, w, j->row_bytes, r1 - r0, cols, x, xq, t1 - t0, y, rows);
    }
}

typedef struct QuantizeJob {
    const float *x;
    BlockQ8A *xq;
    int64_t cols;
} QuantizeJob;

static void quantize_task(void *ctx, int t, int thread) {
    (void)thread;
    const QuantizeJob *j = ctx;
    quant_q8a_quantize(j->x + (size_t)t * j->cols, j->xq + (size_t)t * (j->cols / QK8A), j->cols);
}

/* Quantize x (T, cols) into s->xq when some weight will need it. */
static void quantize_input(CpuBackend *s, const float *x, int T, int64_t cols) {
    if (s->base.opt.exact) return;
    QuantizeJob j = {x, s->xq, cols};
    pool_for(s->pool, T, quantize_task, &j);
}

/* y (T, rows) = x (T, cols) @ W^T, with x already quantized into s->xq when W is quantized. Entries with
 * one_row[t] set (all when one_row is NULL) go through the one-row kernels (fastest for a lone entry),
 * the others through the tile kernels. Which entries those are must not depend on the rest of the batch:
 * the forward passes the entries that want logits (decode steps, a prompt's last token), so that a
 * sequence gets bit for bit the same logits alone or batched. */
static void matmul(CpuBackend *s, float *y, const float *x, const Tensor *w, int T, const uint8_t *one_row) {
    /* contiguous chunks: at least ROWS_PER_TASK rows, about TASKS_PER_THREAD per thread, so that each
     * thread streams long runs of the weight (prefetch-friendly) and the load still balances */
    int64_t rpt = w->ne[1] / ((int64_t)pool_threads(s->pool) * (T == 1 ? TASKS_PER_THREAD_ONE : TASKS_PER_THREAD));
    if (rpt < ROWS_PER_TASK) rpt = ROWS_PER_TASK;
    MatmulJob j = {s, rpt, y, x, is_float_type(w->type) ? NULL : s->xq, w, T, w->nbytes / (size_t)w->ne[1], one_row};
    pool_for(s->pool, (int)((w->ne[1] + rpt - 1) / rpt),
             s->base.opt.exact ? matmul_exact_task : matmul_task, &j);
}


/* ---------------------------------------------------------------------------------------------------- */
/* attention */

typedef struct AttnJob {
    CpuBackend *s;
    const Batch *batch;
    const KVPages *kv;
    int l;
} AttnJob;

/* Where position pos of sequence seq starts in layer l of the store (kv head 0; kv head h is
 * h * page_size * head_dim floats further: each head's page is one contiguous run). */
static size_t kv_offset(const CpuBackend *s, const KVPages *kv, int l, int seq, int pos) {
    const int P = s->base.opt.page_size;
    int page = kv->table[(size_t)seq * kv->pages_per_slot + pos / P];
    return ((size_t)l * s->base.opt.n_pages + (size_t)page) * P * s->kv_dim + (size_t)(pos % P) * s->c->head_dim;
}

/* Ask for n floats from p to be brought to cache (the next page of a sequence is elsewhere in the store:
 * the hardware prefetchers do not follow). */
/* Attention asks for the pages KV_AHEAD pages after the one in hand, a share per query head (64
 * prefetches at once at the start of a page, one page ahead, left the decode at 512-640 positions ~4%
 * slower: 57.4 -> 59.6 tok/s on the 0.5B shape) */
#define KV_AHEAD 2
static inline void prefetch_run(const float *p, int n) {
    for (int i = 0; i < n; i += 16) __builtin_prefetch(p + i, 0, 3);
}

/* One (entry, kv head): for each query head h of the group sharing that kv head, softmax(q_h k^T /
 * sqrt(head_dim)) v over positions 0..pos of the entry's sequence, walking the sequence's pages (each page
 * holds page_size consecutive positions); a page's keys and values are read from memory once for the
 * whole group. */
static void attn_task(void *ctx, int item, int thread) {
    const AttnJob *j = ctx;
    CpuBackend *s = j->s;
    const Config *c = s->c;
    const int G = c->n_heads / c->n_kv_heads, i = item / c->n_kv_heads, kvh = item % c->n_kv_heads;
    const int hd = c->head_dim, P = s->base.opt.page_size, seq = j->batch->seq[i], n = j->batch->pos[i] + 1;
    const int32_t *pages = j->kv->table + (size_t)seq * j->kv->pages_per_slot;
    const size_t layer_base = (size_t)j->l * s->base.opt.n_pages * P * s->kv_dim + (size_t)kvh * P * hd;
    const size_t sc_len = (size_t)s->base.opt.n_pages * P;
    const float *q = s->q + (size_t)i * s->q_dim + (size_t)kvh * G * hd;
    float *sc = s->att + (size_t)thread * G * sc_len, *out = s->xb + (size_t)i * s->q_dim + (size_t)kvh * G * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const VecKernels *ak = &s->vk;
    for (int t0 = 0; t0 < n; t0 += P) {
        const float *k = s->k_store + layer_base + (size_t)pages[t0 / P] * P * s->kv_dim;
        for (int h = 0; h < G; h++) {
            if (t0 + KV_AHEAD * P < n) /* a share of page + KV_AHEAD per query head */
                prefetch_run(s->k_store + layer_base + (size_t)pages[t0 / P + KV_AHEAD] * P * s->kv_dim + h * (P * hd / G),
                             h == G - 1 ? P * hd - h * (P * hd / G) : P * hd / G);
            ak->scores(sc + h * sc_len + t0, q + (size_t)h * hd, k, n - t0 < P ? n - t0 : P, hd, hd, scale);
        }
    }
    for (int h = 0; h < G; h++) ak->softmax(sc + h * sc_len, n);
    memset(out, 0, (size_t)G * hd * sizeof *out);
    for (int t0 = 0; t0 < n; t0 += P) {
        const float *v = s->v_store + layer_base + (size_t)pages[t0 / P] * P * s->kv_dim;
        for (int h = 0; h < G; h++) {
            if (t0 + KV_AHEAD * P < n)
                prefetch_run(s->v_store + layer_base + (size_t)pages[t0 / P + KV_AHEAD] * P * s->kv_dim + h * (P * hd / G),
                             h == G - 1 ? P * hd - h * (P * hd / G) : P * hd / G);
            ak->accum(out + (size_t)h * hd, sc + h * sc_len + t0, v, n - t0 < P ? n - t0 : P, hd, hd);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* per-entry row work, spread over the threads */

typedef struct RowJob {
    CpuBackend *s;
    const Batch *b;
    const KVPages *kv;
    const LayerWeights *L;
    int l;
    const float *norm; /* norm_task: the norm's weights */
} RowJob;

/* xb[i] = rmsnorm(x[i]) and, in fast mode, its Q8A blocks into xq[i] */
static void norm_task(void *ctx, int i, int thread) {
    (void)thread;
    const RowJob *j = ctx;
    CpuBackend *s = j->s;
    const int dim = s->c->dim;
    op_rmsnorm(s->xb + (size_t)i * dim, s->x + (size_t)i * dim, j->norm, dim, s->c->norm_eps);
    if (!s->base.opt.exact) quant_q8a_quantize(s->xb + (size_t)i * dim, s->xq + (size_t)i * (dim / QK8A), dim);
}

static void add_bias_row(float *y, const Tensor *b) {
    if (b->data) op_add(y, b->data, (int)b->ne[0]);
}

/* entry i's q, k, v: biases, RoPE on q and k, k and v into the store */
static void qkv_task(void *ctx, int i, int thread) {
    (void)thread;
    const RowJob *j = ctx;
    CpuBackend *s = j->s;
    const Config *c = s->c;
    const int hd = c->head_dim, pos = j->b->pos[i];
    float *q = s->q + (size_t)i * s->q_dim, *k = s->k + (size_t)i * s->kv_dim, *v = s->v + (size_t)i * s->kv_dim;
    add_bias_row(q, &j->L->bq);
    add_bias_row(k, &j->L->bk);
    add_bias_row(v, &j->L->bv);
    op_rope(q, c->n_heads, hd, c->rope_dim, pos, s->inv_freq, c->arch->rope);
    op_rope(k, c->n_kv_heads, hd, c->rope_dim, pos, s->inv_freq, c->arch->rope);
    const size_t off = kv_offset(s, j->kv, j->l, j->b->seq[i], pos), head_stride = (size_t)s->base.opt.page_size * hd;
    for (int h = 0; h < c->n_kv_heads; h++) {
        memcpy(s->k_store + off + h * head_stride, k + (size_t)h * hd, (size_t)hd * sizeof(float));
        memcpy(s->v_store + off + h * head_stride, v + (size_t)h * hd, (size_t)hd * sizeof(float));
    }
}

/* hb[i] = silu(hb[i]) * hb2[i] and, in fast mode, its Q8A blocks into xq[i] */
static void swiglu_task(void *ctx, int i, int thread) {
    (void)thread;
    const RowJob *j = ctx;
    CpuBackend *s = j->s;
    const int hid = s->c->hidden_dim;
    float *g = s->hb + (size_t)i * hid;
    s->vk.swiglu(g, s->hb2 + (size_t)i * hid, hid);
    if (!s->base.opt.exact) quant_q8a_quantize(g, s->xq + (size_t)i * (hid / QK8A), hid);
}

/* ---------------------------------------------------------------------------------------------------- */
/* the forward pass */

static void capture(const CpuBackend *s, const Batch *b, int layer) {
    if (b->hidden)
        memcpy(b->hidden + (size_t)layer * b->n * s->c->dim, s->x, (size_t)b->n * s->c->dim * sizeof(float));
}

static int cpu_forward(Backend *base, const Batch *b, const KVPages *kv, float *logits, char *err, size_t errlen) {
    CpuBackend *s = (CpuBackend *)base;
    const Config *c = s->c;
    const Weights *w = s->w;
    const int T = b->n, dim = c->dim;
    if (backend_check_batch(base, b, kv, err, errlen)) return -1;

    /* token embeddings: row token of token_embd */
    size_t emb_row = w->token_embd.nbytes / (size_t)w->token_embd.ne[1];
    for (int i = 0; i < T; i++)
        quant_dequantize_row(w->token_embd.type, (const uint8_t *)w->token_embd.data + (size_t)b->token[i] * emb_row,
                             s->x + (size_t)i * dim, dim);
    capture(s, b, 0);

    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *L = &w->layers[l];

        /* attention: norm, Q/K/V (+bias), RoPE, K/V into the store, attention, output projection, residual */
        RowJob rj = {s, b, kv, L, l, L->attn_norm.data};
        pool_for(s->pool, T, norm_task, &rj);
        matmul(s, s->q, s->xb, &L->wq, T, b->want_logits);
        matmul(s, s->k, s->xb, &L->wk, T, b->want_logits);
        matmul(s, s->v, s->xb, &L->wv, T, b->want_logits);
        pool_for(s->pool, T, qkv_task, &rj);
        AttnJob aj = {s, b, kv, l};
        pool_for(s->pool, T * c->n_kv_heads, attn_task, &aj);
        quantize_input(s, s->xb, T, s->q_dim);
        matmul(s, s->proj, s->xb, &L->wo, T, b->want_logits);
        op_add(s->x, s->proj, T * dim);

        /* FFN: norm, gate and up, SwiGLU, down, residual */
        rj.norm = L->ffn_norm.data;
        pool_for(s->pool, T, norm_task, &rj);
        matmul(s, s->hb, s->xb, &L->w_gate, T, b->want_logits);
        matmul(s, s->hb2, s->xb, &L->w_up, T, b->want_logits);
        pool_for(s->pool, T, swiglu_task, &rj);
        matmul(s, s->proj, s->hb, &L->w_down, T, b->want_logits);
        op_add(s->x, s->proj, T * dim);
        capture(s, b, l + 1);
    }

    /* final norm and LM head, for the entries that want logits */
    int n_out = 0;
    for (int i = 0; i < T; i++) {
        if (!b->want_logits[i]) continue;
        op_rmsnorm(s->xb + (size_t)n_out * dim, s->x + (size_t)i * dim, w->output_norm.data, dim, c->norm_eps);
        n_out++;
    }
    if (n_out) {
        quantize_input(s, s->xb, n_out, dim);
        matmul(s, logits, s->xb, &w->output, n_out, NULL);
    }
    return 0;
}

/* The greedy choice on the backend's side (Backend.forward_argmax): the forward into s->logits, then for
 * each entry that wants logits the first index of the largest logit and its log-probability, computed with
 * vector exp (the sampler's scalar double exp over the vocabulary costs ~2 ms a token, 12% of a decode
 * step of the 0.5B model). */
static int cpu_forward_argmax(Backend *base, const Batch *b, const KVPages *kv, int32_t *ids, float *logprobs,
                              char *err, size_t errlen) {
    CpuBackend *s = (CpuBackend *)base;
    int n_out = 0;
    for (int i = 0; i < b->n; i++) n_out += b->want_logits[i] != 0;
    if (n_out > s->base.opt.n_slots)
        return snprintf(err, errlen, "%d entries want logits: expected at most %d", n_out, s->base.opt.n_slots), -1;
    if (cpu_forward(base, b, kv, s->logits, err, errlen)) return -1;
    const int V = s->c->vocab_size;
    for (int k = 0; k < n_out; k++) {
        const float *row = s->logits + (size_t)k * V;
        const int i = s->vk.argmax(row, V);
        ids[k] = i;
        logprobs[k] = (float)((double)row[i] - row[i] - s->vk.log_sum_exp(row, V, row[i]));
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* creation */

static void cpu_free(Backend *base) {
    CpuBackend *s = (CpuBackend *)base;
    if (!s) return;
    pool_free(s->pool);
    free(s->inv_freq);
    free(s->k_store);
    free(s->v_store);
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->hb);
    free(s->hb2);
    free(s->proj);
    free(s->xq);
    free(s->att);
    free(s->logits);
    free(s->wrow);
    free(s);
}

static int check_types(const Config *c, const Weights *w, char *err, size_t errlen) {
    const Tensor *mats[] = {&w->token_embd, &w->output};
    for (size_t i = 0; i < 2; i++)
        if (!quant_cpu_supported(mats[i]->type))
            return snprintf(err, errlen, "%s: weight type %s is not supported by the CPU backend",
                            i ? "output.weight" : "token_embd.weight", quant_name(mats[i]->type)), -1;
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *L = &w->layers[l];
        const Tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            if (!quant_cpu_supported(ts[i]->type))
                return snprintf(err, errlen, "layer %d: weight type %s is not supported by the CPU backend", l,
                                quant_name(ts[i]->type)), -1;
            if (!is_float_type(ts[i]->type) && ts[i]->ne[0] % QK8A)
                return snprintf(err, errlen, "layer %d: quantized row of %lld values: expected a multiple of %d", l,
                                (long long)ts[i]->ne[0], QK8A), -1;
        }
    }
    return 0;
}

static void *alloc_floats(size_t n, size_t *total) {
    *total += n * sizeof(float);
    return calloc(n ? n : 1, sizeof(float));
}

Backend *backend_cpu_create(const Config *c, const Weights *w, const BackendOptions *opt, char *err,
                            size_t errlen) {
    if (check_types(c, w, err, errlen)) return NULL;
    if (opt->max_batch < 1 || opt->n_slots < 1 || opt->n_pages < 1 || opt->page_size < 1) {
        snprintf(err, errlen, "backend options: max_batch, n_slots, n_pages and page_size must be >= 1");
        return NULL;
    }
    CpuBackend *s = calloc(1, sizeof *s);
    if (!s) return snprintf(err, errlen, "out of memory"), NULL;
    s->base.kind = BACKEND_CPU;
    s->base.config = c;
    s->base.opt = *opt;
    s->base.forward = cpu_forward;
    s->base.forward_argmax = cpu_forward_argmax;
    s->base.free = cpu_free;
    s->c = c;
    s->w = w;
    int n_threads = opt->n_threads > 0 ? opt->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1) n_threads = 1;
    s->base.opt.n_threads = n_threads;
    s->pool = pool_create(n_threads);
    s->q_dim = c->n_heads * c->head_dim;
    s->kv_dim = c->n_kv_heads * c->head_dim;
    const size_t T = (size_t)opt->max_batch, widest = (size_t)(c->dim > s->q_dim ? c->dim : s->q_dim);
    const size_t kv_n = (size_t)c->n_layers * opt->n_pages * opt->page_size * s->kv_dim;
    size_t kv = 0, scratch = 0;
    s->inv_freq = alloc_floats((size_t)c->rope_dim / 2, &scratch);
    s->k_store = alloc_floats(kv_n, &kv);
    s->v_store = alloc_floats(kv_n, &kv);
    s->x = alloc_floats(T * c->dim, &scratch);
    s->xb = alloc_floats(T * widest, &scratch);
    s->q = alloc_floats(T * s->q_dim, &scratch);
    s->k = alloc_floats(T * s->kv_dim, &scratch);
    s->v = alloc_floats(T * s->kv_dim, &scratch);
    s->hb = alloc_floats(T * c->hidden_dim, &scratch);
    s->hb2 = alloc_floats(T * c->hidden_dim, &scratch);
    s->proj = alloc_floats(T * c->dim, &scratch);
    size_t widest_in = widest > (size_t)c->hidden_dim ? widest : (size_t)c->hidden_dim;
    s->xq = calloc(T * (widest_in / QK8A + 1), sizeof *s->xq);
    scratch += T * (widest_in / QK8A + 1) * sizeof *s->xq;
    s->att = alloc_floats((size_t)n_threads * (c->n_heads / c->n_kv_heads) * opt->n_pages * opt->page_size, &scratch);
    s->widest_in = (int)widest_in;
    s->wrow = alloc_floats((size_t)n_threads * widest_in, &scratch);
    s->logits = alloc_floats((size_t)opt->n_slots * c->vocab_size, &scratch);
    if (!s->pool || !s->inv_freq || !s->k_store || !s->v_store || !s->x || !s->xb || !s->q || !s->k || !s->v ||
        !s->hb || !s->hb2 || !s->proj || !s->xq || !s->att || !s->wrow || !s->logits) {
        snprintf(err, errlen, "out of memory: the CPU backend needs %zu bytes of KV store and %zu of scratch", kv,
                 scratch);
        cpu_free(&s->base);
        return NULL;
    }
    op_rope_freqs(s->inv_freq, c->rope_dim, c->rope_theta);
    s->vk = vec_kernels(0);
    s->base.kv_bytes = kv;
    s->base.scratch_bytes = scratch;
    uint64_t wb = w->token_embd.nbytes + w->output_norm.nbytes + (c->tied_embeddings ? 0 : w->output.nbytes);
    for (int l = 0; l < c->n_layers; l++) {
        const LayerWeights *L = &w->layers[l];
        wb += L->attn_norm.nbytes + L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->bq.nbytes + L->bk.nbytes +
              L->bv.nbytes + L->wo.nbytes + L->ffn_norm.nbytes + L->w_gate.nbytes + L->w_up.nbytes +
              L->w_down.nbytes;
    }
    s->base.weight_bytes = wb;
    return &s->base;
}
