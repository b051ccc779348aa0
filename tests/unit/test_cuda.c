/*
 * The CUDA kernels against the CPU ops they mirror (src/quant/dequant.c, src/backend/cpu/ops.c and a
 * double-precision reference for the products and the attention), on random inputs with odd and edge
 * shapes. Each test states its tolerance and prints the worst pair it saw. Skipped where the build has no
 * CUDA or the machine no device (CI); run on the GPU machine by `make unit` (or tools/gpu_check.sh).
 */
#include "test.h"

#include "../../src/quant.h"

#ifndef ORCD_CUDA

TEST(cuda_kernels) {
    test_skip("built without CUDA");
}

#else

#include "../../src/backend/cpu/ops.h"
#include "../../src/backend/cuda/cuda_device.h"
#include "../../src/backend/cuda/kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static int have_device(void) {
    static int known = -1;
    if (known < 0) {
        CudaDeviceInfo ci;
        char why[256];
        known = cuda_device_probe(0, &ci, why, sizeof why) == 0;
        if (!known) fprintf(stderr, "  (no CUDA device: %s)\n", why);
        if (known) ck_set_pdl(ci.cc_major >= 9); /* launched as the backend launches them */
    }
    return known;
}

#define NEED_DEVICE()                                  \
    do {                                               \
        if (!have_device()) {                          \
            test_skip("no CUDA device on this machine"); \
            return;                                    \
        }                                              \
    } while (0)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static float frand(void) { /* uniform in [-1, 1) */
    return (float)rnd() / 2147483648.0f - 1.0f;
}

/* Device copies get 16 bytes of padding, as the backend's weights do (align256): the GEMV's last 32-bit load
 * of a 2-byte-aligned chunk may read 2 bytes past a row's end. */
static void *to_dev(const void *h, size_t n) {
    void *d = NULL;
    if (cudaMalloc(&d, n + 16) != cudaSuccess) return NULL;
    cudaMemcpy(d, h, n, cudaMemcpyHostToDevice);
    return d;
}

/* A weight (rows as the file stores them, rb bytes each) on the device in the backend's row layout
 * (ck_row_bytes, ck_put_rows: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q6_K rows regrouped), with 16 bytes to spare. */
static CkMat weight_on_dev(uint32_t type, const uint8_t *w, int64_t rows, int64_t cols, size_t rb) {
    const size_t drb = ck_row_bytes(type, cols);
    void *raw = to_dev(w, rb * rows), *d = NULL;
    cudaMalloc(&d, drb * rows + 16);
    CkMat m = {type, d, rows, cols, drb};
    if (ck_put_rows(&m, 0, rows, raw, 0)) test_fail_at(__FILE__, __LINE__, "ck_put_rows %s failed", quant_name(type));
    cudaDeviceSynchronize();
    cudaFree(raw);
    return m;
}

static void from_dev(void *h, const void *d, size_t n) {
    cudaDeviceSynchronize();
    cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = quant_f32_to_f16(v);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

/* A random row-major weight of `type`: random bytes with every fp16 scale set to a sane value. */
static uint8_t *random_weight(uint32_t type, int64_t rows, int64_t cols, size_t *row_bytes) {
    const QuantTraits *t = quant_traits(type);
    *row_bytes = (size_t)(cols / t->block_elems) * t->block_bytes;
    uint8_t *w = malloc(*row_bytes * rows);
    const size_t n = *row_bytes * rows;
    if (type == QT_F32) {
        for (size_t i = 0; i < n / 4; i++) ((float *)w)[i] = frand();
        return w;
    }
    if (type == QT_F16 || type == QT_BF16) {
        for (size_t i = 0; i < n / 2; i++) {
            float v = frand();
            uint32_t bits;
            memcpy(&bits, &v, 4);
            ((uint16_t *)w)[i] = type == QT_F16 ? quant_f32_to_f16(v) : (uint16_t)(bits >> 16);
        }
        return w;
    }
    for (size_t i = 0; i < n; i++) w[i] = (uint8_t)rnd();
    for (size_t b = 0; b < n / t->block_bytes; b++) {
        uint8_t *p = w + b * t->block_bytes;
        const float d = 0.01f + 0.02f * (frand() + 1.0f), m = 0.01f * frand();
        switch (type) {
        case QT_Q4_0: case QT_Q5_0: case QT_Q8_0: put_f16(p, d); break;
        case QT_Q4_1: case QT_Q5_1: put_f16(p, d), put_f16(p + 2, m); break;
        case QT_Q4_K: case QT_Q5_K: put_f16(p, d), put_f16(p + 2, fabsf(m)); break;
        case QT_Q2_K: put_f16(p + 80, d), put_f16(p + 82, fabsf(m)); break;
        case QT_Q3_K: put_f16(p + 108, d); break;
        case QT_Q6_K: put_f16(p + 208, d); break;
        }
    }
    return w;
}

/* Where value i of an activation row of n values lives in the GEMV input layout (kernels.h, written here
 * from its definition): value j of unit u at (j / 4) * n / 8 + 4u + j % 4. */
static size_t gemv_at(int i, int n) {
    return n % 32 ? (size_t)i : (size_t)(i % 32 / 4) * (n / 8) + (size_t)(i / 32) * 4 + i % 4;
}

/* x (T, n) permuted into the GEMV input layout */
static float *to_gemv_layout(const float *x, int T, int n) {
    float *y = malloc(sizeof(float) * T * n);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) y[(size_t)t * n + gemv_at(i, n)] = x[(size_t)t * n + i];
    return y;
}

/* x (T, n) quantized by the CPU (quant_q8a_quantize, into *blocks) and uploaded in CkQ8's layout:
 * the first 16 q of unit u at u*16, the last 16 at n/2 + u*16 (kernels.h). */
static CkQ8 q8_to_dev(const float *x, int T, int n, BlockQ8A **blocks) {
    const int U = n / 32;
    BlockQ8A *b = malloc(sizeof(BlockQ8A) * T * U);
    int8_t *qs = malloc((size_t)T * n);
    float *d = malloc(sizeof(float) * T * U);
    int32_t *sum = malloc(sizeof(int32_t) * T * U);
    for (int t = 0; t < T; t++) {
        quant_q8a_quantize(x + (size_t)t * n, b + (size_t)t * U, n);
        for (int u = 0; u < U; u++) {
            const BlockQ8A *bk = &b[t * U + u];
            for (int j = 0; j < 32; j++) qs[(size_t)t * n + (j / 16) * (n / 2) + u * 16 + j % 16] = bk->qs[j];
            d[t * U + u] = bk->d, sum[t * U + u] = bk->sum;
        }
    }
    CkQ8 q = {to_dev(qs, (size_t)T * n), to_dev(d, sizeof(float) * T * U), to_dev(sum, sizeof(int32_t) * T * U)};
    free(qs), free(d), free(sum);
    *blocks = b;
    return q;
}

static void q8_free(CkQ8 q) {
    cudaFree(q.qs), cudaFree(q.d), cudaFree(q.sum);
}

/* The GPU's 8-bit form of T rows of n values (CkQ8 layout) equals the CPU's quant_q8a_quantize of the
 * same fp32 values exactly (same arithmetic); 0 when it does, else the first differing unit + 1. */
static int q8_dev_matches(const CkQ8 *dq, const float *x, int T, int n) {
    const int U = n / 32;
    int8_t *qs = malloc((size_t)T * n);
    float *d = malloc(sizeof(float) * T * U);
    int32_t *sum = malloc(sizeof(int32_t) * T * U);
    BlockQ8A *b = malloc(sizeof(BlockQ8A) * U);
    from_dev(qs, dq->qs, (size_t)T * n);
    from_dev(d, dq->d, sizeof(float) * T * U);
    from_dev(sum, dq->sum, sizeof(int32_t) * T * U);
    int bad = 0;
    for (int t = 0; t < T && !bad; t++) {
        quant_q8a_quantize(x + (size_t)t * n, b, n);
        for (int u = 0; u < U && !bad; u++) {
            if (b[u].d != d[t * U + u] || b[u].sum != sum[t * U + u]) bad = t * U + u + 1;
            for (int j = 0; j < 32; j++)
                if (b[u].qs[j] != qs[(size_t)t * n + (j / 16) * (n / 2) + u * 16 + j % 16]) bad = t * U + u + 1;
        }
    }
    free(qs), free(d), free(sum), free(b);
    return bad;
}

