/*
 * dot: dot products of one weight row with one activation, in portable C, and the run-time choice
 * between these and the AVX2 kernels of dot_avx2.c (quant_vec_dot, quant_q8a_quantize).
 *
 * Quantized weights meet the activation quantized to Q8A blocks of 32 (fp32 scale da, int8 a, sum of a).
 * For each 32-value activation block the integer dot of the weight's q with a is exact; the scales are
 * applied once per block (or per 16-value sub-block for Q6_K, still in integers), and a layout with a
 * minimum (x = d*q + m, or d*sc*q - dmin*min) adds its minimum times da * sum:
 *   Q4_0  da * d * (sum_i q_i a_i - 8 * sum)          (q 0..15)
 *   Q4_1  da * d * sum_i q_i a_i + da * m * sum
 *   Q5_0  da * d * (sum_i q_i a_i - 16 * sum)         (q 0..31)
 *   Q5_1  da * d * sum_i q_i a_i + da * m * sum
 *   Q8_0  da * d * sum_i q_i a_i
 *   Q2_K  da * d * sum_{16-groups g} sc_g * sum_g q a  - da * dmin * sum_g min_g * sum_g a
 *   Q3_K  da * d * sum_{16-groups g} (sc_g - 32) * sum_g q a                     (q -4..3)
 *   Q4_K, Q5_K  da * d * sc_j * sum_i q_i a_i - da * dmin * min_j * sum          (one block = sub-block j)
 *   Q6_K  da * d * (sc_lo * sum_lo (q - 32) a + sc_hi * sum_hi (q - 32) a)      (two 16-groups per block)
 * Float weights (F32, F16, BF16) meet the fp32 activation, with 8 partial sums folded in double at the end.
 *
 * The portable kernels are the reference for the AVX2 ones (tests/unit/test_quant.c checks both against a
 * double-precision dot of dequantize_row). Both read fp16 scales through quant_f16_table, which the first
 * call fills (pthread_once) along with the table of kernels. Not here: threading and rows (the CPU
 * backend's matmul).
 */
#define _POSIX_C_SOURCE 200809L
#include "quant_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define F16(h) quant_f16_table[(h)]

/* quant_matmul's one-row loop: how far ahead of the row in hand to prefetch (a few rows of a 0.5B model) */
#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 2048
#endif

/* ---- float weights ---- */

static float dot_f32(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const float *v = w;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += v[i + k] * x[i + k];
    double sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < n; i++) sum += (double)v[i] * x[i];
    return (float)sum;
}

static float dot_f16(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const uint16_t *h = w;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += F16(h[i + k]) * x[i + k];
    double sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < n; i++) sum += (double)F16(h[i]) * x[i];
    return (float)sum;
}

static float dot_bf16(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const uint16_t *h = w;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += quant_bf16_to_f32(h[i + k]) * x[i + k];
    double sum = 0;
    for (int k = 0; k < 8; k++) sum += acc[k];
    for (; i < n; i++) sum += (double)quant_bf16_to_f32(h[i]) * x[i];
    return (float)sum;
}

/* ---- blocks of 32 ---- */

/* sum_j q_j a_j over a block of 32 nibbles (value j low nibble of qs[j], j+16 high nibble). */
static int32_t dot_nibbles(const uint8_t qs[16], const int8_t a[32]) {
    int32_t s = 0;
    for (int j = 0; j < 16; j++) s += (qs[j] & 0x0F) * a[j] + (qs[j] >> 4) * a[j + 16];
    return s;
}

/* sum_j q_j a_j over a block of 32 five-bit values (nibbles plus bit j of qh). */
static int32_t dot_5bit(const uint8_t qs[16], const uint8_t qh[4], const int8_t a[32]) {
    const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    int32_t s = 0;
    for (int j = 0; j < 16; j++) {
        const int q0 = (qs[j] & 0x0F) | (int)((h >> j) & 1) << 4;
        const int q1 = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
        s += q0 * a[j] + q1 * a[j + 16];
    }
    return s;
}

static float dot_q4_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ4_0 *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK4_0; i++)
        acc += F16(b[i].d) * xq[i].d * (float)(dot_nibbles(b[i].qs, xq[i].qs) - 8 * xq[i].sum);
    return acc;
}

static float dot_q4_1(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ4_1 *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK4_1; i++)
        acc += F16(b[i].d) * xq[i].d * (float)dot_nibbles(b[i].qs, xq[i].qs) +
               F16(b[i].m) * xq[i].d * (float)xq[i].sum;
    return acc;
}

