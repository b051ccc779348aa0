/*
 * The CUDA backend: the forward pass of backend/cpu/cpu.c, step for step, on one GPU. The weights are
 * uploaded once, quantized as the file stores them; the KV store is fp16 in fixed pages; all scratch is
 * allocated at creation (and the attention partials once the page table's width is known), so a step
 * allocates nothing.
 *
 * Matrix products: fused dequantize-and-dot kernels (kernels.cu) for up to gemv_max_t entries; beyond that
 * the tensor cores: ck_gemm dequantizes tiles of the weight into shared memory (fp16 inputs, fp32 sums),
 * F32 and F16 weights go to cuBLAS (loaded with dlopen at creation, so the binary starts without it on
 * machines that have no GPU). In the GEMV kernels quantized
 * weights meet activations quantized to 8 bits per 32 values, as on the CPU (the kernels that produce a
 * product's input write both forms); ORCD_CUDA_EXACT=1 keeps fp32 activations (the CPU's --exact).
 *
 * A step whose entries all want logits (decode) and number at most GRAPH_MAX_T (gemv_max_t when cuBLAS
 * has products: it stays out of graphs) is captured once as a CUDA graph per (entries, attention splits,
 * output kind) and replayed; its inputs (tokens, positions, slots, page table)
 * are copied in before the launch, and the only sync is reading the result: token ids and their
 * log-probabilities when the caller asked for the greedy choice (forward_argmax), else the logits.
 *
 * Not here: the kernels (kernels.cu), device discovery (cuda_device.cu), scheduling (engine).
 */
#ifdef ORCD_CUDA

#include "../../log.h"
#include "../../quant.h"
#include "../backend.h"
#include "cuda_device.h"
#include "kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEMV_MAX_T 16   /* entries up to which products may use the fused GEMV kernels (the scratch's size) */
#define GEMV_DEFAULT_T 8 /* ... and do by default (gemv_max_t; H100, 0.5B: at 16 entries ck_gemm is 1.1x
                            faster, at 4 the GEMV 1.7x) */
#define ATTN_CHUNK 64   /* entries per attention launch (bounds the partials buffer) */
_Static_assert(CK_TOPK_MAX == BACKEND_TOPK_MAX, "the kernel serves forward_topk's k");
#define CUBLAS_MIN_T 128 /* entries from which quantized layer products are dequantized whole for cuBLAS */
#define TILED_MIN_RUN 16 /* entries per sequence (on average) from which a step takes the tiled attention */
#define GRAPH_MAX_T 64  /* entries up to which decode steps run as CUDA graphs */
#define MAX_GRAPHS 256

/* ---- cuBLAS, resolved at run time ---- */

typedef struct Cublas {
    void *lib;
    cublasHandle_t h;
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                              const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
                              cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
    cublasStatus_t (*sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float *,
                            const float *, int, const float *, int, const float *, float *, int);
} Cublas;

#ifndef ORCD_CUDA_LIB_DIR
#define ORCD_CUDA_LIB_DIR "/usr/local/cuda/lib64"
#endif

static int cublas_open(Cublas *cb, cudaStream_t stream, char *err, size_t errlen) {
    const char *names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", ORCD_CUDA_LIB_DIR "/libcublas.so.13",
                           ORCD_CUDA_LIB_DIR "/libcublas.so.12", ORCD_CUDA_LIB_DIR "/libcublas.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !cb->lib; i++) cb->lib = dlopen(names[i], RTLD_NOW);
    if (!cb->lib) return snprintf(err, errlen, "cuBLAS not found (libcublas.so in the loader path or %s)", ORCD_CUDA_LIB_DIR), -1;
    *(void **)&cb->create = dlsym(cb->lib, "cublasCreate_v2");
    *(void **)&cb->destroy = dlsym(cb->lib, "cublasDestroy_v2");
    *(void **)&cb->set_stream = dlsym(cb->lib, "cublasSetStream_v2");
    *(void **)&cb->gemm_ex = dlsym(cb->lib, "cublasGemmEx");
    *(void **)&cb->sgemm = dlsym(cb->lib, "cublasSgemm_v2");
    if (!cb->create || !cb->destroy || !cb->set_stream || !cb->gemm_ex || !cb->sgemm)
        return snprintf(err, errlen, "cuBLAS: a function is missing from the library"), -1;
    cublasStatus_t st = cb->create(&cb->h);
    if (st != CUBLAS_STATUS_SUCCESS) return snprintf(err, errlen, "cublasCreate failed (status %d)", (int)st), -1;
    cb->set_stream(cb->h, stream);
    return 0;
}

/* ---- the backend ---- */

/* How a step's attention runs: the split kernel after ck_rope_kv, the split kernel doing the RoPE and KV
 * writes itself (no two entries of one sequence: decode), or the tiled kernel (prefill). */
typedef enum { ATTN_SPLIT, ATTN_SPLIT_ROPE, ATTN_TILED } AttnPath;

typedef struct Graph {
    int T, split_len, splits, argmax;
    AttnPath attn;
    cudaGraphExec_t exec;
} Graph;

/* Profile: an event before each group of launches; the time to the next event is that group's. */
enum { P_EMBED, P_NORM, P_QKV, P_ROPE_KV, P_ATTN, P_WO, P_GATE_UP, P_SWIGLU, P_DOWN, P_HEAD, P_ARGMAX, P_COUNT };
static const char *const PROF_NAMES[P_COUNT] = {"embed", "rmsnorm", "q/k/v", "rope+kv write", "attention",
                                                "o proj", "gate/up", "swiglu", "down", "lm head",
                                                "argmax/top-k"};
#define PROF_EVENTS 1024

typedef struct Prof {
    int on, n_marks, steps;
    cudaEvent_t ev[PROF_EVENTS];
    int group[PROF_EVENTS];
    double ms[P_COUNT];
} Prof;

typedef struct CudaLayer {
    CkMat wq, wk, wv, wo, gate, up, down;
    const float *attn_norm, *ffn_norm, *bq, *bk, *bv;
} CudaLayer;

