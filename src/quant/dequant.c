/*
 * dequant: one row of any supported layout -> fp32, in portable C, one function per layout. These are the
 * definitions of the layouts for the rest of orcd: the dot products (dot.c, dot_avx2.c) and the CUDA
 * kernels are tested against them, and they are tested against the `gguf` Python package
 * (tests/quant/make_quant_cases.py). The arithmetic is done in fp32 in the reference's order (scale
 * products first, then q * scale - min), so results are bit-identical to ggml's and gguf-py's.
 *
 * The layouts are ggml's (ggml-common.h, dequantize_row_* in ggml-quants.c); the block comments in
 * ../quant.h give the structs. Not here: speed (dequantization runs once per embedding row, not per
 * matmul), quantization of weights.
 */
#include "quant_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F16(h) quant_f16_to_f32(h)

/* ---- float types ---- */

static void dequant_f32(const void *src, float *y, int64_t n) {
    memcpy(y, src, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *y, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) y[i] = F16(h[i]);
}

static void dequant_bf16(const void *src, float *y, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) y[i] = quant_bf16_to_f32(h[i]);
}

/* ---- blocks of 32: value j in the low nibble of qs[j], value j+16 in the high nibble ---- */

static void dequant_q4_0(const void *src, float *y, int64_t n) {
    const BlockQ4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, b++, y += QK4_0) {
        const float d = F16(b->d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((b->qs[j] & 0x0F) - 8);
            y[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
        }
    }
}

static void dequant_q4_1(const void *src, float *y, int64_t n) {
    const BlockQ4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, b++, y += QK4_1) {
        const float d = F16(b->d), m = F16(b->m);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(b->qs[j] & 0x0F) + m;
            y[j + 16] = d * (float)(b->qs[j] >> 4) + m;
        }
    }
}

/* The fifth bit of value j of a Q5 block is bit j of the little-endian 32-bit qh. */
static uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void dequant_q5_0(const void *src, float *y, int64_t n) {
    const BlockQ5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, b++, y += QK5_0) {
        const float d = F16(b->d);
        const uint32_t qh = load_qh(b->qh);
        for (int j = 0; j < 16; j++) {
            const int q0 = (b->qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
            const int q1 = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = d * (float)(q0 - 16);
            y[j + 16] = d * (float)(q1 - 16);
        }
    }
}

static void dequant_q5_1(const void *src, float *y, int64_t n) {
    const BlockQ5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, b++, y += QK5_1) {
        const float d = F16(b->d), m = F16(b->m);
        const uint32_t qh = load_qh(b->qh);
        for (int j = 0; j < 16; j++) {
            const int q0 = (b->qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
            const int q1 = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = d * (float)q0 + m;
            y[j + 16] = d * (float)q1 + m;
        }
    }
}

static void dequant_q8_0(const void *src, float *y, int64_t n) {
    const BlockQ8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, b++, y += QK8_0) {
        const float d = F16(b->d);
        for (int j = 0; j < QK8_0; j++) y[j] = d * (float)b->qs[j];
    }
}

/* ---- K-quants: super-blocks of 256 ---- */

/* Q2_K (BlockQ2_K in quant_impl.h): value e = 128h + 32s + l (half h, shift s = 0..3, l < 32) is
 * (qs[32h + l] >> 2s) & 3, in 16-group e / 16. x = d * scale * q - dmin * min. */

static void dequant_q2_k(const void *src, float *y, int64_t n) {
    const BlockQ2_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++, y += QK_K) {
        const float d = F16(b->d), dmin = F16(b->dmin);
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, s = (e / 32) % 4, l = e % 32;
            const uint8_t sc = b->scales[e / 16];
            const int q = (b->qs[32 * h + l] >> (2 * s)) & 3;
            y[e] = d * (float)(sc & 0x0F) * (float)q - dmin * (float)(sc >> 4);
        }
    }
}

/* Q3_K (BlockQ3_K in quant_impl.h): low 2 bits as Q2_K, the third bit of value e = 32k + l is bit k of
 * hmask[l]; q = low2 - (hbit ? 0 : 4); x = d * (scale - 32) * q with the 6-bit scale of 16-group e / 16. */

static void dequant_q3_k(const void *src, float *y, int64_t n) {
    const BlockQ3_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++, y += QK_K) {
        const float d = F16(b->d);
        float dl[16];
        for (int s = 0; s < 16; s++) {
            const int lo = (b->scales[s % 8] >> (s < 8 ? 0 : 4)) & 0x0F;
            const int hi = (b->scales[8 + s % 4] >> (2 * (s / 4))) & 3;
            dl[s] = d * (float)((lo | hi << 4) - 32);
        }
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, s = (e / 32) % 4, l = e % 32;
            const int low = (b->qs[32 * h + l] >> (2 * s)) & 3;
            const int high = (b->hmask[l] >> (e / 32)) & 1;
            y[e] = dl[e / 16] * (float)(low - (high ? 0 : 4));
        }
    }
}