static float dot_q5_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ5_0 *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK5_0; i++)
        acc += F16(b[i].d) * xq[i].d * (float)(dot_5bit(b[i].qs, b[i].qh, xq[i].qs) - 16 * xq[i].sum);
    return acc;
}

static float dot_q5_1(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ5_1 *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK5_1; i++)
        acc += F16(b[i].d) * xq[i].d * (float)dot_5bit(b[i].qs, b[i].qh, xq[i].qs) +
               F16(b[i].m) * xq[i].d * (float)xq[i].sum;
    return acc;
}

static float dot_q8_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ8_0 *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t s = 0;
        for (int j = 0; j < QK8_0; j++) s += b[i].qs[j] * xq[i].qs[j];
        acc += F16(b[i].d) * xq[i].d * (float)s;
    }
    return acc;
}

/* ---- K-quants: super-blocks of 256, eight activation blocks each ---- */

static float dot_q2_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ2_K *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = F16(b->d), dmin = F16(b->dmin);
        for (int k = 0; k < 8; k++, xq++) { /* activation block k: values 32k .. 32k+31 */
            const int h = k / 4, s = k % 4;
            int32_t qa = 0, ma = 0;
            for (int g = 0; g < 2; g++) { /* the two 16-groups of the block */
                const uint8_t sc = b->scales[2 * k + g];
                int32_t dot = 0, suma = 0;
                for (int l = 16 * g; l < 16 * g + 16; l++) {
                    dot += ((b->qs[32 * h + l] >> (2 * s)) & 3) * xq->qs[l];
                    suma += xq->qs[l];
                }
                qa += (sc & 0x0F) * dot;
                ma += (sc >> 4) * suma;
            }
            acc += xq->d * (d * (float)qa - dmin * (float)ma);
        }
    }
    return acc;
}

static float dot_q3_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ3_K *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = F16(b->d);
        for (int k = 0; k < 8; k++, xq++) {
            const int h = k / 4, s = k % 4;
            int32_t qa = 0;
            for (int g = 0; g < 2; g++) {
                const int si = 2 * k + g;
                const int lo = (b->scales[si % 8] >> (si < 8 ? 0 : 4)) & 0x0F;
                const int hi = (b->scales[8 + si % 4] >> (2 * (si / 4))) & 3;
                int32_t dot = 0;
                for (int l = 16 * g; l < 16 * g + 16; l++) {
                    const int q = ((b->qs[32 * h + l] >> (2 * s)) & 3) - (((b->hmask[l] >> k) & 1) ? 0 : 4);
                    dot += q * xq->qs[l];
                }
                qa += ((lo | hi << 4) - 32) * dot;
            }
            acc += xq->d * d * (float)qa;
        }
    }
    return acc;
}

static float dot_q4_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ4_K *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = F16(b->d), dmin = F16(b->dmin);
        for (int j = 0; j < 8; j++, xq++) {
            uint8_t sc, m;
            quant_k4_scale_min(b->scales, j, &sc, &m);
            const uint8_t *qs = b->qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) dot += ((qs[l] >> shift) & 0x0F) * xq->qs[l];
            acc += xq->d * (d * (float)sc * (float)dot - dmin * (float)m * (float)xq->sum);
        }
    }
    return acc;
}

static float dot_q5_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ5_K *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = F16(b->d), dmin = F16(b->dmin);
        for (int j = 0; j < 8; j++, xq++) {
            uint8_t sc, m;
            quant_k4_scale_min(b->scales, j, &sc, &m);
            const uint8_t *qs = b->qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++)
                dot += (((qs[l] >> shift) & 0x0F) | ((b->qh[l] >> j) & 1) << 4) * xq->qs[l];
            acc += xq->d * (d * (float)sc * (float)dot - dmin * (float)m * (float)xq->sum);
        }
    }
    return acc;
}

static float dot_q6_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ6_K *b = w;
    float acc = 0;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = F16(b->d);
        for (int k = 0; k < 8; k++, xq++) { /* activation block k: values 32k .. 32k+31 */
            const int h = k / 4, g = k % 4; /* half, and group of 32 within it (dequant.c's table) */
            const uint8_t *ql = b->ql + 64 * h + 32 * (g % 2), *qh = b->qh + 32 * h;
            const int lshift = 4 * (g / 2), hshift = 2 * g;
            int32_t dot[2] = {0, 0};
            for (int l = 0; l < 32; l++) {
                const int q = ((ql[l] >> lshift) & 0x0F) | ((qh[l] >> hshift) & 3) << 4;
                dot[l / 16] += (q - 32) * xq->qs[l];
            }
            acc += xq->d * d * (float)(b->scales[2 * k] * dot[0] + b->scales[2 * k + 1] * dot[1]);
        }
    }
    return acc;
}