typedef struct CudaBackend {
    Backend base;
    const Config *c;
    cudaStream_t stream;
    cudaStream_t side;              /* a V product of another type than Q and K runs beside them (fork, join) */
    cudaEvent_t fork, join;
    Cublas cb;
    int q_dim, kv_dim, widest_in, widest_out, max_batch, n_logits_rows;
    /* device memory */
    uint8_t *weights;
    CkMat embd, output;
    const float *output_norm;
    CudaLayer *layers;
    void *k_store, *v_store;
    float *x, *xb, *q, *k, *v, *hb, *hb2, *logits, *inv_freq, *lp, *part;
    void *xh;                       /* fp16 activations (cuBLAS products) */
    void *wtmp;                     /* a layer weight dequantized to fp16 (cuBLAS products from cublas_min_t) */
    size_t wtmp_bytes;
    int cublas_min_t;               /* entries from which quantized products go to cuBLAS */
    void *argmax_scratch;
    unsigned *attn_done;            /* the attention's per-(entry, head) split counters (ck_attention) */
    int pdl;                        /* programmatic dependent launch on every step (compute 9.0+) */
    CkQ8 xq;                        /* 8-bit GEMV inputs (qs NULL in exact mode) */
    float *pinned;                  /* the caller's logits buffer, page-locked (pin_logits) */
    size_t pinned_bytes;
    int32_t *d_in, *d_ids;          /* inputs: token, pos, seq, out rows (max_batch each), then the page table */
    float *d_cval, *h_cval;         /* top-k candidates (n_logits_rows x CK_TOPK_MAX), device and pinned host */
    int32_t *d_cid, *h_cid;
    int rows_kept;                  /* rows of logits the last forward_topk left in `logits` */
    void *topk_scratch;             /* ck_topk's slices */
    int table_ints;                 /* page table entries d_in holds */
    /* pinned host staging */
    int32_t *h_in, *h_ids;
    float *h_lp;
    Graph graphs[MAX_GRAPHS];
    int n_graphs, use_graphs;
    int graph_max_t;                /* entries up to which steps are graphed (gemv_max_t with cuBLAS products) */
    int gemv_max_t;                 /* entries up to which products take the GEMV kernels (<= GEMV_MAX_T) */
    int tiled_attn;                 /* prefill steps may take ck_attention_tiled (ORCD_CUDA_TILED_ATTN=0: never) */
    int rope_in_attn;               /* decode steps: RoPE and KV writes in ck_attention (ORCD_CUDA_ROPE_IN_ATTN=0: never) */
    int norm_in_gemv;               /* the layers' RMSNorms inside the products that read them (ORCD_CUDA_NORM_IN_GEMV=0: never) */
    float *gemm_part;               /* ck_gemm's split partial sums */
    size_t gemm_part_floats;
    Prof prof;
} CudaBackend;

static void mark(CudaBackend *s, int group) {
    Prof *p = &s->prof;
    if (!p->on || p->n_marks >= PROF_EVENTS) return;
    cudaEventRecord(p->ev[p->n_marks], s->stream);
    p->group[p->n_marks++] = group;
}

/* After a profiled step: add each group's time. */
static void prof_collect(CudaBackend *s) {
    Prof *p = &s->prof;
    if (!p->on || p->n_marks < 2) return;
    cudaEventSynchronize(p->ev[p->n_marks - 1]);
    for (int i = 0; i + 1 < p->n_marks; i++) {
        float ms = 0;
        cudaEventElapsedTime(&ms, p->ev[i], p->ev[i + 1]);
        if (p->group[i] >= 0) p->ms[p->group[i]] += ms;
    }
    p->n_marks = 0;
    p->steps++;
}

static int cuda_profile(Backend *base, int on, char *report, size_t len) {
    CudaBackend *s = (CudaBackend *)base;
    Prof *p = &s->prof;
    if (on) {
        if (!p->ev[0])
            for (int i = 0; i < PROF_EVENTS; i++)
                if (cudaEventCreate(&p->ev[i]) != cudaSuccess) return -1;
        memset(p->ms, 0, sizeof p->ms);
        p->steps = p->n_marks = 0;
        p->on = 1;
        return 0;
    }
    p->on = 0;
    double total = 0;
    for (int g = 0; g < P_COUNT; g++) total += p->ms[g];
    size_t off = 0;
    off += (size_t)snprintf(report + off, len - off, "profile: %d steps, %.1f us per step on the GPU (kernels launched one by one)\n",
                            p->steps, p->steps ? 1000.0 * total / p->steps : 0.0);
    for (int g = 0; g < P_COUNT && off < len; g++)
        if (p->ms[g] > 0)
            off += (size_t)snprintf(report + off, len - off, "  %-14s %8.1f us/step %5.1f%%\n", PROF_NAMES[g],
                                    1000.0 * p->ms[g] / (p->steps ? p->steps : 1), 100.0 * p->ms[g] / (total > 0 ? total : 1));
    return 0;
}

#define CU(call, what)                                                                                    \
    do {                                                                                                  \
        cudaError_t e_ = (call);                                                                          \
        if (e_ != cudaSuccess) return snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e_)), -1; \
    } while (0)

/* The step inputs' layout, the same on the host (h_in) and the device (d_in). */
#define in_token(s, base) (base)
#define in_pos(s, base) ((base) + (s)->max_batch)
#define in_seq(s, base) ((base) + 2 * (s)->max_batch)
#define in_rows(s, base) ((base) + 3 * (s)->max_batch)
#define in_table(s, base) ((base) + 4 * (s)->max_batch)

/* The 8-bit activations for the GEMV kernels, or NULL in exact mode (ORCD_CUDA_EXACT=1). */
static const CkQ8 *q8_of(const CudaBackend *s) {
    return s->xq.qs ? &s->xq : NULL;
}

static int is_float_type(uint32_t t) {
    return t == QT_F32 || t == QT_F16 || t == QT_BF16;
}

/* What the producer of a product's input writes beside it: the 8-bit form (q8, NULL in exact mode and
 * beyond the GEMV kernels) when one of the product's weights is quantized; float weights meet the fp32
 * activations, so for them the quantization is skipped (F16 0.5B: 3.3 us a layer was the down
 * projection's input quantized for nothing). */
static const CkQ8 *q8_for(const CkQ8 *q8, const CkMat *a, const CkMat *b, const CkMat *c) {
    const int quantized = !is_float_type(a->type) || (b && !is_float_type(b->type)) || (c && !is_float_type(c->type));
    return quantized ? q8 : NULL;
}

/* y (T, rows) = x (T, cols) W^T (+ bias) (+ y): the fused GEMV kernels up to gemv_max_t entries, the
 * tensor cores beyond (cuBLAS for float weights as stored, else ck_gemm on tiles dequantized in shared
 * memory). xh_has_x: s->xh already holds x in fp16 (an earlier product of the same input); returns whether
 * it holds x afterwards, so that products sharing an input convert it once. */