static const uint32_t TYPES[] = {QT_F32, QT_F16, QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                                 QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

/* ck_gemv (with bias and accumulation) and ck_dequant against quant_dequantize_row + a double dot.
 * Tolerance: 1e-5 of sum |w x| (fp32 accumulation over up to 4096 terms), plus 1e-6. */
TEST(cuda_gemv_every_type) {
    NEED_DEVICE();
    const int shapes[][3] = {/* rows, cols (x 256 for K-quants / x 32 else), T */
                             {1, 1, 1}, {7, 2, 1}, {33, 3, 2}, {257, 1, 3}, {64, 4, 5}, {5, 2, 8}, {130, 1, 9},
                             {17, 2, 16}, {3, 16, 17},
                             /* rows of several 32-unit chunks, odd and even counts, a last one partial */
                             {5, 40, 3}, {3, 81, 2},
                             /* rows of 256+ units: float weights take 4 warps a row */
                             {6, 300, 2}, {3, 260, 5},
                             /* many rows of one round, one entry: two rows a warp (gate/up: two pairs a
                              * warp), an odd last one */
                             {20001, 3, 1}};
    double worst_rel = 0;
    const char *worst_at = "";
    char where[128];
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = TYPES[ti];
        const int k_quant = quant_traits(type)->block_elems == 256;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1] * (k_quant ? 256 : 32);
            const int T = shapes[si][2];
            size_t rb;
            uint8_t *w = random_weight(type, rows, cols, &rb);
            float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * T * cols);
            float *bias = malloc(sizeof(float) * rows), *y0 = malloc(sizeof(float) * T * rows);
            float *y = malloc(sizeof(float) * T * rows), *deq = malloc(sizeof(float) * rows * cols);
            for (int64_t r = 0; r < rows; r++) quant_dequantize_row(type, w + r * rb, wf + r * cols, cols);
            for (int64_t i = 0; i < T * cols; i++) x[i] = frand();
            for (int64_t i = 0; i < rows; i++) bias[i] = frand();
            for (int64_t i = 0; i < T * rows; i++) y0[i] = frand();
            float *xl = to_gemv_layout(x, T, (int)cols);
            CkMat m = weight_on_dev(type, w, rows, cols, rb);
            void *dw = (void *)m.data, *dx = to_dev(xl, sizeof(float) * T * cols);
            void *db = to_dev(bias, sizeof(float) * rows), *dy = to_dev(y0, sizeof(float) * T * rows);
            void *dd = to_dev(deq, sizeof(float) * rows * cols);
            const int accumulate = (int)(si % 2);
            ck_gemv(&m, dx, NULL, T, dy, si % 3 ? db : NULL, accumulate, 0);
            from_dev(y, dy, sizeof(float) * T * rows);
            ck_dequant(&m, dd, 0, 0);
            from_dev(deq, dd, sizeof(float) * rows * cols);
            cudaError_t e = cudaGetLastError();
            cudaFree(dw), cudaFree(dx), cudaFree(db), cudaFree(dy), cudaFree(dd);
            if (e != cudaSuccess) FAIL("%s: %s", quant_name(type), cudaGetErrorString(e));
            for (int64_t i = 0; i < rows * cols; i++)
                if (fabsf(deq[i] - wf[i]) > 1e-6f * fabsf(wf[i]) + 1e-30f)
                    FAIL("ck_dequant %s %lldx%lld value %lld: %g, expected %g", quant_name(type), (long long)rows,
                         (long long)cols, (long long)i, deq[i], wf[i]);
            for (int t = 0; t < T; t++)
                for (int64_t r = 0; r < rows; r++) {
                    double ref = (si % 3 ? bias[r] : 0) + (accumulate ? y0[t * rows + r] : 0), mag = 0;
                    for (int64_t k = 0; k < cols; k++) {
                        ref += (double)wf[r * cols + k] * x[t * cols + k];
                        mag += fabs((double)wf[r * cols + k] * x[t * cols + k]);
                    }
                    const double err = fabs(y[t * rows + r] - ref), tol = 1e-5 * mag + 1e-6;
                    snprintf(where, sizeof where, "%s rows %lld cols %lld T %d", quant_name(type), (long long)rows,
                             (long long)cols, T);
                    if (err / tol > worst_rel) worst_rel = err / tol, worst_at = where;
                    if (err > tol)
                        FAIL("ck_gemv %s entry %d row %lld: %.7g, expected %.7g (tol %.3g)", where, t, (long long)r,
                             y[t * rows + r], ref, tol);
                }
            /* quantized weights against 8-bit activations: the CPU's quant_vec_dot on the same Q8A blocks
             * (integer block sums are exact; only the order of the fp32 additions differs) */
            BlockQ8A *xb8 = NULL;
            CkQ8 dq = {0};
            const int q8 = type != QT_F32 && type != QT_F16 && type != QT_BF16;
            if (q8) {
                dq = q8_to_dev(x, T, (int)cols, &xb8);
                m = weight_on_dev(type, w, rows, cols, rb);
                dw = (void *)m.data, dx = to_dev(xl, sizeof(float) * T * cols);
                db = to_dev(bias, sizeof(float) * rows), dy = to_dev(y0, sizeof(float) * T * rows);
                ck_gemv(&m, dx, &dq, T, dy, si % 3 ? db : NULL, accumulate, 0);
                from_dev(y, dy, sizeof(float) * T * rows);
                cudaFree(dw), cudaFree(dx), cudaFree(db), cudaFree(dy);
                for (int t = 0; t < T; t++)
                    for (int64_t r = 0; r < rows; r++) {
                        double ref = (si % 3 ? bias[r] : 0) + (accumulate ? y0[t * rows + r] : 0), mag = 0;
                        ref += quant_vec_dot(type, w + r * rb, x + t * cols, xb8 + t * (cols / 32), cols);
                        for (int64_t k = 0; k < cols; k++) mag += fabs((double)wf[r * cols + k] * x[t * cols + k]);
                        const double err = fabs(y[t * rows + r] - ref), tol = 1e-5 * mag + 1e-6;
                        if (err / tol > worst_rel) worst_rel = err / tol, worst_at = where;
                        if (err > tol)
                            FAIL("ck_gemv 8-bit %s entry %d row %lld: %.7g, expected %.7g (tol %.3g)", where, t,
                                 (long long)r, y[t * rows + r], ref, tol);
                    }
            }
            /* gate (w) and up (a second weight) with SwiGLU in one pass, against the same references */
            size_t rb2;
            uint8_t *w2 = random_weight(type, rows, cols, &rb2);
            float *wf2 = malloc(sizeof(float) * rows * cols);
            for (int64_t r = 0; r < rows; r++) quant_dequantize_row(type, w2 + r * rb2, wf2 + r * cols, cols);
            for (int bits8 = 0; bits8 <= q8; bits8++) {
                CkMat g = weight_on_dev(type, w, rows, cols, rb), u = weight_on_dev(type, w2, rows, cols, rb2);
                dw = (void *)g.data;
                void *dw2 = (void *)u.data;
                dx = to_dev(xl, sizeof(float) * T * cols), dy = to_dev(y0, sizeof(float) * T * rows);
                const int ok = ck_gemv_swiglu(&g, &u, dx, bits8 ? &dq : NULL, T, dy, 0) == 0;
                from_dev(y, dy, sizeof(float) * T * rows);
                cudaFree(dw), cudaFree(dw2), cudaFree(dx), cudaFree(dy);
                if (!ok) FAIL("ck_gemv_swiglu refused %s", quant_name(type));
                for (int t = 0; t < T; t++)
                    for (int64_t r = 0; r < rows; r++) {
                        double gs = 0, us = 0, mg = 0, mu = 0;
                        for (int64_t k = 0; k < cols; k++) {
                            gs += (double)wf[r * cols + k] * x[t * cols + k], mg += fabs((double)wf[r * cols + k] * x[t * cols + k]);
                            us += (double)wf2[r * cols + k] * x[t * cols + k], mu += fabs((double)wf2[r * cols + k] * x[t * cols + k]);
                        }
                        if (bits8) { /* the CPU's 8-bit dots */
                            gs = quant_vec_dot(type, w + r * rb, x + t * cols, xb8 + t * (cols / 32), cols);
                            us = quant_vec_dot(type, w2 + r * rb2, x + t * cols, xb8 + t * (cols / 32), cols);
                        }
                        const double ref = gs / (1.0 + exp(-gs)) * us;
                        const double tol = (1e-5 * mg + 1e-6) * (fabs(us) + 1e-5 * mu) + fabs(gs) * (1e-5 * mu + 1e-6) + 1e-6;
                        /* the output is the down projection's input: the GEMV layout */
                        const float got = y[t * rows + gemv_at((int)r, (int)rows)];
                        if (fabs(got - ref) > tol)
                            FAIL("ck_gemv_swiglu%s %s entry %d row %lld: %.7g, expected %.7g (tol %.3g)",
                                 bits8 ? " 8-bit" : "", where, t, (long long)r, got, ref, tol);
                    }
            }
            if (q8) q8_free(dq);
            free(xb8);
            free(w2), free(wf2);
            free(w), free(wf), free(x), free(xl), free(bias), free(y0), free(y), free(deq);
        }
    }
    fprintf(stderr, "  gemv: worst error %.3f of the tolerance (%s)\n", worst_rel, worst_at);
}