/* Q4_K: 8 sub-blocks of 32; sub-block 2c takes the low nibbles of qs[32c .. 32c+31], sub-block 2c+1 the
 * high nibbles. x = d * scale * q - dmin * min (6-bit scale and min, quant_k4_scale_min). */
static void dequant_q4_k(const void *src, float *y, int64_t n) {
    const BlockQ4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = F16(b->d), dmin = F16(b->dmin);
        for (int j = 0; j < 8; j++, y += 32) {
            uint8_t sc, m;
            quant_k4_scale_min(b->scales, j, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *qs = b->qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            for (int l = 0; l < 32; l++) y[l] = d1 * (float)((qs[l] >> shift) & 0x0F) - m1;
        }
    }
}

/* Q5_K: as Q4_K, plus the fifth bit of value l of sub-block j in bit j of qh[l]. */
static void dequant_q5_k(const void *src, float *y, int64_t n) {
    const BlockQ5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = F16(b->d), dmin = F16(b->dmin);
        for (int j = 0; j < 8; j++, y += 32) {
            uint8_t sc, m;
            quant_k4_scale_min(b->scales, j, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *qs = b->qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            for (int l = 0; l < 32; l++) {
                const int q = ((qs[l] >> shift) & 0x0F) | ((b->qh[l] >> j) & 1) << 4;
                y[l] = d1 * (float)q - m1;
            }
        }
    }
}

/* Q6_K: two halves of 128; in half h, with ql = b->ql + 64h, qh = b->qh + 32h and l < 32:
 *   value      l: ql[l]      low nibble | (qh[l]      & 3) << 4
 *   value 32 + l: ql[32 + l] low nibble | (qh[l] >> 2 & 3) << 4
 *   value 64 + l: ql[l]     high nibble | (qh[l] >> 4 & 3) << 4
 *   value 96 + l: ql[32 + l] high nibble | (qh[l] >> 6 & 3) << 4
 * x = d * scales[value / 16] * (q - 32). */
static void dequant_q6_k(const void *src, float *y, int64_t n) {
    const BlockQ6_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = F16(b->d);
        for (int h = 0; h < 2; h++, y += 128) {
            const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            const int8_t *sc = b->scales + 8 * h;
            for (int l = 0; l < 32; l++) {
                const int q0 = (ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4;
                const int q1 = (ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4;
                const int q2 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                const int q3 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
                y[l] = d * (float)sc[l / 16] * (float)(q0 - 32);
                y[l + 32] = d * (float)sc[2 + l / 16] * (float)(q1 - 32);
                y[l + 64] = d * (float)sc[4 + l / 16] * (float)(q2 - 32);
                y[l + 96] = d * (float)sc[6 + l / 16] * (float)(q3 - 32);
            }
        }
    }
}

/* ---- dispatch ---- */

typedef void (*DequantFn)(const void *src, float *y, int64_t n);

static DequantFn dequant_fn(uint32_t type) {
    switch (type) {
    case QT_F32:
        return dequant_f32;
    case QT_F16:
        return dequant_f16;
    case QT_BF16:
        return dequant_bf16;
    case QT_Q4_0:
        return dequant_q4_0;
    case QT_Q4_1:
        return dequant_q4_1;
    case QT_Q5_0:
        return dequant_q5_0;
    case QT_Q5_1:
        return dequant_q5_1;
    case QT_Q8_0:
        return dequant_q8_0;
    case QT_Q2_K:
        return dequant_q2_k;
    case QT_Q3_K:
        return dequant_q3_k;
    case QT_Q4_K:
        return dequant_q4_k;
    case QT_Q5_K:
        return dequant_q5_k;
    case QT_Q6_K:
        return dequant_q6_k;
    default:
        return NULL;
    }
}

int quant_cpu_supported(uint32_t type) {
    return dequant_fn(type) != NULL && quant_dot_portable(type) != NULL;
}

void quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
    const DequantFn fn = dequant_fn(type);
    const QuantTraits *t = quant_traits(type);
    if (!fn || n % t->block_elems) {
        /* a programmer error: the loader checks quant_cpu_supported and the row length */
        fprintf(stderr,
                "%s:%d: quant_dequantize_row: type %s, n %lld (expected a supported type and n a "
                "multiple of its block)\n",
                __FILE__, __LINE__, quant_name(type), (long long)n);
        abort();
    }
    fn(src, dst, n);
}