static int matmul(CudaBackend *s, const CkMat *w, const float *x, int T, float *y, const float *bias, int accumulate,
                  int xh_has_x) {
    if (T <= s->gemv_max_t) {
        ck_gemv(w, x, q8_of(s), T, y, bias, accumulate, s->stream);
        return xh_has_x;
    }
    const int m = (int)w->rows, k = (int)w->cols;
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    if (w->type == QT_F32) {
        s->cb.sgemm(s->cb.h, CUBLAS_OP_T, CUBLAS_OP_N, m, T, k, &one, w->data, k, x, k, &beta, y, m);
    } else if (w->type == QT_F16 || (T >= s->cublas_min_t && w->rows * w->cols * 2 <= (int64_t)s->wtmp_bytes)) {
        /* F16 as stored; a quantized weight against many entries (prefill) dequantized whole first: its cost
         * spread over the entries, cuBLAS's GEMM outruns ck_gemm there */
        const void *a = w->data;
        if (w->type != QT_F16) ck_dequant(w, s->wtmp, 1, s->stream), a = s->wtmp;
        if (!xh_has_x) ck_to_half(x, s->xh, (size_t)T * k, s->stream);
        xh_has_x = 1;
        s->cb.gemm_ex(s->cb.h, CUBLAS_OP_T, CUBLAS_OP_N, m, T, k, &one, a, CUDA_R_16F, k, s->xh, CUDA_R_16F, k,
                      &beta, y, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else {
        /* types and shapes checked at creation */
        ck_gemm(w, x, T, y, bias, accumulate, s->gemm_part, s->gemm_part_floats, s->stream);
        return xh_has_x;
    }
    if (bias) ck_add_bias(y, bias, T, m, s->stream);
    return xh_has_x;
}

/* Several products of one input in one launch when the tensor cores take them (T > gemv_max_t; weights
 * of one quantized type and row length): 0, or -1 with nothing enqueued. */
static int matmul_multi(CudaBackend *s, const CkGemvOut *outs, int n, const float *x, int T) {
    if (T <= s->gemv_max_t || T >= s->cublas_min_t || outs[0].w->type == QT_F32 || outs[0].w->type == QT_F16) return -1;
    return ck_gemm_multi(outs, n, x, T, 0, s->gemm_part, s->gemm_part_floats, s->stream);
}

/* The attention's split length for contexts up to n positions: 32, doubled until at most
 * CK_ATTN_MAX_SPLITS splits cover them (short contexts get many small splits: more blocks in flight). */
static int split_len_for(int n) {
    int len = 32;
    while ((n + len - 1) / len > CK_ATTN_MAX_SPLITS) len *= 2;
    return len;
}

/* Final norm, LM head (and the greedy choice) for the entries in rows r0 .. r0+n of the wanted list. */
static void enqueue_head(CudaBackend *s, int r0, int n, int argmax) {
    const Config *c = s->c;
    mark(s, P_NORM);
    ck_rmsnorm(s->x, in_rows(s, s->d_in) + r0, s->output_norm, s->xb, n, c->dim, c->norm_eps, n <= s->gemv_max_t,
               n <= s->gemv_max_t ? q8_for(q8_of(s), &s->output, NULL, NULL) : NULL, s->stream);
    mark(s, P_HEAD);
    matmul(s, &s->output, s->xb, n, s->logits, NULL, 0, 0);
    if (argmax) {
        mark(s, P_ARGMAX);
        ck_argmax(s->logits, n, c->vocab_size, s->d_ids, s->lp, s->argmax_scratch, s->stream);
    }
    mark(s, -1);
}

/* Enqueue the forward of T entries (inputs already in d_in) up to the logits of n_out rows, and the greedy
 * choice when argmax. The attention runs `splits` splits of split_len positions (enough for the longest
 * entry). hidden: the residual stream after each layer goes there (host memory), for comparisons. */
static void enqueue_forward(CudaBackend *s, int T, int n_out, int argmax, int split_len, int splits,
                            int pages_per_slot, AttnPath attn, float *hidden) {
    const Config *c = s->c;
    const int dim = c->dim;
    const int gemv = T <= s->gemv_max_t; /* the products take the GEMV kernels and their input layout */
    const CkQ8 *q8 = gemv ? q8_of(s) : NULL;
    int32_t *d_tok = in_token(s, s->d_in), *d_pos = in_pos(s, s->d_in), *d_seq = in_seq(s, s->d_in);
    mark(s, P_EMBED);
    ck_embed(&s->embd, d_tok, T, s->x, s->stream);
    if (hidden) cudaMemcpyAsync(hidden, s->x, (size_t)T * dim * sizeof(float), cudaMemcpyDeviceToHost, s->stream);
    for (int l = 0; l < c->n_layers; l++) {
        const CudaLayer *L = &s->layers[l];
        const CkGemvOut qkv[3] = {{&L->wq, s->q, L->bq}, {&L->wk, s->k, L->bk}, {&L->wv, s->v, L->bv}};
        const CkRmsIn attn_in = {s->x, L->attn_norm, c->norm_eps};
        mark(s, P_QKV);
        const int qkv_rms = gemv && s->norm_in_gemv && !ck_gemv_multi_rms(qkv, 3, &attn_in, T, s->stream);
        if (!qkv_rms) {
            mark(s, P_NORM);
            ck_rmsnorm(s->x, NULL, L->attn_norm, s->xb, T, dim, c->norm_eps, gemv,
                       q8_for(q8, &L->wq, &L->wk, &L->wv), s->stream);
            mark(s, P_QKV);
        }
        const int qkv_gemm = !gemv && !matmul_multi(s, qkv, 3, s->xb, T);
        if (!qkv_rms && !qkv_gemm && (!gemv || ck_gemv_multi(qkv, 3, s->xb, q8, T, 0, s->stream))) { /* one launch, else Q and K */
            int xh = 0; /* whether s->xh holds s->xb in fp16 */
            if (gemv) { /* V (another type) on the side stream, beside Q and K: two small waves at once */
                cudaEventRecord(s->fork, s->stream);
                cudaStreamWaitEvent(s->side, s->fork, 0);
                ck_gemv(&L->wv, s->xb, q8, T, s->v, L->bv, 0, s->side);
                cudaEventRecord(s->join, s->side);
            }
            if (!gemv || ck_gemv_multi(qkv, 2, s->xb, q8, T, 0, s->stream)) {
                xh = matmul(s, &L->wq, s->xb, T, s->q, L->bq, 0, 0);
                xh = matmul(s, &L->wk, s->xb, T, s->k, L->bk, 0, xh);
            }
            if (gemv) cudaStreamWaitEvent(s->stream, s->join, 0);
            else matmul(s, &L->wv, s->xb, T, s->v, L->bv, 0, xh);
        }
        if (attn == ATTN_TILED) { /* prefill: all entries at once, tiles of entries sharing tiles of keys */
            CkKV kv = {s->k_store, s->v_store, in_table(s, s->d_in), pages_per_slot, s->base.opt.page_size,
                       s->base.opt.n_pages, d_pos, d_seq};
            mark(s, P_ROPE_KV);
            ck_rope_kv(s->q, s->k, s->v, s->inv_freq, T, c->n_heads, c->n_kv_heads, c->head_dim, c->rope_dim,
                       (int)c->arch->rope, &kv, l, s->stream);
            mark(s, P_ATTN);
            ck_attention_tiled(s->q, s->xb, T, c->n_heads, c->n_kv_heads, c->head_dim, &kv, l, s->stream);
        }
        for (int t0 = 0; t0 < T && attn != ATTN_TILED; t0 += ATTN_CHUNK) {
            const int n = T - t0 < ATTN_CHUNK ? T - t0 : ATTN_CHUNK;
            CkKV kv = {s->k_store, s->v_store, in_table(s, s->d_in), pages_per_slot, s->base.opt.page_size,
                       s->base.opt.n_pages, d_pos + t0, d_seq + t0};
            const CkRope rope = {s->k + (size_t)t0 * s->kv_dim, s->v + (size_t)t0 * s->kv_dim, s->inv_freq,
                                 c->rope_dim, c->arch->rope == ROPE_NEOX};
            if (attn == ATTN_SPLIT) {
                mark(s, P_ROPE_KV);
                ck_rope_kv(s->q + (size_t)t0 * s->q_dim, s->k + (size_t)t0 * s->kv_dim, rope.v, s->inv_freq, n,
                           c->n_heads, c->n_kv_heads, c->head_dim, c->rope_dim, (int)c->arch->rope, &kv, l, s->stream);
            }
            mark(s, P_ATTN);
            ck_attention(s->q + (size_t)t0 * s->q_dim, s->xb + (size_t)t0 * s->q_dim, s->part, splits, split_len, n,
                         c->n_heads, c->n_kv_heads, c->head_dim, &kv, l, gemv, q8_for(q8, &L->wo, NULL, NULL),
                         s->attn_done, attn == ATTN_SPLIT_ROPE ? &rope : NULL, s->stream);
        }
        mark(s, P_WO);
        matmul(s, &L->wo, s->xb, T, s->x, NULL, 1, 0);
        const CkRmsIn ffn_in = {s->x, L->ffn_norm, c->norm_eps};
        mark(s, P_GATE_UP);
        const int gu_rms = gemv && s->norm_in_gemv && !ck_gemv_swiglu_rms(&L->gate, &L->up, &ffn_in, T, s->hb, s->stream);
        if (!gu_rms) {
            mark(s, P_NORM);
            ck_rmsnorm(s->x, NULL, L->ffn_norm, s->xb, T, dim, c->norm_eps, gemv, q8_for(q8, &L->gate, &L->up, NULL),
                       s->stream);
            mark(s, P_GATE_UP);
        }
        const float *h = s->hb;
        if (!gu_rms && (!gemv || ck_gemv_swiglu(&L->gate, &L->up, s->xb, q8, T, s->hb, s->stream))) {
            const CkGemvOut gu[2] = {{&L->gate, s->hb, NULL}, {&L->up, s->hb2, NULL}};
            if (gemv || matmul_multi(s, gu, 2, s->xb, T)) {
                const int gh = matmul(s, &L->gate, s->xb, T, s->hb, NULL, 0, 0);
                matmul(s, &L->up, s->xb, T, s->hb2, NULL, 0, gh);
            }
            mark(s, P_SWIGLU);
            ck_swiglu(s->hb, s->hb2, (size_t)T * c->hidden_dim, s->stream);
            if (gemv) ck_to_gemv_layout(s->hb, s->hb2, T, c->hidden_dim, s->stream), h = s->hb2;
        }
        if (q8_for(q8, &L->down, NULL, NULL)) ck_quantize_q8(h, q8, T, c->hidden_dim, s->stream);
        mark(s, P_DOWN);
        matmul(s, &L->down, h, T, s->x, NULL, 1, 0);
        if (hidden)
            cudaMemcpyAsync(hidden + (size_t)(l + 1) * T * dim, s->x, (size_t)T * dim * sizeof(float),
                            cudaMemcpyDeviceToHost, s->stream);
    }
    if (n_out > 0) enqueue_head(s, 0, n_out, argmax);
    else mark(s, -1);
}

/* The caller's logits buffer is page-locked once (cudaHostRegister), so that copying a step's logits (64
 * rows of a 152K vocabulary: 39 MB) runs at the link's speed rather than through a staging copy. Again
 * when the buffer or a larger size comes; nothing when registration fails (the copy still works). */
static void pin_logits(CudaBackend *s, float *logits, size_t bytes) {
    if (logits == s->pinned && bytes <= s->pinned_bytes) return;
    if (s->pinned) cudaHostUnregister(s->pinned);
    s->pinned = NULL, s->pinned_bytes = 0;
    if (bytes && cudaHostRegister(logits, bytes, cudaHostRegisterDefault) == cudaSuccess)
        s->pinned = logits, s->pinned_bytes = bytes;
    else
        cudaGetLastError(); /* clear it: a failed registration is not an error of the step */
}

/* The step inputs for page tables of this width (sized once; again only if the width grows). */
static int ensure_inputs(CudaBackend *s, int pages_per_slot, char *err, size_t errlen) {
    const int table_ints = s->base.opt.n_slots * pages_per_slot;
    if (table_ints <= s->table_ints) return 0;
    cudaStreamSynchronize(s->stream);
    for (int i = 0; i < s->n_graphs; i++) cudaGraphExecDestroy(s->graphs[i].exec);
    s->n_graphs = 0;
    cudaFree(s->d_in), cudaFreeHost(s->h_in);
    s->d_in = NULL, s->h_in = NULL;
    const size_t in = ((size_t)4 * s->max_batch + table_ints) * sizeof(int32_t);
    CU(cudaMalloc((void **)&s->d_in, in), "step inputs");
    CU(cudaMallocHost((void **)&s->h_in, in), "pinned step inputs");
    s->base.scratch_bytes += in;
    s->table_ints = table_ints;
    return 0;
}

/* What a forward hands back: every wanted row of logits, the greedy choices, or each row's k best. */
typedef struct Out {
    float *logits;            /* OUT: logits */
    int32_t *ids;             /* argmax: ids, logprobs */
    float *logprobs;
    int k;                    /* top-k (k > 0): vals, cand_ids */
    float *vals;
    int32_t *cand_ids;
} Out;

/* Whether no two entries of the batch share a sequence (decode steps). */
static int distinct_seqs(const Batch *b) {
    for (int i = 1; i < b->n; i++)
        for (int j = 0; j < i; j++)
            if (b->seq[i] == b->seq[j]) return 0;
    return 1;
}

static int forward_common(CudaBackend *s, const Batch *b, const KVPages *kv, int argmax, const Out *o, char *err,
                          size_t errlen) {
    float *logits = o->logits;
    int32_t *ids = o->ids;
    float *logprobs = o->logprobs;
    if (backend_check_batch(&s->base, b, kv, err, errlen)) return -1;
    if (ensure_inputs(s, kv->pages_per_slot, err, errlen)) return -1;
    const int T = b->n;
    int n_out = 0, max_pos = 0;
    int32_t *rows = in_rows(s, s->h_in);
    for (int i = 0; i < T; i++) {
        if (b->want_logits[i]) rows[n_out++] = i;
        if (b->pos[i] > max_pos) max_pos = b->pos[i];
    }
    memcpy(in_token(s, s->h_in), b->token, (size_t)T * sizeof(int32_t));
    memcpy(in_pos(s, s->h_in), b->pos, (size_t)T * sizeof(int32_t));
    memcpy(in_seq(s, s->h_in), b->seq, (size_t)T * sizeof(int32_t));
    const int table_ints = s->base.opt.n_slots * kv->pages_per_slot;
    memcpy(in_table(s, s->h_in), kv->table, (size_t)table_ints * sizeof(int32_t));
    CU(cudaMemcpyAsync(s->d_in, s->h_in, ((size_t)4 * s->max_batch + table_ints) * sizeof(int32_t),
                       cudaMemcpyHostToDevice, s->stream), "copy step inputs");

    /* decode-like steps run as graphs, keyed by the attention's split length and split count (rounded up
     * to a power of two), so that a few graphs cover every context length */
    const int split_len = split_len_for(max_pos + 1);
    int splits = 1;
    while (splits * split_len < max_pos + 1) splits *= 2;
    if (splits > CK_ATTN_MAX_SPLITS) splits = CK_ATTN_MAX_SPLITS;
    /* more wanted rows than the logits buffer holds: the head runs in chunks after the layers */
    const int chunked = n_out > s->n_logits_rows;
    if (o->k && (chunked || o->k > CK_TOPK_MAX || o->k > s->c->vocab_size))
        return snprintf(err, errlen, "top-%d of %d rows: at most %d of at most %d rows", o->k, n_out,
                        CK_TOPK_MAX < s->c->vocab_size ? CK_TOPK_MAX : s->c->vocab_size, s->n_logits_rows), -1;
    /* prefill-like steps (at least TILED_MIN_RUN entries per run of one sequence) take the tiled attention */
    int runs = 1;
    for (int i = 1; i < T; i++) runs += b->seq[i] != b->seq[i - 1];
    const int tiled = T > s->gemv_max_t && T >= TILED_MIN_RUN * runs && s->tiled_attn &&
                      (s->c->head_dim == 64 || s->c->head_dim == 128);
    const AttnPath attn = tiled ? ATTN_TILED : s->rope_in_attn && distinct_seqs(b) ? ATTN_SPLIT_ROPE : ATTN_SPLIT;
    const int graphable = s->use_graphs && !s->prof.on && !b->hidden && n_out == T && T <= s->graph_max_t && !chunked &&
                          !tiled;
    ck_set_pdl(s->pdl);
    Graph *g = NULL;
    for (int i = 0; graphable && i < s->n_graphs && !g; i++)
        if (s->graphs[i].T == T && s->graphs[i].split_len == split_len && s->graphs[i].splits == splits &&
            s->graphs[i].argmax == argmax && s->graphs[i].attn == attn)
            g = &s->graphs[i];
    if (!g && graphable && s->n_graphs < MAX_GRAPHS) {
        cudaGraph_t graph;
        CU(cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal), "begin graph capture");
        enqueue_forward(s, T, n_out, argmax, split_len, splits, kv->pages_per_slot, attn, NULL);
        CU(cudaStreamEndCapture(s->stream, &graph), "end graph capture");
        g = &s->graphs[s->n_graphs];
        cudaError_t e = cudaGraphInstantiate(&g->exec, graph, 0);
        cudaGraphDestroy(graph);
        CU(e, "instantiate graph");
        g->T = T, g->split_len = split_len, g->splits = splits, g->argmax = argmax, g->attn = attn;
        s->n_graphs++;
    }
#ifdef ORCD_TIMELINE
    /* a developer's build (timeline.cuh): the 100th graph-replayed step's kernels, to the file ORCD_TIMELINE */
    static long tl_steps;
    const char *tl_path = getenv("ORCD_TIMELINE");
    const int tl = g && tl_path && ++tl_steps == 100;
    if (tl) CU(ck_timeline_arm(s->stream) ? cudaErrorUnknown : cudaSuccess, "timeline");
#endif
    if (g) CU(cudaGraphLaunch(g->exec, s->stream), "launch graph");
    else enqueue_forward(s, T, chunked ? 0 : n_out, argmax, split_len, splits, kv->pages_per_slot, attn, b->hidden);

    if (chunked) {
        for (int r0 = 0; r0 < n_out; r0 += s->n_logits_rows) {
            const int n = n_out - r0 < s->n_logits_rows ? n_out - r0 : s->n_logits_rows;
            enqueue_head(s, r0, n, argmax);
            if (argmax) {
                CU(cudaMemcpyAsync(ids + r0, s->d_ids, (size_t)n * sizeof(int32_t), cudaMemcpyDeviceToHost, s->stream), "copy ids");
                if (logprobs)
                    CU(cudaMemcpyAsync(logprobs + r0, s->lp, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, s->stream), "copy logprobs");
            } else {
                CU(cudaMemcpyAsync(logits + (size_t)r0 * s->c->vocab_size, s->logits,
                                   (size_t)n * s->c->vocab_size * sizeof(float), cudaMemcpyDeviceToHost, s->stream), "copy logits");
            }
            CU(cudaStreamSynchronize(s->stream), "forward");
        }
    } else if (argmax) {
        CU(cudaMemcpyAsync(s->h_ids, s->d_ids, (size_t)n_out * sizeof(int32_t), cudaMemcpyDeviceToHost, s->stream), "copy ids");
        CU(cudaMemcpyAsync(s->h_lp, s->lp, (size_t)n_out * sizeof(float), cudaMemcpyDeviceToHost, s->stream), "copy logprobs");
        CU(cudaStreamSynchronize(s->stream), "forward");
        memcpy(ids, s->h_ids, (size_t)n_out * sizeof(int32_t));
        if (logprobs) memcpy(logprobs, s->h_lp, (size_t)n_out * sizeof(float));
    } else if (o->k) {
        if (n_out) {
            mark(s, P_ARGMAX);
            ck_topk(s->logits, n_out, s->c->vocab_size, o->k, s->d_cval, s->d_cid, s->topk_scratch, s->stream);
            mark(s, -1);
            const size_t n = (size_t)n_out * o->k;
            CU(cudaMemcpyAsync(s->h_cval, s->d_cval, n * sizeof(float), cudaMemcpyDeviceToHost, s->stream), "copy candidates");
            CU(cudaMemcpyAsync(s->h_cid, s->d_cid, n * sizeof(int32_t), cudaMemcpyDeviceToHost, s->stream), "copy candidates");
        }
        CU(cudaStreamSynchronize(s->stream), "forward");
        memcpy(o->vals, s->h_cval, (size_t)n_out * o->k * sizeof(float));
        memcpy(o->cand_ids, s->h_cid, (size_t)n_out * o->k * sizeof(int32_t));
        s->rows_kept = n_out;
    } else {
        const size_t bytes = (size_t)n_out * s->c->vocab_size * sizeof(float);
        pin_logits(s, logits, bytes);
        if (n_out) CU(cudaMemcpyAsync(logits, s->logits, bytes, cudaMemcpyDeviceToHost, s->stream), "copy logits");
        CU(cudaStreamSynchronize(s->stream), "forward");
    }
#ifdef ORCD_TIMELINE
    if (tl) {
        CU(cudaStreamSynchronize(s->stream), "forward");
        FILE *f = fopen(tl_path, "w");
        if (!f || ck_timeline_dump(f)) fprintf(stderr, "timeline: could not write %s\n", tl_path);
        if (f) fclose(f);
    }
#endif
    prof_collect(s);
    return 0;
}

static int cuda_forward(Backend *base, const Batch *b, const KVPages *kv, float *logits, char *err, size_t errlen) {
    const Out o = {.logits = logits};
    ((CudaBackend *)base)->rows_kept = 0;
    return forward_common((CudaBackend *)base, b, kv, 0, &o, err, errlen);
}

static int cuda_forward_argmax(Backend *base, const Batch *b, const KVPages *kv, int32_t *ids, float *logprobs,
                               char *err, size_t errlen) {
    const Out o = {.ids = ids, .logprobs = logprobs};
    ((CudaBackend *)base)->rows_kept = 0;
    return forward_common((CudaBackend *)base, b, kv, 1, &o, err, errlen);
}

static int cuda_forward_topk(Backend *base, const Batch *b, const KVPages *kv, int k, float *vals, int32_t *ids,
                             char *err, size_t errlen) {
    const Out o = {.k = k, .vals = vals, .cand_ids = ids};
    ((CudaBackend *)base)->rows_kept = 0;
    if (k < 1) return snprintf(err, errlen, "top-k: k = %d, expected >= 1", k), -1;
    return forward_common((CudaBackend *)base, b, kv, 0, &o, err, errlen);
}

/* A whole row of the last forward_topk's logits (a plain copy: the forward has finished). */
static int cuda_logits_row(Backend *base, int row, float *dst, char *err, size_t errlen) {
    CudaBackend *s = (CudaBackend *)base;
    if (row < 0 || row >= s->rows_kept)
        return snprintf(err, errlen, "logits row %d: the last forward kept %d rows", row, s->rows_kept), -1;
    const size_t v = (size_t)s->c->vocab_size;
    CU(cudaMemcpy(dst, s->logits + (size_t)row * v, v * sizeof(float), cudaMemcpyDeviceToHost), "copy a row of logits");
    return 0;
}

/* ---- creation ---- */

static void cuda_free(Backend *base) {
    CudaBackend *s = (CudaBackend *)base;
    if (!s) return;
    if (s->stream) cudaStreamSynchronize(s->stream);
    if (s->pinned) cudaHostUnregister(s->pinned);
    for (int i = 0; i < s->n_graphs; i++) cudaGraphExecDestroy(s->graphs[i].exec);
    for (int i = 0; i < PROF_EVENTS && s->prof.ev[i]; i++) cudaEventDestroy(s->prof.ev[i]);
    if (s->cb.h) s->cb.destroy(s->cb.h);
    if (s->cb.lib) dlclose(s->cb.lib);
    void *dev[] = {s->weights, s->k_store, s->v_store, s->x, s->xb, s->q, s->k, s->v, s->hb, s->hb2, s->logits,
                   s->inv_freq, s->lp, s->part, s->xh, s->d_in, s->d_ids, s->argmax_scratch, s->xq.qs,
                   s->xq.d, s->xq.sum, s->attn_done, s->gemm_part, s->d_cval, s->d_cid, s->topk_scratch, s->wtmp};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) cudaFree(dev[i]);
    cudaFreeHost(s->h_in), cudaFreeHost(s->h_ids), cudaFreeHost(s->h_lp), cudaFreeHost(s->h_cval), cudaFreeHost(s->h_cid);
    if (s->stream) cudaStreamDestroy(s->stream);
    if (s->side) cudaStreamDestroy(s->side);
    if (s->fork) cudaEventDestroy(s->fork);
    if (s->join) cudaEventDestroy(s->join);
    free(s->layers);
    free(s);
}