/* ck_gemv_multi_rms and ck_gemv_swiglu_rms (the RMSNorm of the input inside each block of the product)
 * against op_rmsnorm of the residual row and double dots with the dequantized weights. Tolerance: the
 * GEMV's (1e-5 of sum |w x| plus 1e-6; the norm's fp32 rounding, ~2e-6 relative, is inside it). Shapes: a
 * warp's row, 0.5B's Q/K/V (three outputs, bias) and gate/up (pairs of one round, two a warp), many rows of
 * one round (two a warp), the longest row; and the refusals (other types, two entries, longer rows). */
TEST(cuda_gemv_rms) {
    NEED_DEVICE();
    const int shapes[][2] = {{1, 32}, {37, 96}, {1152, 896}, {4864, 896}, {20001, 64}, {300, 1024}}; /* rows, cols */
    const uint32_t types[] = {QT_F16, QT_BF16};
    double worst = 0;
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const uint32_t type = types[ti];
            const int rows = shapes[si][0], cols = shapes[si][1];
            size_t rb;
            uint8_t *w = random_weight(type, rows, cols, &rb), *w2 = random_weight(type, rows, cols, &rb);
            float *wf = malloc(sizeof(float) * rows * cols), *wf2 = malloc(sizeof(float) * rows * cols);
            for (int r = 0; r < rows; r++) {
                quant_dequantize_row(type, w + r * rb, wf + (size_t)r * cols, cols);
                quant_dequantize_row(type, w2 + r * rb, wf2 + (size_t)r * cols, cols);
            }
            float res[1024], nw[1024], xn[1024];
            for (int i = 0; i < cols; i++) res[i] = 8.0f * frand(), nw[i] = 2.0f * frand();
            op_rmsnorm(xn, res, nw, cols, 1e-6f);
            float *bias = malloc(sizeof(float) * rows), *y = malloc(sizeof(float) * 3 * rows);
            for (int i = 0; i < rows; i++) bias[i] = frand();
            CkMat m = weight_on_dev(type, w, rows, cols, rb), m2 = weight_on_dev(type, w2, rows, cols, rb);
            void *dres = to_dev(res, sizeof(float) * cols), *dnw = to_dev(nw, sizeof(float) * cols);
            void *db = to_dev(bias, sizeof(float) * rows), *dy = to_dev(y, sizeof(float) * 3 * rows);
            const CkRmsIn in = {dres, dnw, 1e-6f};
            /* three outputs: the second weight between two uses of the first, the middle one with a bias */
            float *dyf = dy;
            const CkGemvOut outs[3] = {{&m, dyf, NULL}, {&m2, dyf + rows, db}, {&m, dyf + 2 * rows, NULL}};
            if (ck_gemv_multi_rms(outs, 3, &in, 1, 0)) FAIL("ck_gemv_multi_rms refused %s %dx%d", quant_name(type), rows, cols);
            from_dev(y, dy, sizeof(float) * 3 * rows);
            for (int o = 0; o < 3; o++)
                for (int r = 0; r < rows; r++) {
                    const float *wr = (o == 1 ? wf2 : wf) + (size_t)r * cols;
                    double ref = o == 1 ? bias[r] : 0, mag = 0;
                    for (int k = 0; k < cols; k++) ref += (double)wr[k] * xn[k], mag += fabs((double)wr[k] * xn[k]);
                    const double err = fabs(y[o * rows + r] - ref), tol = 1e-5 * mag + 1e-6;
                    if (err / tol > worst) worst = err / tol;
                    if (err > tol)
                        FAIL("ck_gemv_multi_rms %s %dx%d output %d row %d: %.7g, expected %.7g (tol %.3g)", quant_name(type),
                             rows, cols, o, r, y[o * rows + r], ref, tol);
                }
            if (ck_gemv_swiglu_rms(&m, &m2, &in, 1, dy, 0)) FAIL("ck_gemv_swiglu_rms refused %s", quant_name(type));
            from_dev(y, dy, sizeof(float) * rows);
            for (int r = 0; r < rows; r++) {
                double gs = 0, us = 0, mg = 0, mu = 0;
                for (int k = 0; k < cols; k++) {
                    gs += (double)wf[(size_t)r * cols + k] * xn[k], mg += fabs((double)wf[(size_t)r * cols + k] * xn[k]);
                    us += (double)wf2[(size_t)r * cols + k] * xn[k], mu += fabs((double)wf2[(size_t)r * cols + k] * xn[k]);
                }
                const double ref = gs / (1.0 + exp(-gs)) * us;
                const double tol = (1e-5 * mg + 1e-6) * (fabs(us) + 1e-5 * mu) + fabs(gs) * (1e-5 * mu + 1e-6) + 1e-6;
                const float got = y[gemv_at(r, rows)]; /* the down projection's input: the GEMV layout */
                if (fabs(got - ref) > tol)
                    FAIL("ck_gemv_swiglu_rms %s %dx%d row %d: %.7g, expected %.7g (tol %.3g)", quant_name(type), rows,
                         cols, r, got, ref, tol);
            }
            /* what it refuses, enqueuing nothing */
            if (!ck_gemv_multi_rms(outs, 3, &in, 2, 0) || !ck_gemv_swiglu_rms(&m, &m2, &in, 2, dy, 0))
                FAIL("two entries accepted");
            CkMat other = m;
            other.type = QT_Q8_0;
            if (!ck_gemv_swiglu_rms(&other, &other, &in, 1, dy, 0)) FAIL("Q8_0 accepted");
            other = m, other.cols = 1056;
            if (!ck_gemv_swiglu_rms(&other, &other, &in, 1, dy, 0)) FAIL("a row of 1056 accepted");
            cudaError_t e = cudaGetLastError();
            if (e != cudaSuccess) FAIL("%s", cudaGetErrorString(e));
            cudaFree((void *)m.data), cudaFree((void *)m2.data), cudaFree(dres), cudaFree(dnw), cudaFree(db), cudaFree(dy);
            free(w), free(w2), free(wf), free(wf2), free(bias), free(y);
        }
    fprintf(stderr, "  gemv_rms: worst error %.3f of the tolerance\n", worst);
}

/* ck_gemm (tensor cores on tiles dequantized in shared memory) against a double dot of the same fp16
 * inputs: the dequantized weight and the activations each rounded to fp16, as the kernel feeds the tensor
 * cores, so only the fp32 accumulation differs. Tolerance: 4e-5 of sum |w x| plus 1e-6. Shapes cross the
 * tiles' edges (64 rows, 64 entries, 128 values per step). */
