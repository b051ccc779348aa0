/*
 * dot_avx2: the AVX2 + FMA + F16C kernels of the decode hot loop (one weight row . one activation), and
 * Q8A quantization. Every function carries __attribute__((target(...))), so this file builds without
 * -march flags and the binary still runs on CPUs without AVX2: dot.c calls in only after
 * quant_avx2_usable() said yes. Each kernel computes the same sums as its portable twin in dot.c (see
 * the table there); only the order of the fp32 additions differs.
 *
 * The integer core of every quantized kernel is _mm256_maddubs_epi16(u8 weights, s8 activations): 32
 * products summed in adjacent pairs to 16 int16, then _mm256_madd_epi16 to 8 int32. No int16 pair can
 * saturate: |a| <= 127 (Q8A) and weights are at most 63 unsigned (Q6_K) or 128 in magnitude after the
 * sign trick (Q8_0): 2 * 128 * 127 < 32767. Offsets (Q4_0's -8, Q5_0's -16, Q6_K's -32) are subtracted as
 * maddubs(offset, a) so the weights stay unsigned.
 *
 * Not here: the float types' tails beyond the vector loop use scalar code; Q2_K, Q3_K use the portable
 * kernels (not in the models we serve).
 */
#include "quant_impl.h"

#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* AVX2 and FMA as the compiler's runtime reports them (which includes the OS's saving of the ymm
 * registers), F16C from CPUID leaf 1 (clang's __builtin_cpu_supports does not know "f16c"). */
int quant_avx2_usable(void) {
    __builtin_cpu_init();
    unsigned eax, ebx, ecx = 0, edx;
    const int f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}

/* ---- helpers ---- */

AVX2 static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

/* 16 bytes of nibbles -> 32 bytes: value j (low nibble of qs[j]) in byte j, value j+16 (high nibble) in
 * byte j+16. */
AVX2 static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i t = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* The 32 fifth bits of a Q5 block (bit j of the little-endian qh) -> byte j = 16 where bit j is set,
 * 0 elsewhere. */
AVX2 static inline __m256i unpack_bits16(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    /* byte j <- qh byte j/8, then test bit j%8 */
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(16));
}

/* sum of 32 products u8 q . s8 a, as 8 int32 lanes */
AVX2 static inline __m256i dot_u8s8(__m256i q, __m256i a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), _mm256_set1_epi16(1));
}

/* as dot_u8s8, of (q - off) for a constant offset off (q - off may be negative) */
AVX2 static inline __m256i dot_u8s8_off(__m256i q, __m256i a, __m256i off) {
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, a), _mm256_maddubs_epi16(off, a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

AVX2 static inline __m256i load_a(const BlockQ8A *xq) {
    return _mm256_loadu_si256((const __m256i *)xq->qs);
}

/* ---- float weights ---- */

AVX2 static float dot_f32(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const float *v = w;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(v + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(v + i), _mm256_loadu_ps(x + i), acc[0]);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += v[i] * x[i];
    return sum;
}

AVX2 static float dot_f16(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const uint16_t *h = w;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i + 8 * k)));
            acc[k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i + 8 * k), acc[k]);
        }
    for (; i + 8 <= n; i += 8)
        acc[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))), _mm256_loadu_ps(x + i),
                                 acc[0]);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += f16(h[i]) * x[i];
    return sum;
}

/* 8 bf16 -> 8 fp32: the bits shifted into the top half */
AVX2 static inline __m256 load_bf16(const uint16_t *h) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)h));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

AVX2 static float dot_bf16(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const uint16_t *h = w;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(load_bf16(h + i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load_bf16(h + i), _mm256_loadu_ps(x + i), acc[0]);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++) sum += quant_bf16_to_f32(h[i]) * x[i];
    return sum;
}

/* ---- blocks of 32 ----
 * One function per layout adds one block's contribution to an accumulator; the row loops take two blocks
 * per step into two accumulators, so that consecutive FMAs do not wait on each other. */

/* acc + (sum_i q_i a_i as 8 int32 lanes) * scale, for a block with weight scale d (fp16) */
AVX2 static inline __m256 fma_block(__m256i dot, uint16_t d, const BlockQ8A *a, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(f16(d) * a->d), acc);
}