/* Every weight tensor, for sizing and uploading: pointers to the host Tensor and the device CkMat / fp32
 * pointer it becomes. */
typedef struct Upload {
    const Tensor *t;
    CkMat *mat;          /* a matrix, or */
    const float **vec;   /* a norm or bias (F32) */
} Upload;

static size_t align256(size_t n) {
    return (n + 255) & ~(size_t)255;
}

static int list_uploads(CudaBackend *s, const Weights *w, Upload *u) {
    int n = 0;
    u[n++] = (Upload){&w->token_embd, &s->embd, NULL};
    u[n++] = (Upload){&w->output_norm, NULL, &s->output_norm};
    if (w->output.data != w->token_embd.data) u[n++] = (Upload){&w->output, &s->output, NULL};
    for (int l = 0; l < s->c->n_layers; l++) {
        const LayerWeights *L = &w->layers[l];
        CudaLayer *D = &s->layers[l];
        u[n++] = (Upload){&L->attn_norm, NULL, &D->attn_norm};
        u[n++] = (Upload){&L->ffn_norm, NULL, &D->ffn_norm};
        u[n++] = (Upload){&L->wq, &D->wq, NULL};
        u[n++] = (Upload){&L->wk, &D->wk, NULL};
        u[n++] = (Upload){&L->wv, &D->wv, NULL};
        u[n++] = (Upload){&L->wo, &D->wo, NULL};
        u[n++] = (Upload){&L->w_gate, &D->gate, NULL};
        u[n++] = (Upload){&L->w_up, &D->up, NULL};
        u[n++] = (Upload){&L->w_down, &D->down, NULL};
        if (L->bq.data) {
            u[n++] = (Upload){&L->bq, NULL, &D->bq};
            u[n++] = (Upload){&L->bk, NULL, &D->bk};
            u[n++] = (Upload){&L->bv, NULL, &D->bv};
        }
    }
    return n;
}