TEST(cuda_gemm_every_type) {
    NEED_DEVICE();
    const int shapes[][3] = {/* rows, cols (x 256 for K-quants / x 32 else), T */
                             {1, 1, 17}, {7, 3, 33}, {64, 4, 64}, {65, 1, 65}, {130, 2, 20}, {33, 16, 130},
                             {40, 24, 24}};
    double worst_rel = 0;
    char worst_at[128] = "";
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = TYPES[ti];
        const int k_quant = quant_traits(type)->block_elems == 256;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1] * (k_quant ? 256 : 32);
            const int T = shapes[si][2], accumulate = (int)(si % 2), with_bias = si % 3 != 0;
            size_t rb;
            uint8_t *w = random_weight(type, rows, cols, &rb);
            float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * T * cols);
            float *bias = malloc(sizeof(float) * rows), *y0 = malloc(sizeof(float) * T * rows);
            float *y = malloc(sizeof(float) * T * rows);
            for (int64_t r = 0; r < rows; r++) quant_dequantize_row(type, w + r * rb, wf + r * cols, cols);
            for (int64_t i = 0; i < T * cols; i++) x[i] = frand();
            for (int64_t i = 0; i < rows; i++) bias[i] = frand();
            for (int64_t i = 0; i < T * rows; i++) y0[i] = frand();
            CkMat m = weight_on_dev(type, w, rows, cols, rb);
            void *dw = (void *)m.data, *dx = to_dev(x, sizeof(float) * T * cols);
            void *db = to_dev(bias, sizeof(float) * rows), *dy = to_dev(y0, sizeof(float) * T * rows);
            /* half of the shapes with room for split partial sums */
            const size_t part_floats = si % 2 ? 0 : (size_t)CK_GEMM_MAX_SPLITS * T * rows;
            float *dpart = NULL;
            if (part_floats) cudaMalloc((void **)&dpart, part_floats * sizeof(float));
            const int rc = ck_gemm(&m, dx, T, dy, with_bias ? db : NULL, accumulate, dpart, part_floats, 0);
            from_dev(y, dy, sizeof(float) * T * rows);
            cudaError_t e = cudaGetLastError();
            cudaFree(dw), cudaFree(dx), cudaFree(db), cudaFree(dy), cudaFree(dpart);
            if (rc) FAIL("ck_gemm refused %s", quant_name(type));
            if (e != cudaSuccess) FAIL("%s: %s", quant_name(type), cudaGetErrorString(e));
            for (int64_t i = 0; i < rows * cols; i++) wf[i] = quant_f16_to_f32(quant_f32_to_f16(wf[i]));
            for (int64_t i = 0; i < T * cols; i++) x[i] = quant_f16_to_f32(quant_f32_to_f16(x[i]));
            for (int t = 0; t < T; t++)
                for (int64_t r = 0; r < rows; r++) {
                    double ref = (with_bias ? bias[r] : 0) + (accumulate ? y0[t * rows + r] : 0), mag = 0;
                    for (int64_t k = 0; k < cols; k++) {
                        ref += (double)wf[r * cols + k] * x[t * cols + k];
                        mag += fabs((double)wf[r * cols + k] * x[t * cols + k]);
                    }
                    const double err = fabs(y[t * rows + r] - ref), tol = 4e-5 * mag + 1e-6;
                    if (err / tol > worst_rel)
                        worst_rel = err / tol, snprintf(worst_at, sizeof worst_at, "%s rows %lld cols %lld T %d",
                                                        quant_name(type), (long long)rows, (long long)cols, T);
                    if (err > tol)
                        FAIL("ck_gemm %s rows %lld cols %lld T %d: entry %d row %lld: %.7g, expected %.7g (tol %.3g)",
                             quant_name(type), (long long)rows, (long long)cols, T, t, (long long)r, y[t * rows + r],
                             ref, tol);
                }
            free(w), free(wf), free(x), free(bias), free(y0), free(y);
        }
    }
    size_t rb;
    uint8_t *w = random_weight(QT_Q8_0, 4, 48, &rb);
    CkMat odd = {QT_Q8_0, w, 4, 48, rb};
    if (ck_gemm(&odd, NULL, 20, NULL, NULL, 0, NULL, 0, 0) != -1) FAIL("ck_gemm took rows of 48 values");
    free(w);
    fprintf(stderr, "  gemm: worst error %.3f of the tolerance (%s)\n", worst_rel, worst_at);
}

/* Three random weights of one type (rows[i] x cols) with biases on the device, for the products that
 * take several weights in one launch: dy[i] gets the one-launch result, dr[i] the reference launches'. */
typedef struct Three {
    CkMat m[3];
    void *db[3], *dy[3], *dr[3];
    uint8_t *w[3];
    int64_t rows[3];
} Three;

static void three_make(Three *t, uint32_t type, const int64_t rows[3], int64_t cols, int T) {
    for (int i = 0; i < 3; i++) {
        size_t rb;
        t->rows[i] = rows[i];
        t->w[i] = random_weight(type, rows[i], cols, &rb);
        float *bias = malloc(sizeof(float) * rows[i]);
        for (int64_t r = 0; r < rows[i]; r++) bias[r] = frand();
        t->db[i] = to_dev(bias, sizeof(float) * rows[i]);
        cudaMalloc(&t->dy[i], sizeof(float) * T * rows[i]), cudaMalloc(&t->dr[i], sizeof(float) * T * rows[i]);
        t->m[i] = weight_on_dev(type, t->w[i], rows[i], cols, rb);
        free(bias);
    }
}

static void three_free(Three *t) {
    for (int i = 0; i < 3; i++)
        cudaFree((void *)t->m[i].data), cudaFree(t->db[i]), cudaFree(t->dy[i]), cudaFree(t->dr[i]), free(t->w[i]);
}

/* The largest |dy - dr| of output i (NaN if either has one), and the largest |dr| into *big. */
static float three_diff(const Three *t, int i, int T, float *big) {
    const int64_t n = T * t->rows[i];
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), worst = 0, top = 0;
    from_dev(a, t->dy[i], sizeof(float) * n);
    from_dev(b, t->dr[i], sizeof(float) * n);
    for (int64_t j = 0; j < n; j++) {
        const float d = fabsf(a[j] - b[j]);
        worst = d <= worst ? worst : d; /* NaN sticks */
        top = fabsf(b[j]) > top ? fabsf(b[j]) : top;
    }
    free(a), free(b);
    if (big) *big = top;
    return worst;
}

/* Q, K and V in one launch (ck_gemv_multi) give bit for bit the results of three ck_gemv launches, with 8-bit
 * and fp32 activations; weights of different types are refused. */
TEST(cuda_gemv_multi) {
    NEED_DEVICE();
    const uint32_t types[] = {QT_Q4_K, QT_Q8_0, QT_Q5_0, QT_F16};
    const int64_t rows[3] = {96, 33, 33};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        const int64_t cols = 512;
        const int T = 3;
        float *x = malloc(sizeof(float) * T * cols);
        for (int64_t i = 0; i < T * cols; i++) x[i] = frand();
        float *xl = to_gemv_layout(x, T, (int)cols);
        BlockQ8A *xb8;
        CkQ8 dq = q8_to_dev(x, T, (int)cols, &xb8);
        void *dx = to_dev(xl, sizeof(float) * T * cols);
        Three t;
        three_make(&t, type, rows, cols, T);
        CkMat *m = t.m;
        void **db = t.db, **dy = t.dy, **dr = t.dr;
        for (int bits8 = 0; bits8 < 2; bits8++) {
            const CkQ8 *q = bits8 ? &dq : NULL;
            const CkGemvOut outs[3] = {{&m[0], dy[0], db[0]}, {&m[1], dy[1], NULL}, {&m[2], dy[2], db[2]}};
            if (ck_gemv_multi(outs, 3, dx, q, T, 0, 0)) FAIL("ck_gemv_multi refused three %s weights", quant_name(type));
            ck_gemv(&m[0], dx, q, T, dr[0], db[0], 0, 0);
            ck_gemv(&m[1], dx, q, T, dr[1], NULL, 0, 0);
            ck_gemv(&m[2], dx, q, T, dr[2], db[2], 0, 0);
            for (int i = 0; i < 3; i++)
                if (three_diff(&t, i, T, NULL) != 0.0f)
                    FAIL("ck_gemv_multi %s output %d (8-bit %d) differs from ck_gemv", quant_name(type), i, bits8);
        }
        CkMat other = m[1];
        other.type = type == QT_Q8_0 ? QT_Q4_0 : QT_Q8_0;
        const CkGemvOut mixed[2] = {{&m[0], dy[0], NULL}, {&other, dy[1], NULL}};
        if (ck_gemv_multi(mixed, 2, dx, NULL, T, 0, 0) != -1) FAIL("ck_gemv_multi took weights of two types");
        cudaError_t e = cudaGetLastError();
        three_free(&t);
        cudaFree(dx), q8_free(dq), free(x), free(xl), free(xb8);
        if (e != cudaSuccess) FAIL("%s: %s", quant_name(type), cudaGetErrorString(e));
    }
}