/* ---- Q8A quantization ---- */

/* round(v) half away from zero, v clamped to [-127, 127] first (NaN -> -127), without libm calls; the
 * AVX2 path computes the same values */
static int8_t q8a_round(float v) {
    if (!(v >= -127.0f)) v = -127.0f;
    if (v > 127.0f) v = 127.0f;
    int t = (int)v;                  /* truncation, exact here */
    const float frac = v - (float)t; /* exact */
    t += (frac >= 0.5f) - (frac <= -0.5f);
    return (int8_t)t;
}

void quant_q8a_quantize_portable(const float *x, BlockQ8A *y, int64_t n) {
    for (int64_t i = 0; i < n / QK8A; i++, x += QK8A, y++) {
        float amax = 0;
        for (int j = 0; j < QK8A; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) amax = a; /* NaN never compares greater: skipped */
        }
        const float d = amax / 127, id = d != 0 ? 1 / d : 0;
        int32_t sum = 0;
        for (int j = 0; j < QK8A; j++) {
            y->qs[j] = q8a_round(x[j] * id);
            sum += y->qs[j];
        }
        y->d = d;
        y->sum = sum;
    }
}

/* ---- dispatch ---- */

QuantDotFn quant_dot_portable(uint32_t type) {
    switch (type) {
    case QT_F32:
        return dot_f32;
    case QT_F16:
        return dot_f16;
    case QT_BF16:
        return dot_bf16;
    case QT_Q4_0:
        return dot_q4_0;
    case QT_Q4_1:
        return dot_q4_1;
    case QT_Q5_0:
        return dot_q5_0;
    case QT_Q5_1:
        return dot_q5_1;
    case QT_Q8_0:
        return dot_q8_0;
    case QT_Q2_K:
        return dot_q2_k;
    case QT_Q3_K:
        return dot_q3_k;
    case QT_Q4_K:
        return dot_q4_k;
    case QT_Q5_K:
        return dot_q5_k;
    case QT_Q6_K:
        return dot_q6_k;
    default:
        return NULL;
    }
}

/* The kernels in use, per type: filled once (pthread_once on the first call; again by
 * quant_cpu_force_portable, for tests), then read only. block_mask[t] is the type's block
 * size minus one (every block size is a power of two), to check n without a division in the hot path. */
static _Atomic(QuantDotFn) dot_table[QT_COUNT];
static uint32_t block_mask[QT_COUNT];
static _Atomic(QuantQ8AFn) q8a_fn;
static _Atomic(QuantGemmFn) gemm_table[QT_COUNT];
static _Atomic(QuantDot2Fn) dot2_table[QT_COUNT]; /* NULL: quant_gemv goes row by row */
static uint8_t self_prefetch[QT_COUNT];          /* the kernel in use prefetches its row itself */
static atomic_int table_state; /* 0 not filled, 1 AVX2 where available, 2 portable forced */

static void fill_tables(int portable) {
    const int avx2 = !portable && quant_avx2_usable();
    for (uint32_t t = 0; t < QT_COUNT; t++) {
        QuantDotFn fn = avx2 ? quant_dot_avx2(t) : NULL;
        if (!fn) fn = quant_dot_portable(t);
        block_mask[t] = fn ? quant_traits(t)->block_elems - 1 : 0;
        atomic_store_explicit(&dot_table[t], fn, memory_order_relaxed);
        atomic_store_explicit(&gemm_table[t], avx2 ? quant_gemm_avx2(t) : NULL, memory_order_relaxed);
        atomic_store_explicit(&dot2_table[t], avx2 ? quant_dot2_avx2(t) : NULL, memory_order_relaxed);
        self_prefetch[t] = avx2 && (t == QT_Q4_K || t == QT_Q5_K || t == QT_Q6_K);
    }
    QuantQ8AFn q = avx2 ? quant_q8a_avx2() : NULL;
    atomic_store_explicit(&q8a_fn, q ? q : quant_q8a_quantize_portable, memory_order_relaxed);
    atomic_store_explicit(&table_state, portable ? 2 : 1, memory_order_release);
}

float quant_f16_table[65536];

static void init_once(void) {
    for (uint32_t h = 0; h < 65536; h++) quant_f16_table[h] = quant_f16_to_f32((uint16_t)h);
    fill_tables(0);
}

static void ensure_tables(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (__builtin_expect(atomic_load_explicit(&table_state, memory_order_acquire) == 0, 0))
        pthread_once(&once, init_once);
}

