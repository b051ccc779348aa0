/*
 * quant: the ggml tensor types as GGUF files store them. One place for the type ids, block sizes and
 * block layouts, shared by the parser, the CPU backend and the CUDA kernels (this header is plain C that
 * nvcc also compiles).
 *
 * A quantized row of n values is n / block_elems blocks of block_bytes each, stored back to back; a
 * row's length must be a multiple of block_elems. Fp16 fields are stored as raw IEEE half bits (uint16_t).
 *
 * The CPU side of every layout is here too (src/quant/): dequantizing rows, and dot products of a weight
 * row with activations. Quantized weights meet activations quantized to BlockQ8A (32 values, one fp32
 * scale, int8 values and their sum), as llama.cpp's CPU path does; float weights (F32, F16, BF16) meet the
 * fp32 activations. The CUDA kernels use the same layouts from this header.
 */
#ifndef ORCD_QUANT_H
#define ORCD_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Type ids as in ggml's enum ggml_type (the file format's numbering; gaps are retired types). */
typedef enum QuantType {
    QT_F32 = 0,
    QT_F16 = 1,
    QT_Q4_0 = 2,
    QT_Q4_1 = 3,
    QT_Q5_0 = 6,
    QT_Q5_1 = 7,
    QT_Q8_0 = 8,
    QT_Q8_1 = 9,
    QT_Q2_K = 10,
    QT_Q3_K = 11,
    QT_Q4_K = 12,
    QT_Q5_K = 13,
    QT_Q6_K = 14,
    QT_Q8_K = 15,
    QT_IQ2_XXS = 16,
    QT_IQ2_XS = 17,
    QT_IQ3_XXS = 18,
    QT_IQ1_S = 19,
    QT_IQ4_NL = 20,
    QT_IQ3_S = 21,
    QT_IQ2_S = 22,
    QT_IQ4_XS = 23,
    QT_I8 = 24,
    QT_I16 = 25,
    QT_I32 = 26,
    QT_I64 = 27,
    QT_F64 = 28,
    QT_IQ1_M = 29,
    QT_BF16 = 30,
    QT_TQ1_0 = 34,
    QT_TQ2_0 = 35,
    QT_MXFP4 = 39,
    QT_COUNT = 40, /* one past the largest id this table knows */
} QuantType;

typedef struct QuantTraits {
    const char *name;   /* "Q4_K", as ggml and llama.cpp print it */
    uint32_t block_elems; /* values per block (1 for plain types) */
    uint32_t block_bytes; /* bytes per block */
} QuantTraits;

/* The traits of a type id, or NULL when the id is not a type a GGUF file may hold (unknown, retired, or
 * an in-memory-only type such as Q8_1, whose size ggml and the gguf tools disagree on). */
const QuantTraits *quant_traits(uint32_t type);

/* The name of a type id, "?" when unknown. Never NULL. */
const char *quant_name(uint32_t type);

/* ---- block layouts (ggml-common.h; sizes asserted in quant.c) ---- */

#define QK4_0 32
typedef struct BlockQ4_0 {
    uint16_t d;            /* scale (fp16) */
    uint8_t qs[QK4_0 / 2]; /* nibbles: value j in low nibble of qs[j], value j+16 in the high nibble */
} BlockQ4_0;               /* x = d * (q - 8) */

#define QK4_1 32
typedef struct BlockQ4_1 {
    uint16_t d, m; /* scale and minimum (fp16) */
    uint8_t qs[QK4_1 / 2];
} BlockQ4_1; /* x = d * q + m */

#define QK5_0 32
typedef struct BlockQ5_0 {
    uint16_t d;
    uint8_t qh[4]; /* fifth bits, bit j for value j */
    uint8_t qs[QK5_0 / 2];
} BlockQ5_0; /* x = d * (q - 16) */

#define QK5_1 32
typedef struct BlockQ5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} BlockQ5_1; /* x = d * q + m */

#define QK8_0 32
typedef struct BlockQ8_0 {
    uint16_t d;
    int8_t qs[QK8_0];
} BlockQ8_0; /* x = d * q */