/* Q, K and V (gate and up) in one tensor-core launch (ck_gemm_multi): without split partial sums the
 * results of three ck_gemm launches bit for bit; with them (the split depends on the whole launch's tiles)
 * within 1e-5 of the largest |y|; mixed types refused. */
TEST(cuda_gemm_multi) {
    NEED_DEVICE();
    const uint32_t types[] = {QT_Q4_K, QT_Q8_0, QT_Q6_K};
    const int64_t rows[3] = {96, 33, 65}, cols = 1024;
    const int T = 20;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        float *x = malloc(sizeof(float) * T * cols);
        for (int64_t i = 0; i < T * cols; i++) x[i] = frand();
        void *dx = to_dev(x, sizeof(float) * T * cols);
        const size_t part_floats = (size_t)CK_GEMM_MAX_SPLITS * T * (rows[0] + rows[1] + rows[2]);
        float *dpart = NULL;
        cudaMalloc((void **)&dpart, part_floats * sizeof(float));
        Three t;
        three_make(&t, type, rows, cols, T);
        CkMat *m = t.m;
        void **db = t.db, **dy = t.dy, **dr = t.dr;
        for (int split = 0; split < 2; split++) {
            const CkGemvOut outs[3] = {{&m[0], dy[0], db[0]}, {&m[1], dy[1], NULL}, {&m[2], dy[2], db[2]}};
            if (ck_gemm_multi(outs, 3, dx, T, 0, split ? dpart : NULL, split ? part_floats : 0, 0))
                FAIL("ck_gemm_multi refused three %s weights", quant_name(type));
            for (int i = 0; i < 3; i++) ck_gemm(&m[i], dx, T, dr[i], outs[i].bias, 0, NULL, 0, 0);
            for (int i = 0; i < 3; i++) {
                float big;
                const float worst = three_diff(&t, i, T, &big);
                if (split ? !(worst <= 1e-5f * big) : worst != 0.0f)
                    FAIL("ck_gemm_multi %s output %d (split %d): differs from ck_gemm by %g (largest %g)",
                         quant_name(type), i, split, worst, big);
            }
        }
        CkMat other = m[1];
        other.type = type == QT_Q8_0 ? QT_Q4_0 : QT_Q8_0;
        const CkGemvOut mixed[2] = {{&m[0], dy[0], NULL}, {&other, dy[1], NULL}};
        if (ck_gemm_multi(mixed, 2, dx, T, 0, NULL, 0, 0) != -1) FAIL("ck_gemm_multi took weights of two types");
        cudaError_t e = cudaGetLastError();
        three_free(&t);
        cudaFree(dx), cudaFree(dpart), free(x);
        if (e != cudaSuccess) FAIL("%s: %s", quant_name(type), cudaGetErrorString(e));
    }
}

/* Embedding rows (any type) against quant_dequantize_row; exact up to fma contraction (1e-6 relative). */
TEST(cuda_embed) {
    NEED_DEVICE();
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = TYPES[ti];
        const int64_t rows = 50, cols = quant_traits(type)->block_elems == 256 ? 512 : 96;
        size_t rb;
        uint8_t *w = random_weight(type, rows, cols, &rb);
        int32_t tok[5] = {0, 49, 7, 7, 13};
        float *x = malloc(sizeof(float) * 5 * cols), *ref = malloc(sizeof(float) * cols);
        CkMat m = weight_on_dev(type, w, rows, cols, rb);
        void *dw = (void *)m.data, *dt = to_dev(tok, sizeof tok), *dx = to_dev(x, sizeof(float) * 5 * cols);
        ck_embed(&m, dt, 5, dx, 0);
        from_dev(x, dx, sizeof(float) * 5 * cols);
        cudaFree(dw), cudaFree(dt), cudaFree(dx);
        for (int t = 0; t < 5; t++) {
            quant_dequantize_row(type, w + (size_t)tok[t] * rb, ref, cols);
            for (int64_t i = 0; i < cols; i++)
                if (fabsf(x[t * cols + i] - ref[i]) > 1e-6f * fabsf(ref[i]))
                    FAIL("ck_embed %s token %d value %lld: %g, expected %g", quant_name(type), tok[t], (long long)i,
                         x[t * cols + i], ref[i]);
        }
        free(w), free(x), free(ref);
    }
}

/* RMSNorm (with a row gather), SwiGLU and fp16 conversion against ops.c. Tolerance 2e-6 relative + 1e-6. */
TEST(cuda_rmsnorm_swiglu) {
    NEED_DEVICE();
    const int dims[] = {1, 31, 64, 896, 3584, 5000};
    /* 3 rows: a row's norm sliced over several blocks (dims over 256); 300: a block a row */
    const int Ts[] = {3, 300};
    double worst = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0] * 2; di++) {
        const int dim = dims[di / 2], T = Ts[di % 2];
        float *x = malloc(sizeof(float) * T * dim), *w = malloc(sizeof(float) * dim);
        float *y = malloc(sizeof(float) * T * dim), *ref = malloc(sizeof(float) * dim);
        for (int i = 0; i < T * dim; i++) x[i] = 10.0f * frand();
        for (int i = 0; i < dim; i++) w[i] = 5.0f * frand();
        int32_t *src = malloc(sizeof(int32_t) * T); /* rows gathered out of order, one twice */
        for (int t = 0; t < T; t++) src[t] = (7 * t + 2) % T;
        src[T - 1] = src[0];
        void *dx = to_dev(x, sizeof(float) * T * dim), *dw = to_dev(w, sizeof(float) * dim);
        void *dy = to_dev(y, sizeof(float) * T * dim), *ds = to_dev(src, sizeof(int32_t) * T);
        /* the GEMV input layout first (then y back row-major for the swiglu below), and its conversion */
        CkQ8 dq = {0};
        float *rm = malloc(sizeof(float) * T * dim);
        if (dim % 32 == 0) { /* the 8-bit form too, equal to the CPU's quantization of the fp32 output */
            dq.qs = to_dev(x, (size_t)T * dim), dq.d = to_dev(x, sizeof(float) * T * dim / 32);
            dq.sum = to_dev(x, sizeof(int32_t) * T * dim / 32);
        }
        for (int layout = 1; layout >= 0; layout--) {
            ck_rmsnorm(dx, ds, dw, dy, T, dim, 1e-6f, layout, layout && dq.qs ? &dq : NULL, 0);
            from_dev(y, dy, sizeof(float) * T * dim);
            if (layout && dq.qs) {
                for (int t = 0; t < T; t++)
                    for (int i = 0; i < dim; i++) rm[t * dim + i] = y[t * dim + gemv_at(i, dim)];
                const int bad = q8_dev_matches(&dq, rm, T, dim);
                if (bad) FAIL("ck_rmsnorm dim %d T %d: 8-bit unit %d differs from quant_q8a_quantize", dim, T, bad - 1);
            }
            for (int t = 0; t < T; t++) {
                op_rmsnorm(ref, x + (size_t)src[t] * dim, w, dim, 1e-6f);
                for (int i = 0; i < dim; i++) {
                    const float got = y[t * dim + (layout ? gemv_at(i, dim) : (size_t)i)];
                    const double err = fabs(got - ref[i]), tol = 2e-6 * fabs(ref[i]) + 1e-6;
                    if (err / tol > worst) worst = err / tol;
                    if (err > tol) FAIL("ck_rmsnorm dim %d T %d layout %d row %d value %d: %g, expected %g", dim, T, layout, t, i, got, ref[i]);
                }
            }
        }
        float *xl = to_gemv_layout(x, T, dim), *yl = malloc(sizeof(float) * T * dim);
        void *dl = to_dev(yl, sizeof(float) * T * dim);
        ck_to_gemv_layout(dx, dl, T, dim, 0);
        from_dev(yl, dl, sizeof(float) * T * dim);
        if (memcmp(xl, yl, sizeof(float) * T * dim)) FAIL("ck_to_gemv_layout dim %d differs from the layout's definition", dim);
        if (dq.qs) {
            ck_quantize_q8(dl, &dq, T, dim, 0);
            const int bad = q8_dev_matches(&dq, x, T, dim);
            if (bad) FAIL("ck_quantize_q8 dim %d: unit %d differs from quant_q8a_quantize", dim, bad - 1);
            q8_free(dq);
        }
        cudaFree(dl);
        free(xl), free(yl), free(rm);
        /* swiglu over the same buffers: gate = x, up = y */
        float *g = malloc(sizeof(float) * T * dim);
        memcpy(g, x, sizeof(float) * T * dim);
        ck_swiglu(dx, dy, (size_t)T * dim, 0);
        from_dev(x, dx, sizeof(float) * T * dim);
        op_swiglu(g, y, T * dim);
        for (int i = 0; i < T * dim; i++)
            if (fabsf(x[i] - g[i]) > 2e-6f * fabsf(g[i]) + 1e-6f) FAIL("ck_swiglu value %d: %g, expected %g", i, x[i], g[i]);
        cudaFree(dx), cudaFree(dw), cudaFree(dy), cudaFree(ds);
        free(x), free(w), free(y), free(ref), free(g), free(src);
    }
    fprintf(stderr, "  rmsnorm: worst error %.3f of the tolerance\n", worst);
}