/* An upload's bytes on the device: matrices in the device's row layout (ck_row_bytes) */
static size_t upload_bytes(const Upload *u) {
    return u->mat ? ck_row_bytes(u->t->type, u->t->ne[0]) * (size_t)u->t->ne[1] : u->t->nbytes;
}

/* Regrouped weights go through a bounded device buffer, REGROUP_CHUNK bytes of file rows at a time. */
#define REGROUP_CHUNK ((size_t)64 << 20)

static int upload_regrouped(const Tensor *t, const CkMat *m, uint8_t **tmp) {
    const size_t fb = t->nbytes / (size_t)t->ne[1];
    const int64_t per = REGROUP_CHUNK / fb > 0 ? (int64_t)(REGROUP_CHUNK / fb) : 1;
    if (!*tmp && cudaMalloc((void **)tmp, fb > REGROUP_CHUNK ? fb : REGROUP_CHUNK) != cudaSuccess) return -1;
    for (int64_t r0 = 0; r0 < t->ne[1]; r0 += per) {
        const int64_t n = t->ne[1] - r0 < per ? t->ne[1] - r0 : per;
        /* the synchronous copy waits for the previous chunk's regrouping (both on the legacy stream) */
        if (cudaMemcpy(*tmp, (const uint8_t *)t->data + (size_t)r0 * fb, (size_t)n * fb, cudaMemcpyHostToDevice) !=
                cudaSuccess ||
            ck_put_rows(m, r0, n, *tmp, 0))
            return -1;
    }
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : -1;
}