AVX2 static inline __m256 block_q8_0(const BlockQ8_0 *b, const BlockQ8A *a, __m256 acc) {
    const __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
    /* sign trick: |q| . (a * sign(q)), so that maddubs sees an unsigned first operand */
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(load_a(a), q));
    return fma_block(_mm256_madd_epi16(p, _mm256_set1_epi16(1)), b->d, a, acc);
}

AVX2 static inline __m256 block_q4_0(const BlockQ4_0 *b, const BlockQ8A *a, __m256 acc) {
    return fma_block(dot_u8s8_off(unpack_nibbles(b->qs), load_a(a), _mm256_set1_epi8(8)), b->d, a, acc);
}

AVX2 static inline __m256 block_q5_0(const BlockQ5_0 *b, const BlockQ8A *a, __m256 acc) {
    const __m256i q = _mm256_or_si256(unpack_nibbles(b->qs), unpack_bits16(b->qh));
    return fma_block(dot_u8s8_off(q, load_a(a), _mm256_set1_epi8(16)), b->d, a, acc);
}

/* Q4_1, Q5_1: the minimum's part m * da * sum goes to a scalar accumulator */
AVX2 static inline __m256 block_q4_1(const BlockQ4_1 *b, const BlockQ8A *a, __m256 acc, float *mins) {
    *mins += f16(b->m) * a->d * (float)a->sum;
    return fma_block(dot_u8s8(unpack_nibbles(b->qs), load_a(a)), b->d, a, acc);
}

AVX2 static inline __m256 block_q5_1(const BlockQ5_1 *b, const BlockQ8A *a, __m256 acc, float *mins) {
    *mins += f16(b->m) * a->d * (float)a->sum;
    const __m256i q = _mm256_or_si256(unpack_nibbles(b->qs), unpack_bits16(b->qh));
    return fma_block(dot_u8s8(q, load_a(a)), b->d, a, acc);
}

AVX2 static float dot_q8_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ8_0 *b = w;
    const int64_t nb = n / QK8_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        acc0 = block_q8_0(b + i, xq + i, acc0);
        acc1 = block_q8_0(b + i + 1, xq + i + 1, acc1);
    }
    if (i < nb) acc0 = block_q8_0(b + i, xq + i, acc0);
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

AVX2 static float dot_q4_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ4_0 *b = w;
    const int64_t nb = n / QK4_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        acc0 = block_q4_0(b + i, xq + i, acc0);
        acc1 = block_q4_0(b + i + 1, xq + i + 1, acc1);
    }
    if (i < nb) acc0 = block_q4_0(b + i, xq + i, acc0);
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

AVX2 static float dot_q5_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ5_0 *b = w;
    const int64_t nb = n / QK5_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        acc0 = block_q5_0(b + i, xq + i, acc0);
        acc1 = block_q5_0(b + i + 1, xq + i + 1, acc1);
    }
    if (i < nb) acc0 = block_q5_0(b + i, xq + i, acc0);
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

AVX2 static float dot_q4_1(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ4_1 *b = w;
    const int64_t nb = n / QK4_1;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float mins0 = 0, mins1 = 0;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        acc0 = block_q4_1(b + i, xq + i, acc0, &mins0);
        acc1 = block_q4_1(b + i + 1, xq + i + 1, acc1, &mins1);
    }
    if (i < nb) acc0 = block_q4_1(b + i, xq + i, acc0, &mins0);
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + (mins0 + mins1);
}

AVX2 static float dot_q5_1(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ5_1 *b = w;
    const int64_t nb = n / QK5_1;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float mins0 = 0, mins1 = 0;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        acc0 = block_q5_1(b + i, xq + i, acc0, &mins0);
        acc1 = block_q5_1(b + i + 1, xq + i + 1, acc1, &mins1);
    }
    if (i < nb) acc0 = block_q5_1(b + i, xq + i, acc0, &mins0);
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + (mins0 + mins1);
}

/* ---- K-quants ---- */

/* The 8 activation scales da and the 8 sums of a super-block's activation blocks, as two vectors. Each
 * BlockQ8A starts with {d, sum}: one 64-bit load per block, then a de-interleave. */