/* Random page tables: slot s's pages are a random selection of the store's pages. */
static void random_table(int32_t *table, int n_slots, int pages_per_slot, int n_pages) {
    int32_t *perm = malloc(sizeof(int32_t) * n_pages);
    for (int i = 0; i < n_pages; i++) perm[i] = i;
    for (int i = n_pages - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int i = 0; i < n_slots * pages_per_slot; i++) table[i] = perm[i % n_pages];
    free(perm);
}

/* RoPE (both styles) and the KV writes against op_rope, then attention over contexts of 1 .. > 4096
 * positions against a double-precision softmax(q k^T) v over the same fp16 keys and values.
 * Tolerances: RoPE 1e-5 absolute (|x| < 1); attention 2e-5 absolute (outputs are averages of |v| < 1). */
/* ctx[i]: entry i's context (its position + 1); seqs: entry i's sequence (NULL: each its own); tiled: the
 * prefill kernel (ck_attention_tiled) instead of the split one; rope_inside: the split kernel does the RoPE
 * and the KV writes itself (CkRope; entries of distinct sequences), so q stays as it was */
static void check_attention(int head_dim, int n_heads, int n_kv_heads, int rope_style, const int *ctx, int T,
                            const int *seqs, int tiled, int rope_inside) {
    int n_slots = T;
    if (seqs) {
        n_slots = 1;
        for (int i = 0; i < T; i++) n_slots = seqs[i] + 1 > n_slots ? seqs[i] + 1 : n_slots;
    }
    const int page_size = 16, q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim;
    int max_ctx = 0;
    for (int i = 0; i < T; i++) max_ctx = ctx[i] > max_ctx ? ctx[i] : max_ctx;
    const int pages_per_slot = (max_ctx + page_size - 1) / page_size, n_pages = n_slots * pages_per_slot + 3;
    const int n_layers = 2, layer = 1;
    const size_t store = (size_t)n_layers * n_pages * page_size * kv_dim;
    int32_t *table = malloc(sizeof(int32_t) * n_slots * pages_per_slot);
    random_table(table, n_slots, pages_per_slot, n_pages);
    /* keys and values of every earlier position: random fp16 directly into the store */
    uint16_t *ks = malloc(2 * store), *vs = malloc(2 * store);
    for (size_t i = 0; i < store; i++) ks[i] = quant_f32_to_f16(frand()), vs[i] = quant_f32_to_f16(frand());
    int32_t *pos = malloc(sizeof(int32_t) * T), *seq = malloc(sizeof(int32_t) * T);
    for (int i = 0; i < T; i++) pos[i] = ctx[i] - 1, seq[i] = seqs ? seqs[i] : i;
    float *q = malloc(sizeof(float) * T * q_dim), *k = malloc(sizeof(float) * T * kv_dim);
    float *v = malloc(sizeof(float) * T * kv_dim), *out = malloc(sizeof(float) * T * q_dim);
    for (int i = 0; i < T * q_dim; i++) q[i] = frand();
    for (int i = 0; i < T * kv_dim; i++) k[i] = frand(), v[i] = frand();
    float inv_freq[128];
    const int rope_dim = head_dim;
    op_rope_freqs(inv_freq, rope_dim, 10000.0f);

    void *dks = to_dev(ks, 2 * store), *dvs = to_dev(vs, 2 * store);
    void *dtab = to_dev(table, sizeof(int32_t) * n_slots * pages_per_slot);
    void *dpos = to_dev(pos, sizeof(int32_t) * T), *dseq = to_dev(seq, sizeof(int32_t) * T);
    void *dq = to_dev(q, sizeof(float) * T * q_dim), *dk = to_dev(k, sizeof(float) * T * kv_dim);
    void *dv = to_dev(v, sizeof(float) * T * kv_dim), *dinv = to_dev(inv_freq, sizeof inv_freq);
    void *dout = to_dev(out, sizeof(float) * T * q_dim);
    int split_len = 32;
    while ((max_ctx + split_len - 1) / split_len > CK_ATTN_MAX_SPLITS) split_len *= 2;
    const int max_splits = (max_ctx + split_len - 1) / split_len;
    float *part = NULL;
    cudaMalloc((void **)&part, sizeof(float) * max_splits * T * n_heads * (head_dim + 2));
    CkKV kv = {dks, dvs, dtab, pages_per_slot, page_size, n_pages, dpos, dseq};
    const CkRope rope = {dk, dv, dinv, rope_dim, rope_style == ROPE_NEOX};
    if (!rope_inside) ck_rope_kv(dq, dk, dv, dinv, T, n_heads, n_kv_heads, head_dim, rope_dim, rope_style, &kv, layer, 0);
    const int layout = head_dim == 128 && !tiled; /* the GEMV input layout for the head_dim 128 cases */
    CkQ8 oq = {0}; /* and the 8-bit form in those cases */
    if (layout) {
        oq.qs = to_dev(out, (size_t)T * q_dim), oq.d = to_dev(out, sizeof(float) * T * q_dim / 32);
        oq.sum = to_dev(out, sizeof(int32_t) * T * q_dim / 32);
    }
    unsigned *done = NULL;
    cudaMalloc((void **)&done, sizeof(unsigned) * T * n_heads);
    cudaMemset(done, 0, sizeof(unsigned) * T * n_heads);
    /* twice: the split counters must be left ready for the next launch, and the result the same */
    for (int round = 0; round < 2 && tiled; round++)
        if (ck_attention_tiled(dq, dout, T, n_heads, n_kv_heads, head_dim, &kv, layer, 0))
            test_fail_at(__FILE__, __LINE__, "ck_attention_tiled refused head_dim %d", head_dim);
    if (!tiled)
        ck_attention(dq, dout, part, max_splits, split_len, T, n_heads, n_kv_heads, head_dim, &kv, layer, layout,
                     layout ? &oq : NULL, done, rope_inside ? &rope : NULL, 0);
    float *first = malloc(sizeof(float) * T * q_dim);
    from_dev(first, dout, sizeof(float) * T * q_dim);
    if (!tiled)
        ck_attention(dq, dout, part, max_splits, split_len, T, n_heads, n_kv_heads, head_dim, &kv, layer, layout,
                     layout ? &oq : NULL, done, rope_inside ? &rope : NULL, 0);
    else
        ck_attention_tiled(dq, dout, T, n_heads, n_kv_heads, head_dim, &kv, layer, 0);
    float *gq = malloc(sizeof(float) * T * q_dim);
    from_dev(gq, dq, sizeof(float) * T * q_dim);
    from_dev(out, dout, sizeof(float) * T * q_dim);
    const int same = !memcmp(first, out, sizeof(float) * T * q_dim);
    free(first);
    unsigned *left = malloc(sizeof(unsigned) * T * n_heads);
    from_dev(left, done, sizeof(unsigned) * T * n_heads);
    int zeroed = 1;
    for (int i = 0; i < T * n_heads; i++) zeroed &= left[i] == 0;
    free(left);
    cudaFree(done);
    if (!same || !zeroed) {
        test_fail_at(__FILE__, __LINE__, "attention head_dim %d: a second launch %s", head_dim,
                     !same ? "gave a different result" : "found the split counters not zeroed");
        free(table), free(ks), free(vs), free(pos), free(seq), free(q), free(k), free(v), free(out);
        if (layout) q8_free(oq);
        return;
    }
    if (layout) {
        float *rm = malloc(sizeof(float) * T * q_dim);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < q_dim; i++) rm[(size_t)t * q_dim + i] = out[(size_t)t * q_dim + gemv_at(i, q_dim)];
        memcpy(out, rm, sizeof(float) * T * q_dim);
        free(rm);
        const int bad = q8_dev_matches(&oq, out, T, q_dim);
        q8_free(oq);
        if (bad) {
            test_fail_at(__FILE__, __LINE__, "attention head_dim %d: 8-bit unit %d differs from quant_q8a_quantize",
                         head_dim, bad - 1);
            free(table), free(ks), free(vs), free(pos), free(seq), free(q), free(k), free(v), free(out);
            return;
        }
    }
    from_dev(ks, dks, 2 * store);
    from_dev(vs, dvs, 2 * store);
    cudaError_t e = cudaGetLastError();
    cudaFree(dks), cudaFree(dvs), cudaFree(dtab), cudaFree(dpos), cudaFree(dseq), cudaFree(dq), cudaFree(dk);
    cudaFree(dv), cudaFree(dinv), cudaFree(dout), cudaFree(part);
    char what[96];
    snprintf(what, sizeof what, "%s head_dim %d heads %d/%d rope %d%s layout %d", tiled ? "tiled" : "split",
             head_dim, n_heads, n_kv_heads, rope_style, rope_inside ? " (in the attention)" : "", layout);
    if (e != cudaSuccess) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", what, cudaGetErrorString(e));
        goto done;
    }
    double worst_rope = 0, worst_attn = 0, worst_frac = 0;
    for (int t = 0; t < T; t++) {
        /* RoPE of q and k; the k and v written at (seq, pos) */
        float *rq = q + (size_t)t * q_dim, *rk = k + (size_t)t * kv_dim;
        /* the attention's own RoPE leaves q as it was */
        if (rope_inside && memcmp(gq + (size_t)t * q_dim, rq, sizeof(float) * q_dim)) {
            test_fail_at(__FILE__, __LINE__, "%s: q of entry %d changed", what, t);
            goto done;
        }
        op_rope(rq, n_heads, head_dim, rope_dim, pos[t], inv_freq, (RopeStyle)rope_style);
        op_rope(rk, n_kv_heads, head_dim, rope_dim, pos[t], inv_freq, (RopeStyle)rope_style);
        for (int i = 0; i < q_dim && !rope_inside; i++) {
            const double err = fabs(gq[(size_t)t * q_dim + i] - rq[i]);
            worst_rope = err > worst_rope ? err : worst_rope;
            if (err > 1e-5) {
                test_fail_at(__FILE__, __LINE__, "%s: rope q entry %d value %d: %g, expected %g", what, t, i,
                             gq[(size_t)t * q_dim + i], rq[i]);
                goto done;
            }
        }
        const int page = table[(size_t)seq[t] * pages_per_slot + pos[t] / page_size];
        const size_t off = (((size_t)layer * n_pages + page) * page_size + pos[t] % page_size) * kv_dim;
        for (int i = 0; i < kv_dim; i++) {
            const float gk = quant_f16_to_f32(ks[off + i]), gv = quant_f16_to_f32(vs[off + i]);
            if (fabsf(gk - rk[i]) > 1e-3f || fabsf(gv - v[(size_t)t * kv_dim + i]) > 1e-3f) {
                test_fail_at(__FILE__, __LINE__, "%s: KV store entry %d value %d: k %g v %g, expected %g %g", what, t,
                             i, gk, gv, rk[i], v[(size_t)t * kv_dim + i]);
                goto done;
            }
        }
        /* attention over positions 0..pos of the slot, from the store */
        const int n = pos[t] + 1;
        double *sc = malloc(sizeof(double) * n);
        for (int h = 0; h < n_heads; h++) {
            const int kvh = h / (n_heads / n_kv_heads);
            double mx = -1e300, sum = 0, mag = 0, vmax = 0;
            for (int p = 0; p < n; p++) {
                const int pg = table[(size_t)seq[t] * pages_per_slot + p / page_size];
                const size_t o = (((size_t)layer * n_pages + pg) * page_size + p % page_size) * kv_dim + (size_t)kvh * head_dim;
                double d = 0, a = 0;
                for (int i = 0; i < head_dim; i++) {
                    d += (double)rq[h * head_dim + i] * quant_f16_to_f32(ks[o + i]);
                    a += fabs((double)rq[h * head_dim + i] * quant_f16_to_f32(ks[o + i]));
                    vmax = fmax(vmax, fabs(quant_f16_to_f32(vs[o + i])));
                }
                sc[p] = d / sqrt((double)head_dim);
                mx = sc[p] > mx ? sc[p] : mx;
                mag = fmax(mag, a / sqrt((double)head_dim));
            }
            /* The tiled kernel's tensor cores take the query and the probabilities in fp16 (unit roundoff
             * u = 2^-11): a score moves by at most u * sum|q k| / sqrt(d), which moves a probability's
             * weight by twice that relative (it and the maximum), and each probability rounds by u. The split
             * kernel is fp32 throughout. */
            const double u = 1.0 / 2048, tol = tiled ? (u * (1 + 2 * mag) + 2e-5) * vmax : 2e-5;
            for (int p = 0; p < n; p++) sum += (sc[p] = exp(sc[p] - mx));
            for (int i = 0; i < head_dim; i++) {
                double ref = 0;
                for (int p = 0; p < n; p++) {
                    const int pg = table[(size_t)seq[t] * pages_per_slot + p / page_size];
                    const size_t o = (((size_t)layer * n_pages + pg) * page_size + p % page_size) * kv_dim + (size_t)kvh * head_dim;
                    ref += sc[p] / sum * quant_f16_to_f32(vs[o + i]);
                }
                const double err = fabs(out[(size_t)t * q_dim + h * head_dim + i] - ref);
                worst_attn = err > worst_attn ? err : worst_attn;
                worst_frac = err / tol > worst_frac ? err / tol : worst_frac;
                if (err > tol) {
                    test_fail_at(__FILE__, __LINE__, "%s: attention ctx %d head %d value %d: %.7g, expected %.7g", what,
                                 n, h, i, out[(size_t)t * q_dim + h * head_dim + i], ref);
                    free(sc);
                    goto done;
                }
            }
        }
        free(sc);
    }
    fprintf(stderr, "  %s: worst rope error %.2g, attention %.2g (%.2g of the tolerance)\n", what, worst_rope,
            worst_attn, worst_frac);
