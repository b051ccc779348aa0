/*
 * quant_impl: what the files of src/quant/ share and nothing outside them uses: the kernel signatures, the
 * tables that dispatch on the type id, and small helpers. The public surface is ../quant.h.
 *
 * Files: convert.c (fp16/bf16 scalars), dequant.c (one dequantizer per layout), dot.c (the portable dot
 * products, Q8A quantization and the run-time choice of kernels), dot_avx2.c (AVX2/FMA/F16C kernels,
 * compiled with target attributes so that the binary still runs on CPUs without them), gemm_avx2.c (the
 * same for tiles of several rows and activations).
 */
#ifndef ORCD_QUANT_IMPL_H
#define ORCD_QUANT_IMPL_H

#include "../quant.h"

/* The two K-quant layouts that quant.h does not declare (no other module needs them), from ggml-common.h.
 * Q2_K: 16 groups of 16 values, 2 bits each; scales[g] holds group g's 4-bit scale (low nibble) and
 * 4-bit min (high nibble). */
typedef struct BlockQ2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4]; /* 2-bit values */
    uint16_t d, dmin;     /* fp16 */
} BlockQ2_K;              /* x = d * scale * q - dmin * min */

/* Q3_K: 16 groups of 16 values, 3 bits each (2 in qs, the third in hmask); 16 six-bit scales biased by 32:
 * the low 4 bits of scale g in byte g % 8 of scales (low nibble for g < 8, high nibble else), the high 2
 * bits in byte 8 + g % 4 at bit 2 * (g / 4). */
typedef struct BlockQ3_K {
    uint8_t hmask[QK_K / 8]; /* third bits */
    uint8_t qs[QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];
    uint16_t d; /* fp16 */
} BlockQ3_K;    /* x = d * (scale - 32) * (low2 - (hbit ? 0 : 4)) */

_Static_assert(sizeof(BlockQ2_K) == 84, "BlockQ2_K layout");
_Static_assert(sizeof(BlockQ3_K) == 110, "BlockQ3_K layout");

/* dot(w, activation) over n values: w one row of the kernel's type, x (n,) fp32, xq (n/32,) Q8A blocks
 * of the same activation (unused by the float types). */
typedef float (*QuantDotFn)(const void *w, const float *x, const BlockQ8A *xq, int64_t n);

/* y[t * ldy + r] = dot(row r, activation t) for r < nr, t < T: rows rb bytes apart from w, n values each;
 * activations xq + t * (n / 32) (quant.h's quant_matmul). */
typedef void (*QuantGemmFn)(const void *w, size_t rb, int64_t nr, int64_t n, const BlockQ8A *xq, int T, float *y,
                            int64_t ldy);

/* y[0], y[1] = dot(row, activation) for the rows w and w + rb, each bit for bit as its QuantDotFn computes
 * it (quant_gemv's two-row step; quantized types only). */
typedef void (*QuantDot2Fn)(const void *w, size_t rb, const BlockQ8A *xq, int64_t n, float y[2]);

/* Q8A quantization of n values (n a multiple of 32). */
typedef void (*QuantQ8AFn)(const float *x, BlockQ8A *y, int64_t n);

/* fp16 bits -> fp32 for all 65536 values (256 KB), filled by quant_f16_to_f32 before any kernel runs
 * (dot.c, once); the kernels' scalar conversion of block scales. */
extern float quant_f16_table[65536];

/* The portable kernel for a type, NULL when the type has none (dot.c). */
QuantDotFn quant_dot_portable(uint32_t type);
void quant_q8a_quantize_portable(const float *x, BlockQ8A *y, int64_t n);

/* The AVX2 kernel for a type, NULL when there is none or the build target is not x86 (dot_avx2.c). The
 * caller checks the CPU first (quant_avx2_usable). */
int quant_avx2_usable(void);
QuantDotFn quant_dot_avx2(uint32_t type);
QuantQ8AFn quant_q8a_avx2(void);
QuantDot2Fn quant_dot2_avx2(uint32_t type); /* NULL where there is none */

/* The AVX2 tile kernel for several rows and activations at once, NULL where there is none (gemm_avx2.c). */
QuantGemmFn quant_gemm_avx2(uint32_t type);

/* The 6-bit scale and minimum of sub-block j (0..7) of a Q4_K/Q5_K super-block (ggml's
 * get_scale_min_k4). Bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3 likewise; scales
 * and mins 4-7 take their low 4 bits from the nibbles of bytes 8-11 and their top 2 bits from the top
 * bits of bytes 0-3 (scales) and 4-7 (mins). */
static inline void quant_k4_scale_min(const uint8_t *scales, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4));
        *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

#endif