#define QK_K 256
#define K_SCALE_SIZE 12
typedef struct BlockQ4_K {
    uint16_t d, dmin;                /* super-block scales for the 6-bit scales and mins */
    uint8_t scales[K_SCALE_SIZE];    /* 8 sub-blocks of 32: 6-bit scale and 6-bit min each, packed */
    uint8_t qs[QK_K / 2];            /* nibbles */
} BlockQ4_K;

typedef struct BlockQ5_K {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8]; /* fifth bits */
    uint8_t qs[QK_K / 2];
} BlockQ5_K;

typedef struct BlockQ6_K {
    uint8_t ql[QK_K / 2];      /* low 4 bits */
    uint8_t qh[QK_K / 4];      /* high 2 bits */
    int8_t scales[QK_K / 16];  /* 16 sub-blocks of 16, 8-bit scales */
    uint16_t d;                /* super-block scale (fp16) */
} BlockQ6_K;                   /* x = d * scale * (q - 32) */

/* ---- activations for dot products with quantized weights ---- */

#define QK8A 32
typedef struct BlockQ8A {
    float d;          /* scale: x ~= d * qs */
    int32_t sum;      /* sum of qs, for the layouts with a minimum (Q4_1, Q5_1, Q4_K, Q5_K) */
    int8_t qs[QK8A];
} BlockQ8A;

/* ---- the CPU implementation of every layout (src/quant/) ---- */

/* Whether the CPU functions below handle `type` (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
 * Q6_K at least). */
int quant_cpu_supported(uint32_t type);

/* Dequantize one row of n values (n a multiple of the type's block) from `src` into dst. */
void quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Quantize n fp32 values (n a multiple of 32) into n/32 BlockQ8A (round to nearest, d = max|x| / 127). */
void quant_q8a_quantize(const float *x, BlockQ8A *y, int64_t n);

/* dot(weight row, activation) over n values. `w` is one row of `type`; x is the activation in fp32 and xq
 * the same activation quantized by quant_q8a_quantize (NULL allowed when `type` is a float type). Uses
 * AVX2/FMA when the CPU has them (checked at run time), a portable path otherwise. */
float quant_vec_dot(uint32_t type, const void *w, const float *x, const BlockQ8A *xq, int64_t n);

/* y[t * ldy + r] = dot(row r, activation t) for r < nr, t < T: the rows of `type` are row_bytes apart from
 * w, activation t is x + t * n (fp32) and xq + t * (n / 32) (its Q8A blocks; NULL allowed for the float
 * types). The quantized layouts have AVX2 tile kernels that unpack each weight block once for several
 * activations (prefill); the others, and CPUs without AVX2, loop quant_vec_dot. Same sums as quant_vec_dot
 * up to the order of the fp32 additions, and each activation's results are bit for bit the same whatever
 * T and the other activations are. */
void quant_matmul(uint32_t type, const void *w, size_t row_bytes, int64_t nr, int64_t n, const float *x,
                  const BlockQ8A *xq, int T, float *y, int64_t ldy);

/* y[r] = quant_vec_dot(row r, x) for r < nr (rows as quant_matmul's), with the weights prefetched ahead:
 * the fastest path for one activation (decode). Its results may differ from quant_matmul's in the last
 * bits. */
void quant_gemv(uint32_t type, const void *w, size_t row_bytes, int64_t nr, int64_t n, const float *x,
                const BlockQ8A *xq, float *y);

/* fp16/bf16 <-> fp32 */
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t h);

/* ---- for tests and benchmarks ---- */

/* on != 0: from now on use the portable kernels even where AVX2 is available; on == 0: choose again by
 * the CPU. Returns whether the portable path was forced before. Not for use while other threads run
 * quant_vec_dot (a switch in the middle of a matmul mixes paths, harmlessly but confusingly). */
int quant_cpu_force_portable(int on);

/* "avx2" or "portable": the kernels quant_vec_dot uses now. */
const char *quant_cpu_path(void);

#endif