done:
    free(table), free(ks), free(vs), free(pos), free(seq), free(q), free(k), free(v), free(out), free(gq);
}

TEST(cuda_attention) {
    NEED_DEVICE();
    /* each case twice: after ck_rope_kv, and with the RoPE and KV writes inside the attention (CkRope) */
    for (int inside = 0; inside < 2 && !test_failed(); inside++) {
        const int ctx_a[] = {1, 2, 17, 255, 256, 257, 1000};
        check_attention(64, 14, 2, ROPE_NEOX, ctx_a, 7, NULL, 0, inside);
        if (test_failed()) return;
        /* splits of 128 positions here: 4200's own position (4199) is in its split's fourth round of 32, read
         * back from the store after the block wrote it; the others' in the first, taken from shared memory */
        const int ctx_b[] = {1, 513, 4097, 4200, 4500};
        check_attention(128, 8, 8, ROPE_NORM, ctx_b, 5, NULL, 0, inside);
        if (test_failed()) return;
        const int ctx_c[] = {300, 33};
        check_attention(128, 28, 4, ROPE_NEOX, ctx_c, 2, NULL, 0, inside);
        if (test_failed()) return;
        const int ctx_d[] = {5};
        check_attention(64, 9, 3, ROPE_NORM, ctx_d, 1, NULL, 0, inside);
        if (test_failed()) return;
        /* the cases above have at most 8 entries (a warp takes 8 positions a step); more take 4 a step */
        const int ctx_e[] = {1, 31, 32, 33, 64, 100, 257, 500, 777, 1024, 2000, 3000};
        check_attention(64, 14, 2, ROPE_NEOX, ctx_e, 12, NULL, 0, inside);
        if (test_failed()) return;
        check_attention(128, 28, 4, ROPE_NORM, ctx_e, 12, NULL, 0, inside);
    }
}

