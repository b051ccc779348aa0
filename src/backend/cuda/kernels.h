/*
 * cuda/kernels: the CUDA kernels of the forward pass, as C-callable launchers (kernels.cu). Each one is
 * the device twin of a CPU op in backend/cpu/ and is tested against it (tests/unit/test_cuda.c).
 *
 * Every pointer here is device memory; every launcher only enqueues work on `stream` (no allocation, no
 * synchronisation), so a whole decode step can be captured as a CUDA graph. Matrices are row-major:
 * x (T, cols) holds T activation rows, a weight holds `rows` rows of `cols` values stored as its GGUF type.
 *
 * The GEMV input layout: the fused GEMV kernels read each activation row (n values, n a multiple of 32)
 * permuted so that the lanes of a warp, each on its own 32-value unit, read consecutive memory: value j
 * of unit u (value 32u + j) is stored at (j / 4) * n / 8 + 4u + j % 4 (rows of other lengths, never a GEMV
 * input, stay row-major). The kernels that feed a GEMV (RMSNorm, attention, gate/up) write it directly
 * when asked (`gemv_layout`); ck_to_gemv_layout converts.
 *
 * Not here: which kernel runs when (cuda.c), cuBLAS (cuda.c).
 */
#ifndef ORCD_CUDA_KERNELS_H
#define ORCD_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A weight in device memory, quantized as stored. */
typedef struct CkMat {
    uint32_t type;      /* QuantType */
    const void *data;
    int64_t rows, cols;
    size_t row_bytes;
} CkMat;

/* Weights on the device: rows as the file stores them, except rows of the types whose blocks are not 16-byte
 * aligned (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q6_K: ck_regrouped), whose bytes are regrouped within the row so
 * that the GEMV reads a unit in a few aligned loads (dequant.cuh).
 * ck_row_bytes: a row's bytes on the device (CkMat.row_bytes; a regrouped row is padded to a multiple of
 * 16). ck_put_rows: rows r0 .. r0 + n - 1 of m from src, n rows as the file stores them in device memory
 * (a copy, or the regrouping); 0, or -1 when a launch or copy failed. */
int ck_regrouped(uint32_t type);
size_t ck_row_bytes(uint32_t type, int64_t cols);
int ck_put_rows(const CkMat *m, int64_t r0, int64_t n, const void *src, cudaStream_t s);

/* Activations quantized to 8 bits per block of 32 values, as the CPU's BlockQ8A (quant_q8a_quantize:
 * d = max|x| / 127, q = x / d rounded to nearest, sum = sum of q), for the GEMV kernels: quantized weights
 * meet them in integer dot products (dp4a) with the CPU's formulas (src/quant/dot.c). Row t of n values
 * (U = n / 32 units): qs + t*n holds the first 16 q of unit u at u*16 and the last 16 at n/2 + u*16 (so a
 * warp's lanes, one unit each, read coalesced 16-byte groups); d[t*U + u] and sum[t*U + u]. qs = NULL
 * means none (fp32 activations: the CPU's --exact arithmetic). */
typedef struct CkQ8 {
    int8_t *qs;
    float *d;
    int32_t *sum;
} CkQ8;

/* Launch the kernels that follow with programmatic dependent launch (only on compute capability 9.0 or newer):
 * process-wide, set by the backend before each step it enqueues (the engine's one thread). */
void ck_set_pdl(int on);

#ifdef ORCD_TIMELINE
#include <stdio.h>
/* a developer's build (timeline.cuh): empty the kernels' timeline before a step; write it after */
int ck_timeline_arm(cudaStream_t stream);
int ck_timeline_dump(FILE *f);
#endif

/* Whether the kernels have a device layout for `type` (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q2_K..Q6_K). */
int ck_type_supported(uint32_t type);

/* x (T, cols) = rows token[i] of emb, dequantized. */
void ck_embed(const CkMat *emb, const int32_t *token, int T, float *x, cudaStream_t s);

/* y (T, dim) = rmsnorm(x row src[i]) * w, where src = NULL means row i; y in the GEMV input layout when
 * gemv_layout; also into q (8-bit) unless q is NULL or dim is not a multiple of 32. */
void ck_rmsnorm(const float *x, const int32_t *src, const float *w, float *y, int T, int dim, float eps,
                int gemv_layout, const CkQ8 *q, cudaStream_t s);

/* q = x (T, n; GEMV input layout, n a multiple of 32) quantized to 8 bits. */
void ck_quantize_q8(const float *x, const CkQ8 *q, int T, int n, cudaStream_t s);