static int check_types(const Upload *u, int n, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        if (!u[i].mat) continue;
        const Tensor *t = u[i].t;
        if (!ck_type_supported(t->type))
            return snprintf(err, errlen, "weight type %s is not supported by the CUDA backend", quant_name(t->type)), -1;
        if (t->ne[0] % 32)
            return snprintf(err, errlen, "a weight row of %lld values: the CUDA kernels expect a multiple of 32",
                            (long long)t->ne[0]), -1;
    }
    return 0;
}

static void *dev_alloc(size_t bytes, size_t *total, int *failed) {
    void *p = NULL;
    *total += bytes;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) *failed = 1;
    return p;
}

/* The device's memory bandwidth as a 256 MiB device-to-device copy sees it (bytes read + written per
 * second, best of 5); 0 when the scratch for it is not there. */
static double measure_bandwidth(cudaStream_t stream) {
    const size_t n = (size_t)256 << 20;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double best = 0;
    if (cudaMalloc(&a, n) == cudaSuccess && cudaMalloc(&b, n) == cudaSuccess && cudaEventCreate(&e0) == cudaSuccess &&
        cudaEventCreate(&e1) == cudaSuccess) {
        cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, stream); /* warm-up */
        for (int i = 0; i < 5; i++) {
            float ms = 0;
            cudaEventRecord(e0, stream);
            cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, stream);
            cudaEventRecord(e1, stream);
            cudaEventSynchronize(e1);
            cudaEventElapsedTime(&ms, e0, e1);
            if (ms > 0 && 2.0 * n / (ms * 1e-3) > best) best = 2.0 * n / (ms * 1e-3);
        }
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a), cudaFree(b);
    cudaGetLastError();
    return best;
}

static void fmt_gib(char *buf, size_t n, size_t bytes) {
    snprintf(buf, n, "%.2f GiB", (double)bytes / (1024.0 * 1024.0 * 1024.0));
}