/* The prefill attention (tiles of entries sharing tiles of keys) against the same double reference: a
 * 300-token prompt from position 0 followed in the same step by another sequence's 50 tokens from
 * position 100 (a tile holds both); a prompt continuing at position 4000 beside three single entries of
 * other sequences (each a tile round of its own). */
TEST(cuda_attention_tiled) {
    NEED_DEVICE();
    int ctx[400], seqs[400];
    for (int i = 0; i < 300; i++) ctx[i] = i + 1, seqs[i] = 0;
    for (int i = 0; i < 50; i++) ctx[300 + i] = 101 + i, seqs[300 + i] = 1;
    check_attention(64, 14, 2, ROPE_NEOX, ctx, 350, seqs, 1, 0);
    if (test_failed()) return;
    for (int i = 0; i < 70; i++) ctx[i] = 4001 + i, seqs[i] = 2;
    const int single_ctx[3] = {1, 17, 600};
    for (int i = 0; i < 3; i++) ctx[70 + i] = single_ctx[i], seqs[70 + i] = 3 + i;
    check_attention(128, 16, 4, ROPE_NORM, ctx, 73, seqs, 1, 0);
}

/* Greedy choice: first index of the largest value (ties to the lowest index) and -log(sum exp(l - max)).
 * Vocabularies of one round of loads a thread (151936), of slices shorter than a block and empty ones
 * (1000), and of several rounds (300001). */
TEST(cuda_argmax) {
    NEED_DEVICE();
    const int vocabs[3] = {151936, 1000, 300001}, n = 3;
    for (int vi = 0; vi < 3 && !test_failed(); vi++) {
        const int vocab = vocabs[vi];
        float *l = malloc(sizeof(float) * n * vocab);
        for (int i = 0; i < n * vocab; i++) l[i] = 8.0f * frand();
        l[0 * vocab + vocab / 3 * 2] = 20.0f;
        l[1 * vocab + 7] = 20.0f, l[1 * vocab + vocab - 900] = 20.0f; /* a tie: 7 wins */
        l[2 * vocab + vocab - 1] = 30.0f;
        const int expect[3] = {vocab / 3 * 2, 7, vocab - 1};
        void *dl = to_dev(l, sizeof(float) * n * vocab);
        int32_t *did = NULL, ids[3];
        float *dlp = NULL, lp[3];
        void *scratch = NULL;
        cudaMalloc((void **)&did, sizeof ids), cudaMalloc((void **)&dlp, sizeof lp);
        cudaMalloc(&scratch, ck_argmax_scratch(n));
        cudaMemset(scratch, 0, ck_argmax_scratch(n));
        for (int round = 0; round < 2; round++) { /* the second call checks that the first left the scratch ready */
            ck_argmax(dl, n, vocab, did, dlp, scratch, 0);
            from_dev(ids, did, sizeof ids);
            from_dev(lp, dlp, sizeof lp);
            for (int r = 0; r < n; r++)
                if (ids[r] != expect[r])
                    FAIL("vocab %d round %d row %d: argmax %d, expected %d", vocab, round, r, ids[r], expect[r]);
        }
        cudaFree(dl), cudaFree(did), cudaFree(dlp), cudaFree(scratch);
        for (int r = 0; r < n; r++) {
            double z = 0, mx = l[r * vocab + expect[r]];
            for (int i = 0; i < vocab; i++) z += exp(l[r * vocab + i] - mx);
            if (fabs(lp[r] - -log(z)) > 1e-5)
                FAIL("vocab %d row %d: log-probability %.7f, expected %.7f", vocab, r, lp[r], -log(z));
        }
        free(l);
    }
}

/* ck_topk against a sort on the host: the k largest values, best first, equal values by smaller id. Rows
 * with many ties (values on a coarse grid, ties straddling the k-th place), -0 beside 0, -inf, and k from 1
 * to the whole (small) vocabulary. Exact: the ids and values must match. */
TEST(cuda_topk) {
    NEED_DEVICE();
    const int cases[][3] = {/* vocab, k, rows */ {151936, 40, 3}, {151936, 40, 2}, {151936, 256, 2}, {151936, 1, 2},
                            {1000, 256, 2}, {7, 7, 1}, {3000, 64, 2}, {33, 5, 1}, {20000, 200, 2}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int vocab = cases[ci][0], k = cases[ci][1], n = cases[ci][2];
        float *l = malloc(sizeof(float) * n * vocab), *vals = malloc(sizeof(float) * n * k);
        int32_t *ids = malloc(sizeof(int32_t) * n * k);
        int *order = malloc(sizeof(int) * vocab);
        for (int r = 0; r < n; r++)
            for (int i = 0; i < vocab; i++) {
                float v = r % 2 ? roundf(4.0f * frand()) / 2.0f : 8.0f * frand(); /* odd rows: 17 values, ties */
                if (rnd() % 50 == 0) v = rnd() % 2 ? -0.0f : 0.0f;
                if (rnd() % 97 == 0) v = -INFINITY;
                l[(size_t)r * vocab + i] = v;
            }
        void *dl = to_dev(l, sizeof(float) * n * vocab);
        float *dv = NULL;
        int32_t *di = NULL;
        cudaMalloc((void **)&dv, sizeof(float) * n * k), cudaMalloc((void **)&di, sizeof(int32_t) * n * k);
        void *scratch = NULL; /* odd cases without: one block per row */
        if (ci % 2 == 0) cudaMalloc(&scratch, ck_topk_scratch(n));
        const int rc = ck_topk(dl, n, vocab, k, dv, di, scratch, 0);
        cudaFree(scratch);
        from_dev(vals, dv, sizeof(float) * n * k);
        from_dev(ids, di, sizeof(int32_t) * n * k);
        cudaError_t e = cudaGetLastError();
        cudaFree(dl), cudaFree(dv), cudaFree(di);
        if (rc) FAIL("ck_topk refused vocab %d k %d", vocab, k);
        if (e != cudaSuccess) FAIL("ck_topk: %s", cudaGetErrorString(e));
        for (int r = 0; r < n; r++) {
            const float *topk_row = l + (size_t)r * vocab;
            test_rank(topk_row, vocab, order);
            for (int i = 0; i < k; i++)
                if (ids[r * k + i] != order[i] || vals[r * k + i] != topk_row[order[i]])
                    FAIL("vocab %d k %d row %d place %d: id %d (%g), expected %d (%g)", vocab, k, r, i, ids[r * k + i],
                         vals[r * k + i], order[i], topk_row[order[i]]);
        }
        free(l), free(vals), free(ids), free(order);
    }
    if (ck_topk(NULL, 1, 100, CK_TOPK_MAX + 1, NULL, NULL, NULL, 0) != -1 ||
        ck_topk(NULL, 1, 10, 11, NULL, NULL, NULL, 0) != -1)
        FAIL("ck_topk took k beyond its limits");
}

#endif