AVX2 static inline void load_da_sum8(const BlockQ8A *xq, __m256 *da, __m256 *sum) {
    __m128 p[4];
    for (int k = 0; k < 4; k++) { /* d, sum of block 2k, then of block 2k+1 */
        const __m128i lo = _mm_loadl_epi64((const __m128i *)(const void *)&xq[2 * k]);
        const __m128i hi = _mm_loadl_epi64((const __m128i *)(const void *)&xq[2 * k + 1]);
        p[k] = _mm_castsi128_ps(_mm_unpacklo_epi64(lo, hi));
    }
    const __m256 a = _mm256_insertf128_ps(_mm256_castps128_ps256(p[0]), p[2], 1); /* blocks 0 1 | 4 5 */
    const __m256 c = _mm256_insertf128_ps(_mm256_castps128_ps256(p[1]), p[3], 1); /* blocks 2 3 | 6 7 */
    *da = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(2, 0, 2, 0));                         /* d0..d7 */
    *sum = _mm256_cvtepi32_ps(_mm256_castps_si256(_mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 1, 3, 1))));
}

/* Q4_K/Q5_K scales: the 12 packed bytes -> sc[0..7] in bytes 0-7 and min[0..7] in bytes 8-15 of out
 * (the same unpacking as quant_k4_scale_min, four sub-blocks at a time in 32-bit words). */
static inline void unpack_k4_scales(const uint8_t packed[12], uint8_t out[16]) {
    uint32_t u[3], r[4];
    memcpy(u, packed, 12);
    r[0] = u[0] & 0x3F3F3F3F;                                          /* scales 0-3 */
    r[1] = (u[2] & 0x0F0F0F0F) | ((u[0] >> 6) & 0x03030303) << 4;      /* scales 4-7 */
    r[2] = u[1] & 0x3F3F3F3F;                                          /* mins 0-3 */
    r[3] = ((u[2] >> 4) & 0x0F0F0F0F) | ((u[1] >> 6) & 0x03030303) << 4; /* mins 4-7 */
    memcpy(out, r, 16);
}

/* Per super-block of Q4_K/Q5_K: the 8 block scales d * sc_j * da_j into scale[8], and the minimum term
 * sum_j dmin * min_j * da_j * sum_j added to *mins. */
AVX2 static inline void k4_scales(uint16_t d, uint16_t dmin, const uint8_t packed[12], const BlockQ8A *xq,
                                  float scale[8], __m256 *mins) {
    uint8_t sm[16];
    unpack_k4_scales(packed, sm);
    __m256 da, sum;
    load_da_sum8(xq, &da, &sum);
    const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sm)));
    const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sm + 8))));
    _mm256_storeu_ps(scale, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(f16(d)), sc), da));
    *mins = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16(dmin)), mn), _mm256_mul_ps(da, sum), *mins);
}

AVX2 static float dot_q4_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ4_K *b = w;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, mins = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, b++, xq += 8) {
        float scale[8];
        k4_scales(b->d, b->dmin, b->scales, xq, scale, &mins);
        for (int c = 0; c < 4; c++) { /* sub-blocks 2c (low nibbles) and 2c+1 (high nibbles) */
            const __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
            const __m256i s0 = dot_u8s8(_mm256_and_si256(q, m4), load_a(xq + 2 * c));
            const __m256i s1 = dot_u8s8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), load_a(xq + 2 * c + 1));
            acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(scale[2 * c]), acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(scale[2 * c + 1]), acc[1]);
        }
    }
    return hsum_ps(_mm256_sub_ps(_mm256_add_ps(acc[0], acc[1]), mins));
}

AVX2 static float dot_q5_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ5_K *b = w;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(16);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, mins = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, b++, xq += 8) {
        float scale[8];
        k4_scales(b->d, b->dmin, b->scales, xq, scale, &mins);
        /* fifth bits: bit j of qh[l] for sub-block j; h is qh shifted right by 2c (per 16-bit lane: the
         * bits that cross into a byte from its neighbour land above the ones used) */
        __m256i h = _mm256_loadu_si256((const __m256i *)b->qh);
        for (int c = 0; c < 4; c++, h = _mm256_srli_epi16(h, 2)) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m16));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                               _mm256_and_si256(_mm256_slli_epi16(h, 3), m16));
            const __m256i s0 = dot_u8s8(q0, load_a(xq + 2 * c));
            const __m256i s1 = dot_u8s8(q1, load_a(xq + 2 * c + 1));
            acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(scale[2 * c]), acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(scale[2 * c + 1]), acc[1]);
        }
    }
    return hsum_ps(_mm256_sub_ps(_mm256_add_ps(acc[0], acc[1]), mins));
}