/* y (T, n) = x (T, n) in the GEMV input layout (n a multiple of 32). */
void ck_to_gemv_layout(const float *x, float *y, int T, int n, cudaStream_t s);

/* y (T, rows) = x (T, cols) W^T (+ bias) (+ y when accumulate): fused dequantize-and-dot, each weight row
 * read once per 8 activation rows. For small T (decode). x in the GEMV input layout; y row-major. A
 * quantized weight meets xq (the same activations in 8 bits) when xq has some, x otherwise; a float
 * weight always meets x. Long rows may be spread over 4 warps whose sums are added in order (float rows of
 * 256+ units; quantized rows of 128+ units when the launch has fewer rows than 8 an SM): deterministic,
 * but then the last bits depend on the launch's row count and the device's SM count. */
void ck_gemv(const CkMat *w, const float *x, const CkQ8 *xq, int T, float *y, const float *bias, int accumulate,
             cudaStream_t s);

/* Several products of one input in one launch (Q, K and V): y_i (T, rows_i) = x W_i^T (+ bias_i) (+ y_i
 * when accumulate), as ck_gemv, for up to CK_GEMV_MAX_OUT weights of one type and row length; -1 (and
 * nothing enqueued) when they differ. Bit for bit what separate ck_gemv launches give, unless the launch's
 * total row count spreads quantized rows over warps differently than a weight's own would (ck_gemv). */
#define CK_GEMV_MAX_OUT 3
typedef struct CkGemvOut {
    const CkMat *w;
    float *y;
    const float *bias;
} CkGemvOut;
int ck_gemv_multi(const CkGemvOut *outs, int n, const float *x, const CkQ8 *xq, int T, int accumulate,
                  cudaStream_t s);

/* The RMSNorm of a product's input inside the product: x = rmsnorm(residual row) * w is computed by every
 * block of the product into its shared memory (one read of the row a block) instead of by ck_rmsnorm into
 * memory. For F16 and BF16 weights (fp32 inputs), one entry, rows of at most CK_RMS_IN_MAX values (a
 * multiple of 32); -1 (nothing enqueued) otherwise or when the weights differ in type or length. Products as
 * ck_gemv_multi (no accumulation) and ck_gemv_swiglu. */
#define CK_RMS_IN_MAX 1024
typedef struct CkRmsIn {
    const float *x; /* the residual row (row-major) */
    const float *w; /* the norm's weights */
    float eps;
} CkRmsIn;
int ck_gemv_multi_rms(const CkGemvOut *outs, int n, const CkRmsIn *in, int T, cudaStream_t s);
int ck_gemv_swiglu_rms(const CkMat *gate, const CkMat *up, const CkRmsIn *in, int T, float *y, cudaStream_t s);

/* Several ck_gemm products of one input in one launch (Q, K and V; gate and up), as ck_gemm, for up to
 * CK_GEMV_MAX_OUT weights of one type and row length (-1, nothing enqueued, when they differ); `part` must
 * hold the partial sums of all of them (splits x T x their rows together). */
int ck_gemm_multi(const CkGemvOut *outs, int n, const float *x, int T, int accumulate, float *part,
                  size_t part_floats, cudaStream_t s);

/* y (T, rows) = x (T, cols) W^T (+ bias) (+ y when accumulate) on the tensor cores, for larger T (batched
 * decode steps, prefill): tiles of the weight are dequantized into shared memory as fp16 (never into global
 * memory), the activations rounded to fp16, the products accumulated in fp32. x row-major. Any type with a
 * device layout; -1 (and nothing enqueued) when cols is not a multiple of 32. When the output alone has too
 * few tiles to fill the device (small T), the rows' length is split in up to CK_GEMM_MAX_SPLITS parts
 * whose partial sums go to `part` (part_floats floats; splits x T x rows needed) and are added in a fixed
 * order (deterministic); part NULL: no split. */
#define CK_GEMM_MAX_SPLITS 16
int ck_gemm(const CkMat *w, const float *x, int T, float *y, const float *bias, int accumulate, float *part,
            size_t part_floats, cudaStream_t s);

/* Dequantize a whole weight into out (rows, cols): fp16 (half_out) or fp32. For the tensor-core path. */
void ck_dequant(const CkMat *w, void *out, int half_out, cudaStream_t s);

/* y (n) fp16 = x (n) fp32 */
void ck_to_half(const float *x, void *y, size_t n, cudaStream_t s);

/* y (T, n) += bias (n) */
void ck_add_bias(float *y, const float *bias, int T, int n, cudaStream_t s);