int quant_cpu_force_portable(int on) {
    ensure_tables();
    const int was = atomic_load_explicit(&table_state, memory_order_acquire) == 2;
    fill_tables(on);
    return was;
}

const char *quant_cpu_path(void) {
    ensure_tables();
    return atomic_load_explicit(&table_state, memory_order_relaxed) == 1 && quant_avx2_usable() ? "avx2"
                                                                                                : "portable";
}

static void fail_type(const char *fn, uint32_t type, int64_t n) {
    fprintf(stderr, "%s:%d: %s: type %s, n %lld (expected a supported type and n a multiple of its block)\n",
            __FILE__, __LINE__, fn, quant_name(type), (long long)n);
    abort();
}

float quant_vec_dot(uint32_t type, const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    ensure_tables();
    const QuantDotFn fn =
        type < QT_COUNT ? atomic_load_explicit(&dot_table[type], memory_order_relaxed) : NULL;
    if (__builtin_expect(!fn || n < 0 || (n & block_mask[type]), 0)) fail_type("quant_vec_dot", type, n);
    return fn(w, x, xq, n);
}

void quant_q8a_quantize(const float *x, BlockQ8A *y, int64_t n) {
    ensure_tables();
    if (n < 0 || n % QK8A) fail_type("quant_q8a_quantize", QT_F32, n);
    atomic_load_explicit(&q8a_fn, memory_order_relaxed)(x, y, n);
}

void quant_gemv(uint32_t type, const void *w, size_t row_bytes, int64_t nr, int64_t n, const float *x,
                const BlockQ8A *xq, float *y) {
    ensure_tables();
    const QuantDotFn fn = type < QT_COUNT ? atomic_load_explicit(&dot_table[type], memory_order_relaxed) : NULL;
    if (__builtin_expect(!fn || n < 0 || (n & block_mask[type]), 0)) fail_type("quant_gemv", type, n);
    /* the rows are read once, in order: ask for the bytes PREFETCH_AHEAD further on (the hardware
     * prefetchers alone leave a single thread at ~3/4 of the memory bandwidth on the LM head); the
     * K-quant kernels prefetch inside their loop instead (rows of 4864 values are longer than
     * PREFETCH_AHEAD, and 40 prefetches at once at the start of a row left Q6_K at 9.8 GB/s from memory
     * instead of 14) */
    /* two rows per step where the type has a two-row kernel (more independent work per activation load):
     * row r with row r + nr/2, two sequential streams (neighbouring rows interleaved left the hardware
     * prefetchers behind: Q8_0 from memory 16 -> 11 GB/s a thread; rows half apart 19 GB/s) */
    const QuantDot2Fn fn2 = xq ? atomic_load_explicit(&dot2_table[type], memory_order_relaxed) : NULL;
    int64_t r = 0;
    if (fn2) {
        const int64_t half = nr / 2;
        const size_t gap = (size_t)half * row_bytes;
        float y2[2];
        for (; r < half; r++) {
            const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
            if (!self_prefetch[type])
                for (size_t off = 0; off < row_bytes; off += 64) {
                    __builtin_prefetch(row + PREFETCH_AHEAD + off, 0, 0);
                    __builtin_prefetch(row + gap + PREFETCH_AHEAD + off, 0, 0);
                }
            fn2(row, gap, xq, n, y2);
            y[r] = y2[0], y[r + half] = y2[1];
        }
        r = 2 * half;
    }
    for (; r < nr; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * row_bytes;
        if (!self_prefetch[type])
            for (size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(row + PREFETCH_AHEAD + off, 0, 0);
        y[r] = fn(row, x, xq, n);
    }
}

void quant_matmul(uint32_t type, const void *w, size_t row_bytes, int64_t nr, int64_t n, const float *x,
                  const BlockQ8A *xq, int T, float *y, int64_t ldy) {
    ensure_tables();
    const QuantDotFn fn = type < QT_COUNT ? atomic_load_explicit(&dot_table[type], memory_order_relaxed) : NULL;
    if (__builtin_expect(!fn || n < 0 || (n & block_mask[type]), 0)) fail_type("quant_matmul", type, n);
    const QuantGemmFn gemm = atomic_load_explicit(&gemm_table[type], memory_order_relaxed);
    if (gemm && xq && n % QK8A == 0) {
        gemm(w, row_bytes, nr, n, xq, T, y, ldy);
        return;
    }
    for (int t = 0; t < T; t++)
        quant_gemv(type, w, row_bytes, nr, n, x + (size_t)t * n, xq ? xq + (size_t)t * (n / QK8A) : NULL,
                   y + (size_t)t * ldy);
}