/* Q6_K: per half of 128 values, four activation blocks (dequant.c's table): block g takes the nibbles of
 * ql[32 (g % 2) ..] (low for g < 2, high else) and bits 2g, 2g+1 of qh[0..31]. The two 16-value groups of
 * a block have their own int8 scales, applied in integers with madd against [sc_lo x8 | sc_hi x8]. */

/* acc + the block's dot: q (0..63) unpacked, sc8 the super-block's 16 scales, k the block (0..7) */
AVX2 static inline __m256 block_q6_k(__m256i q, const BlockQ8A *a, __m128i sc8, int k, float d, __m256 acc) {
    /* bytes 2k x8 then 2k+1 x8 of the scales, sign-extended to int16 */
    const __m128i pick = _mm_add_epi8(_mm_set_epi64x(0x0101010101010101, 0), _mm_set1_epi8((char)(2 * k)));
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
    const __m256i av = load_a(a);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, av), _mm256_maddubs_epi16(_mm256_set1_epi8(32), av));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, sc)), _mm256_set1_ps(d * a->d), acc);
}

AVX2 static float dot_q6_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ6_K *b = w;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        const float d = f16(b->d);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
        for (int h = 0; h < 2; h++, xq += 4) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            /* the two high bits of each group moved to bits 4-5 (16-bit shifts: within each byte the
             * bits kept by the 0x30 mask come from that byte) */
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m3));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m3));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m3));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m3));
            acc0 = block_q6_k(q0, xq + 0, sc8, 4 * h + 0, d, acc0);
            acc1 = block_q6_k(q1, xq + 1, sc8, 4 * h + 1, d, acc1);
            acc0 = block_q6_k(q2, xq + 2, sc8, 4 * h + 2, d, acc0);
            acc1 = block_q6_k(q3, xq + 3, sc8, 4 * h + 3, d, acc1);
        }
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---- Q8A quantization ---- */

/* roundf (half away from zero) of 8 floats: truncate, then step away from zero where the dropped
 * fraction is >= 0.5 */
AVX2 static inline __m256 round_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
    const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_or_ps(step, sign));
}

AVX2 static void q8a_quantize(const float *x, BlockQ8A *y, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 lim = _mm256_set1_ps(127.0f);
    for (int64_t i = 0; i < n / QK8A; i++, x += QK8A, y++) {
        __m256 v[4];
        for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
        /* max |x|; max_ps returns its second operand when one is NaN, so NaNs are skipped as in fmaxf */
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) m = _mm256_max_ps(_mm256_and_ps(v[k], abs_mask), m);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127, id = d != 0 ? 1 / d : 0;
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            /* clamp as the portable code does (min/max with the constant second also maps NaN to it) */
            __m256 r = round_away(_mm256_mul_ps(v[k], _mm256_set1_ps(id)));
            r = _mm256_min_ps(_mm256_max_ps(r, _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim);
            q[k] = _mm256_cvtps_epi32(r);
        }
        /* int32 x 32 -> int8 x 32: the packs work per 128-bit lane, a permute restores the order */
        const __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
        const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b),
                                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y->qs, p8);
        /* the sum of the 32 int8 */
        const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p8), _mm256_set1_epi16(1));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
        y->d = d;
        y->sum = _mm_cvtsi128_si32(s4);
    }
}

/* ---- dispatch ---- */

QuantDotFn quant_dot_avx2(uint32_t type) {
    switch (type) {
    case QT_F32: return dot_f32;
    case QT_F16: return dot_f16;
    case QT_BF16: return dot_bf16;
    case QT_Q4_0: return dot_q4_0;
    case QT_Q4_1: return dot_q4_1;
    case QT_Q5_0: return dot_q5_0;
    case QT_Q5_1: return dot_q5_1;
    case QT_Q8_0: return dot_q8_0;
    case QT_Q4_K: return dot_q4_k;
    case QT_Q5_K: return dot_q5_k;
    case QT_Q6_K: return dot_q6_k;
    default: return NULL;
    }
}

QuantQ8AFn quant_q8a_avx2(void) {
    return q8a_quantize;
}

#else /* not x86: no AVX2 kernels */

int quant_avx2_usable(void) {
    return 0;
}

QuantDotFn quant_dot_avx2(uint32_t type) {
    (void)type;
    return NULL;
}

QuantQ8AFn quant_q8a_avx2(void) {
    return NULL;
}

#endif