/* Positions, sequences and the page table for the attention and the KV writes. */
typedef struct CkKV {
    void *k, *v;          /* fp16 stores (n_layers, n_pages, page_size, kv_dim) */
    const int32_t *table; /* (n_slots, pages_per_slot) */
    int pages_per_slot, page_size, n_pages;
    const int32_t *pos, *seq; /* (T,) */
} CkKV;

/* RoPE on q (T, n_heads*head_dim) and k (T, n_kv_heads*head_dim) in place (style: RopeStyle), then k and
 * v (fp16) into layer l of the KV store at each entry's (seq, pos). */
void ck_rope_kv(float *q, float *k, const float *v, const float *inv_freq, int T, int n_heads, int n_kv_heads,
                int head_dim, int rope_dim, int style, const CkKV *kv, int layer, cudaStream_t s);

/* out (T, n_heads*head_dim) = softmax(q k^T / sqrt(head_dim)) v over positions 0..pos[i] of seq[i], in
 * splits of split_len positions (flash-decoding: one block per split, head and entry; the last to finish
 * combines);
 * `part` holds T * n_heads * max_splits * (head_dim + 2) floats, and max_splits * split_len must cover the
 * longest entry. head_dim: 64, 128 or 256. out in the GEMV input layout when gemv_layout; also into oq
 * (8-bit) unless it is NULL. done: T * n_heads counters, zeroed once before the first call (the last split
 * of each head and entry combines them all and leaves its counter zeroed again). */
#define CK_ATTN_MAX_SPLITS 64

/* ck_rope_kv done by ck_attention itself (one kernel less a layer): each block rotates its head of the query
 * as it reads it, and the split holding an entry's own position rotates that entry's key and writes it and
 * the value into the store before it reads them. Only for steps where no two entries share a sequence (an
 * entry would read a key another block writes). The same bits as ck_rope_kv followed by ck_attention. */
typedef struct CkRope {
    const float *k, *v;     /* (T, n_kv_heads*head_dim) as the products wrote them; k NULL: no RoPE here */
    const float *inv_freq;  /* (rope_dim / 2) */
    int rope_dim, neox;
} CkRope;

/* rope: NULL, or q not rotated and the entries' keys and values not stored yet (CkRope). */
void ck_attention(const float *q, float *out, float *part, int max_splits, int split_len, int T, int n_heads,
                  int n_kv_heads, int head_dim, const CkKV *kv, int layer, int gemv_layout, const CkQ8 *oq,
                  unsigned *done, const CkRope *rope, cudaStream_t s);

/* The same attention as ck_attention for prefill-like steps (many entries per sequence): tiles of
 * consecutive entries share each tile of keys and values, on the tensor cores (the query and the
 * probabilities rounded to fp16, fp32 sums and softmax). out row-major (never the GEMV layout, no 8-bit
 * form). head_dim 64 or 128, else -1 (and nothing enqueued). */
int ck_attention_tiled(const float *q, float *out, int T, int n_heads, int n_kv_heads, int head_dim, const CkKV *kv,
                       int layer, cudaStream_t s);

/* gate (n) = silu(gate) * up */
void ck_swiglu(float *gate, const float *up, size_t n, cudaStream_t s);

/* y (T, rows) = silu(x Wg^T) * (x Wu^T): the gate and up products and SwiGLU in one pass (small T); x and
 * y in the GEMV input layout (y feeds the down projection); xq as for ck_gemv. -1 (and nothing enqueued)
 * unless the two weights have the same type and shape. */
int ck_gemv_swiglu(const CkMat *gate, const CkMat *up, const float *x, const CkQ8 *xq, int T, float *y,
                   cudaStream_t s);

/* For each of n rows of logits (vocab wide): the first index of the largest value, and its log-probability
 * (softmax at temperature 1). `scratch`: ck_argmax_scratch(n) bytes of device memory, zeroed once before
 * the first call (the kernel leaves it ready for the next). Deterministic. */
size_t ck_argmax_scratch(int n);
void ck_argmax(const float *logits, int n, int vocab, int32_t *ids, float *logprobs, void *scratch, cudaStream_t s);

/* For each of n rows of logits (vocab wide): its k largest values and their ids, best first (equal values:
 * the smaller id first, as the CPU's sampler ranks them), into vals and ids (n, k). 1 <= k <= CK_TOPK_MAX
 * and k <= vocab, else -1 (and nothing enqueued). Deterministic. scratch: ck_topk_scratch(n) bytes of
 * device memory (long rows are cut into slices whose best go there), or NULL (one block per row: slower). */
#define CK_TOPK_MAX 256
size_t ck_topk_scratch(int n);
int ck_topk(const float *logits, int n, int vocab, int k, float *vals, int32_t *ids, void *scratch, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