Backend *backend_cuda_create(const Config *c, const Weights *w, const BackendOptions *opt, char *err, size_t errlen) {
    if (opt->max_batch < 1 || opt->n_slots < 1 || opt->n_pages < 1 || opt->page_size < 1) {
        snprintf(err, errlen, "backend options: max_batch, n_slots, n_pages and page_size must be >= 1");
        return NULL;
    }
    if (c->head_dim != 64 && c->head_dim != 128 && c->head_dim != 256) {
        snprintf(err, errlen, "head_dim %d: the CUDA attention handles 64, 128 and 256", c->head_dim);
        return NULL;
    }
    CudaBackend *s = calloc(1, sizeof *s);
    if (!s) return snprintf(err, errlen, "out of memory"), NULL;
    s->layers = calloc((size_t)c->n_layers, sizeof *s->layers);
    Upload *ups = calloc((size_t)c->n_layers * 12 + 3, sizeof *ups);
    if (!s->layers || !ups) {
        free(ups), free(s->layers), free(s);
        return snprintf(err, errlen, "out of memory"), NULL;
    }
    s->base.kind = BACKEND_CUDA;
    s->base.config = c;
    s->base.opt = *opt;
    s->base.forward = cuda_forward;
    s->base.forward_argmax = cuda_forward_argmax;
    const char *tk = getenv("ORCD_CUDA_TOPK"); /* 0: sampled rows come whole (for comparisons) */
    if (!(tk && strcmp(tk, "0") == 0)) s->base.forward_topk = cuda_forward_topk, s->base.logits_row = cuda_logits_row;
    s->base.free = cuda_free;
    s->base.profile = cuda_profile;
    s->c = c;
    s->q_dim = c->n_heads * c->head_dim;
    s->kv_dim = c->n_kv_heads * c->head_dim;
    s->max_batch = opt->max_batch;
    s->n_logits_rows = opt->max_batch < opt->n_slots ? opt->max_batch : opt->n_slots;
    const char *g = getenv("ORCD_CUDA_GRAPHS");
    s->use_graphs = !(g && strcmp(g, "0") == 0);
    s->graph_max_t = GRAPH_MAX_T; /* lowered below if cuBLAS has products */
    /* ORCD_CUDA_GEMV_MAX_T (0 .. GEMV_MAX_T): where the GEMV kernels hand over to the tensor cores, for
     * measuring the crossover */
    const char *cm = getenv("ORCD_CUDA_CUBLAS_MIN_T"); /* for measuring the crossover */
    s->cublas_min_t = cm && *cm ? atoi(cm) : CUBLAS_MIN_T;
    if (s->cublas_min_t <= GRAPH_MAX_T) s->cublas_min_t = CUBLAS_MIN_T; /* cuBLAS stays out of graphs */
    const char *ta = getenv("ORCD_CUDA_TILED_ATTN");
    s->tiled_attn = !(ta && strcmp(ta, "0") == 0);
    const char *ra = getenv("ORCD_CUDA_ROPE_IN_ATTN");
    s->rope_in_attn = !(ra && strcmp(ra, "0") == 0);
    const char *ng = getenv("ORCD_CUDA_NORM_IN_GEMV");
    s->norm_in_gemv = !(ng && strcmp(ng, "0") == 0);
    /* programmatic dependent launch (kernels.cu) where the device has it (ORCD_CUDA_PDL=0: never) */
    int cc_major = 0;
    cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, 0);
    const char *pdl = getenv("ORCD_CUDA_PDL");
    s->pdl = cc_major >= 9 && !(pdl && strcmp(pdl, "0") == 0);
    const char *gm = getenv("ORCD_CUDA_GEMV_MAX_T");
    s->gemv_max_t = gm && *gm ? atoi(gm) : GEMV_DEFAULT_T;
    if (s->gemv_max_t < 0 || s->gemv_max_t > GEMV_MAX_T) s->gemv_max_t = GEMV_DEFAULT_T;
    const int n_up = list_uploads(s, w, ups);
    if (check_types(ups, n_up, err, errlen)) goto fail;

    /* what it needs, against what the device has */
    size_t weight_bytes = 0;
    for (int i = 0; i < n_up; i++) weight_bytes += align256(upload_bytes(&ups[i]));
    const size_t T = (size_t)opt->max_batch, widest = (size_t)(c->dim > s->q_dim ? c->dim : s->q_dim);
    s->widest_in = (int)(widest > (size_t)c->hidden_dim ? widest : (size_t)c->hidden_dim);
    /* the most rows a product (or a launch of several: Q, K and V; gate and up) has, the LM head aside (it
     * has rows enough not to split) */
    s->widest_out = 2 * c->hidden_dim > s->q_dim + 2 * s->kv_dim ? 2 * c->hidden_dim : s->q_dim + 2 * s->kv_dim;
    if (s->widest_out < c->dim) s->widest_out = c->dim;
    const size_t kv_half = (size_t)c->n_layers * opt->n_pages * opt->page_size * s->kv_dim;
    const size_t kv_bytes = 2 * kv_half * 2;
    /* the largest layer weight in fp16, for cuBLAS products (the LM head never has cublas_min_t rows) */
    s->wtmp_bytes = opt->max_batch >= s->cublas_min_t
                        ? (size_t)2 * (size_t)(c->hidden_dim > s->q_dim ? c->hidden_dim : s->q_dim) * (size_t)c->dim
                        : 0;
    const size_t scratch_est = s->wtmp_bytes + T * s->widest_in * 2 + ck_topk_scratch(s->n_logits_rows) +
                               (size_t)s->n_logits_rows * CK_TOPK_MAX * (sizeof(float) + sizeof(int32_t)) +
                               sizeof(float) * CK_GEMM_MAX_SPLITS * (T < GRAPH_MAX_T ? T : GRAPH_MAX_T) * s->widest_out +
                               sizeof(float) * (T * (c->dim + widest + s->q_dim + 2 * s->kv_dim + 2 * c->hidden_dim) +
                                                (size_t)ATTN_CHUNK * c->n_heads * CK_ATTN_MAX_SPLITS * (c->head_dim + 2) +
                                                (size_t)s->n_logits_rows * (c->vocab_size + 1));
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        snprintf(err, errlen, "CUDA: cannot read the device's free memory");
        goto fail;
    }
    /* (the upload's transient regrouping buffer, REGROUP_CHUNK, is freed before the KV cache and scratch are
     * allocated: within this) */
    const size_t need = weight_bytes + kv_bytes + scratch_est + ((size_t)256 << 20) /* cuBLAS, graphs, partials */;
    if (need > free_b) {
        char a[32], b2[32], c2[32], d[32], f[32];
        fmt_gib(a, sizeof a, need), fmt_gib(b2, sizeof b2, weight_bytes), fmt_gib(c2, sizeof c2, kv_bytes);
        fmt_gib(d, sizeof d, scratch_est), fmt_gib(f, sizeof f, free_b);
        snprintf(err, errlen,
                 "out of GPU memory: the model needs %s (%zu bytes: weights %s, KV cache %s, scratch %s) and the "
                 "device has %s (%zu bytes) free; lower --ctx or --parallel",
                 a, need, b2, c2, d, f, free_b);
        goto fail;
    }

    if (cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking) != cudaSuccess ||
        cudaStreamCreateWithFlags(&s->side, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&s->fork, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventCreateWithFlags(&s->join, cudaEventDisableTiming) != cudaSuccess) {
        snprintf(err, errlen, "CUDA: cannot create a stream");
        goto fail;
    }
    if (cublas_open(&s->cb, s->stream, err, errlen)) goto fail;

    /* the weights, quantized as stored, in one allocation */
    log_info("cuda: uploading %.1f MiB of weights", (double)weight_bytes / (1 << 20));
    if (cudaMalloc((void **)&s->weights, weight_bytes) != cudaSuccess) {
        snprintf(err, errlen, "out of GPU memory: %zu bytes of weights", weight_bytes);
        goto fail;
    }
    size_t off = 0;
    uint8_t *regroup_tmp = NULL;
    for (int i = 0; i < n_up; i++) {
        const Tensor *t = ups[i].t;
        uint8_t *dst = s->weights + off;
        int bad;
        if (ups[i].mat) {
            *ups[i].mat = (CkMat){t->type, dst, t->ne[1], t->ne[0], ck_row_bytes(t->type, t->ne[0])};
            const int product = ups[i].mat != &s->embd || w->output.data == w->token_embd.data;
            if ((t->type == QT_F32 || t->type == QT_F16) && product) s->graph_max_t = s->gemv_max_t;
        } else
            *ups[i].vec = (const float *)dst;
        if (ups[i].mat && ck_regrouped(t->type))
            bad = upload_regrouped(t, ups[i].mat, &regroup_tmp);
        else
            bad = cudaMemcpy(dst, t->data, t->nbytes, cudaMemcpyHostToDevice) != cudaSuccess;
        if (bad) {
            cudaFree(regroup_tmp);
            snprintf(err, errlen, "CUDA: uploading a weight failed");
            goto fail;
        }
        off += align256(upload_bytes(&ups[i]));
    }
    cudaFree(regroup_tmp);
    if (w->output.data == w->token_embd.data) s->output = s->embd;

    int failed = 0;
    size_t scratch = 0, kv = 0;
    s->k_store = dev_alloc(kv_half * 2, &kv, &failed);
    s->v_store = dev_alloc(kv_half * 2, &kv, &failed);
    s->x = dev_alloc(T * c->dim * sizeof(float), &scratch, &failed);
    s->xb = dev_alloc(T * widest * sizeof(float), &scratch, &failed);
    s->q = dev_alloc(T * s->q_dim * sizeof(float), &scratch, &failed);
    s->k = dev_alloc(T * s->kv_dim * sizeof(float), &scratch, &failed);
    s->v = dev_alloc(T * s->kv_dim * sizeof(float), &scratch, &failed);
    s->hb = dev_alloc(T * c->hidden_dim * sizeof(float), &scratch, &failed);
    s->hb2 = dev_alloc(T * c->hidden_dim * sizeof(float), &scratch, &failed);
    s->logits = dev_alloc((size_t)s->n_logits_rows * c->vocab_size * sizeof(float), &scratch, &failed);
    s->lp = dev_alloc((size_t)s->n_logits_rows * sizeof(float), &scratch, &failed);
    s->d_ids = dev_alloc((size_t)s->n_logits_rows * sizeof(int32_t), &scratch, &failed);
    s->inv_freq = dev_alloc((size_t)c->rope_dim / 2 * sizeof(float), &scratch, &failed);
    s->argmax_scratch = dev_alloc(ck_argmax_scratch(s->n_logits_rows), &scratch, &failed);
    s->d_cval = dev_alloc((size_t)s->n_logits_rows * CK_TOPK_MAX * sizeof(float), &scratch, &failed);
    s->d_cid = dev_alloc((size_t)s->n_logits_rows * CK_TOPK_MAX * sizeof(int32_t), &scratch, &failed);
    s->topk_scratch = dev_alloc(ck_topk_scratch(s->n_logits_rows), &scratch, &failed);
    s->xh = dev_alloc(T * s->widest_in * 2, &scratch, &failed);
    s->wtmp = dev_alloc(s->wtmp_bytes, &scratch, &failed);
    s->gemm_part_floats = (size_t)CK_GEMM_MAX_SPLITS * (T < GRAPH_MAX_T ? T : GRAPH_MAX_T) * s->widest_out;
    s->gemm_part = dev_alloc(s->gemm_part_floats * sizeof(float), &scratch, &failed);
    const char *exact = getenv("ORCD_CUDA_EXACT");
    if (!(exact && *exact == '1')) {
        const size_t q8_rows = T < GEMV_MAX_T ? T : GEMV_MAX_T, units = q8_rows * (size_t)(s->widest_in / 32);
        s->xq.qs = dev_alloc(q8_rows * s->widest_in, &scratch, &failed);
        s->xq.d = dev_alloc(units * sizeof(float), &scratch, &failed);
        s->xq.sum = dev_alloc(units * sizeof(int32_t), &scratch, &failed);
    } else {
        log_info("cuda: exact mode (ORCD_CUDA_EXACT=1): fp32 activations in every product");
    }
    const size_t chunk = (size_t)(opt->max_batch < ATTN_CHUNK ? opt->max_batch : ATTN_CHUNK);
    s->part = dev_alloc(chunk * c->n_heads * CK_ATTN_MAX_SPLITS * (c->head_dim + 2) * sizeof(float), &scratch, &failed);
    s->attn_done = dev_alloc(chunk * c->n_heads * sizeof(unsigned), &scratch, &failed);
    if (failed || cudaMallocHost((void **)&s->h_ids, (size_t)s->n_logits_rows * sizeof(int32_t)) != cudaSuccess ||
        cudaMallocHost((void **)&s->h_cval, (size_t)s->n_logits_rows * CK_TOPK_MAX * sizeof(float)) != cudaSuccess ||
        cudaMallocHost((void **)&s->h_cid, (size_t)s->n_logits_rows * CK_TOPK_MAX * sizeof(int32_t)) != cudaSuccess ||
        cudaMallocHost((void **)&s->h_lp, (size_t)s->n_logits_rows * sizeof(float)) != cudaSuccess) {
        snprintf(err, errlen, "out of GPU memory: KV cache %zu bytes, scratch %zu bytes", kv, scratch);
        goto fail;
    }
    cudaMemset(s->argmax_scratch, 0, ck_argmax_scratch(s->n_logits_rows));
    cudaMemset(s->attn_done, 0, chunk * c->n_heads * sizeof(unsigned));
    cudaMemset(s->k_store, 0, kv_half * 2);
    cudaMemset(s->v_store, 0, kv_half * 2);
    float *inv = malloc((size_t)c->rope_dim / 2 * sizeof(float) + 1);
    if (!inv) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->rope_dim / 2; i++) inv[i] = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->rope_dim);
    cudaMemcpy(s->inv_freq, inv, (size_t)c->rope_dim / 2 * sizeof(float), cudaMemcpyHostToDevice);
    free(inv);
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        snprintf(err, errlen, "CUDA: %s", cudaGetErrorString(e));
        goto fail;
    }
    s->base.mem_bandwidth = measure_bandwidth(s->stream);
    s->base.weight_bytes = weight_bytes;
    s->base.kv_bytes = kv;
    s->base.scratch_bytes = scratch;
    free(ups);
    return &s->base;

fail:
    free(ups);
    cuda_free(&s->base);
    return NULL;
}

#endif /* ORCD_CUDA */
