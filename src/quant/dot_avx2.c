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
 * sign trick (Q8_0): 2 * 128 * 127 < 32767. Offsets (Q4_0's -8, Q6_K's -32) are subtracted as
 * maddubs(offset, a) so the weights stay unsigned; Q5_0 subtracts 16 times the activations whose fifth bit
 * is clear, which also saves combining the fifth bit into the weights.
 *
 * What the speed rests on (measured on the target Zen 3: shuffles, shifts and register broadcasts share two
 * of the four vector pipes, maddubs/madd two others, broadcasts from memory cost no vector pipe, and every
 * instruction counts at ~3.5 per cycle): fp16 block scales come from quant_f16_table (a scalar load instead
 * of F16C's insert + convert), each block's scale is one scalar product broadcast once, accumulators are
 * separate registers (four for the blocks of 32) so that FMAs do not wait on each other, the K-quants'
 * per-super-block scales are computed as vectors and broadcast from memory, and Q8A quantization divides
 * eight blocks at a time (dependent scalar divisions serialize).
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

#define F16(h) quant_f16_table[(h)]

/* The K-quant loops ask for the bytes PREFETCH_K further on, one super-block at a time (quant_gemv's
 * prefetch of a whole row at its start is too bursty for their long rows): measured from memory, one
 * thread, Q6_K 9.8 -> 14 GB/s, Q4_K 9.3 -> 13. */
#define PREFETCH_K 1024
#define PREFETCH_SUPER_BLOCK(b)                                                                              \
    for (size_t off_ = 0; off_ < sizeof *(b); off_ += 64) __builtin_prefetch((const char *)(b) + PREFETCH_K + off_, 0, 0)

AVX2 static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of nibbles -> 32 bytes: value j (low nibble of qs[j]) in byte j, value j+16 (high nibble) in
 * byte j+16 (one broadcast load, a per-lane shift by 0 or 4, a mask). */
AVX2 static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi32(t, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm256_set1_epi8(0x0F));
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

/* ---- float weights: 32 values per step into four accumulators ---- */

AVX2 static inline __m256 load_f16x8(const uint16_t *h) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

/* 8 bf16 -> 8 fp32: the bits shifted into the top half */
AVX2 static inline __m256 load_bf16x8(const uint16_t *h) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)h));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

AVX2 static inline float sum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

AVX2 static float dot_f32(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const float *v = w;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + i), _mm256_loadu_ps(x + i), a0);
    float sum = sum4(a0, a1, a2, a3);
    for (; i < n; i++) sum += v[i] * x[i];
    return sum;
}

AVX2 static float dot_f16(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const uint16_t *h = w;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_f16x8(h + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load_f16x8(h + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_f16x8(h + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_f16x8(h + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_f16x8(h + i), _mm256_loadu_ps(x + i), a0);
    float sum = sum4(a0, a1, a2, a3);
    for (; i < n; i++) sum += F16(h[i]) * x[i];
    return sum;
}

AVX2 static float dot_bf16(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)xq;
    const uint16_t *h = w;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_bf16x8(h + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load_bf16x8(h + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_bf16x8(h + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_bf16x8(h + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_bf16x8(h + i), _mm256_loadu_ps(x + i), a0);
    float sum = sum4(a0, a1, a2, a3);
    for (; i < n; i++) sum += quant_bf16_to_f32(h[i]) * x[i];
    return sum;
}

/* ---- blocks of 32 ----
 * One function per layout adds one block's contribution to an accumulator (and, for the layouts with a
 * minimum, the minimum's part m * da * sum to a scalar); ROW_LOOP runs it over a row four blocks per step
 * into four accumulators, so that consecutive FMAs do not wait on each other. */

/* acc + (sum_i q_i a_i as 8 int32 lanes) * d * da, for a block with weight scale d (fp16) */
AVX2 static inline __m256 fma_block(__m256i dot, uint16_t d, const BlockQ8A *a, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(F16(d) * a->d), acc);
}

/* byte j = 0xFF where bit j of the little-endian 32-bit qh is set, 0 elsewhere */
AVX2 static inline __m256i bits_mask(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    /* byte j <- qh byte j/8, then test bit j%8 */
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

AVX2 static inline __m256 block_q8_0(const BlockQ8_0 *b, const BlockQ8A *a, __m256 acc, float *mins) {
    (void)mins;
    const __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
    /* sign trick: |q| . (a * sign(q)), so that maddubs sees an unsigned first operand */
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(load_a(a), q));
    return fma_block(_mm256_madd_epi16(p, _mm256_set1_epi16(1)), b->d, a, acc);
}

AVX2 static inline __m256 block_q4_0(const BlockQ4_0 *b, const BlockQ8A *a, __m256 acc, float *mins) {
    (void)mins;
    return fma_block(dot_u8s8_off(unpack_nibbles(b->qs), load_a(a), _mm256_set1_epi8(8)), b->d, a, acc);
}

/* sum (q - 16) a with q = nibble + 16 * bit: sum nibble a - 16 * (sum of a where the bit is clear) */
AVX2 static inline __m256 block_q5_0(const BlockQ5_0 *b, const BlockQ8A *a, __m256 acc, float *mins) {
    (void)mins;
    const __m256i av = load_a(a);
    const __m256i clear = _mm256_andnot_si256(bits_mask(b->qh), av);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(unpack_nibbles(b->qs), av),
                                       _mm256_maddubs_epi16(_mm256_set1_epi8(16), clear));
    return fma_block(_mm256_madd_epi16(p, _mm256_set1_epi16(1)), b->d, a, acc);
}

AVX2 static inline __m256 block_q4_1(const BlockQ4_1 *b, const BlockQ8A *a, __m256 acc, float *mins) {
    *mins += F16(b->m) * a->d * (float)a->sum;
    return fma_block(dot_u8s8(unpack_nibbles(b->qs), load_a(a)), b->d, a, acc);
}

/* sum q a with q = nibble + 16 * bit: sum nibble a + 16 * (sum of a where the bit is set) */
AVX2 static inline __m256 block_q5_1(const BlockQ5_1 *b, const BlockQ8A *a, __m256 acc, float *mins) {
    *mins += F16(b->m) * a->d * (float)a->sum;
    const __m256i av = load_a(a);
    const __m256i set = _mm256_and_si256(bits_mask(b->qh), av);
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(unpack_nibbles(b->qs), av),
                                       _mm256_maddubs_epi16(_mm256_set1_epi8(16), set));
    return fma_block(_mm256_madd_epi16(p, _mm256_set1_epi16(1)), b->d, a, acc);
}

/* The body of dot_<layout>: blocks of type BlockT through block_fn, four at a time, then the rest. */
#define ROW_LOOP(BlockT, block_fn)                                                                           \
    const BlockT *b = w;                                                                                     \
    const int64_t nb = n / 32;                                                                               \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                           \
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();                                           \
    float m0 = 0, m1 = 0, m2 = 0, m3 = 0;                                                                    \
    int64_t i = 0;                                                                                           \
    for (; i + 4 <= nb; i += 4) {                                                                            \
        acc0 = block_fn(b + i, xq + i, acc0, &m0);                                                           \
        acc1 = block_fn(b + i + 1, xq + i + 1, acc1, &m1);                                                   \
        acc2 = block_fn(b + i + 2, xq + i + 2, acc2, &m2);                                                   \
        acc3 = block_fn(b + i + 3, xq + i + 3, acc3, &m3);                                                   \
    }                                                                                                        \
    for (; i < nb; i++) acc0 = block_fn(b + i, xq + i, acc0, &m0);                                           \
    (void)x;                                                                                                 \
    return sum4(acc0, acc1, acc2, acc3) + ((m0 + m1) + (m2 + m3))

AVX2 static float dot_q8_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    ROW_LOOP(BlockQ8_0, block_q8_0);
}

AVX2 static float dot_q4_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    ROW_LOOP(BlockQ4_0, block_q4_0);
}

AVX2 static float dot_q5_0(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    ROW_LOOP(BlockQ5_0, block_q5_0);
}

AVX2 static float dot_q4_1(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    ROW_LOOP(BlockQ4_1, block_q4_1);
}

AVX2 static float dot_q5_1(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    ROW_LOOP(BlockQ5_1, block_q5_1);
}

/* ---- two rows at once (quant_gemv) ----
 * The rows rb bytes apart from w, each with exactly its one-row kernel's operations in the same order
 * (results bit for bit those of dot_<layout>), interleaved: the two rows' independent chains keep more
 * of the vector pipes busy, and each activation block is loaded once for both (measured on the Q5_0
 * rows of Qwen2.5-0.5B: 6.4 -> 5.8 cycles per block). */

#define ROW_LOOP2(BlockT, block_fn)                                                                          \
    const BlockT *b = w, *c = (const BlockT *)(const void *)((const uint8_t *)w + rb);                      \
    const int64_t nb = n / 32;                                                                               \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                           \
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();                                           \
    __m256 bcc0 = _mm256_setzero_ps(), bcc1 = _mm256_setzero_ps();                                           \
    __m256 bcc2 = _mm256_setzero_ps(), bcc3 = _mm256_setzero_ps();                                           \
    float m0 = 0, m1 = 0, m2 = 0, m3 = 0, n0 = 0, n1 = 0, n2 = 0, n3 = 0;                                    \
    int64_t i = 0;                                                                                           \
    for (; i + 4 <= nb; i += 4) {                                                                            \
        acc0 = block_fn(b + i, xq + i, acc0, &m0);                                                           \
        bcc0 = block_fn(c + i, xq + i, bcc0, &n0);                                                           \
        acc1 = block_fn(b + i + 1, xq + i + 1, acc1, &m1);                                                   \
        bcc1 = block_fn(c + i + 1, xq + i + 1, bcc1, &n1);                                                   \
        acc2 = block_fn(b + i + 2, xq + i + 2, acc2, &m2);                                                   \
        bcc2 = block_fn(c + i + 2, xq + i + 2, bcc2, &n2);                                                   \
        acc3 = block_fn(b + i + 3, xq + i + 3, acc3, &m3);                                                   \
        bcc3 = block_fn(c + i + 3, xq + i + 3, bcc3, &n3);                                                   \
    }                                                                                                        \
    for (; i < nb; i++) {                                                                                    \
        acc0 = block_fn(b + i, xq + i, acc0, &m0);                                                           \
        bcc0 = block_fn(c + i, xq + i, bcc0, &n0);                                                           \
    }                                                                                                        \
    y[0] = sum4(acc0, acc1, acc2, acc3) + ((m0 + m1) + (m2 + m3));                                           \
    y[1] = sum4(bcc0, bcc1, bcc2, bcc3) + ((n0 + n1) + (n2 + n3))

AVX2 static void dot2_q8_0(const void *w, size_t rb, const BlockQ8A *xq, int64_t n, float y[2]) {
    ROW_LOOP2(BlockQ8_0, block_q8_0);
}

AVX2 static void dot2_q4_0(const void *w, size_t rb, const BlockQ8A *xq, int64_t n, float y[2]) {
    ROW_LOOP2(BlockQ4_0, block_q4_0);
}

AVX2 static void dot2_q5_0(const void *w, size_t rb, const BlockQ8A *xq, int64_t n, float y[2]) {
    ROW_LOOP2(BlockQ5_0, block_q5_0);
}

AVX2 static void dot2_q4_1(const void *w, size_t rb, const BlockQ8A *xq, int64_t n, float y[2]) {
    ROW_LOOP2(BlockQ4_1, block_q4_1);
}

AVX2 static void dot2_q5_1(const void *w, size_t rb, const BlockQ8A *xq, int64_t n, float y[2]) {
    ROW_LOOP2(BlockQ5_1, block_q5_1);
}

/* ---- K-quants ---- */

/* The 8 activation scales da and the 8 sums of a super-block's activation blocks, as two vectors. Each
 * BlockQ8A starts with {d, sum}: one 64-bit load per block, then a de-interleave. */
AVX2 static inline __m128 load_da_sum2(const BlockQ8A *xq) { /* d, sum of xq[0], then of xq[1] */
    const __m128i lo = _mm_loadl_epi64((const __m128i *)(const void *)&xq[0]);
    return _mm_castsi128_ps(_mm_unpacklo_epi64(lo, _mm_loadl_epi64((const __m128i *)(const void *)&xq[1])));
}

AVX2 static inline void load_da_sum8(const BlockQ8A *xq, __m256 *da, __m256 *sum) {
    const __m256 a = _mm256_insertf128_ps(_mm256_castps128_ps256(load_da_sum2(xq)), load_da_sum2(xq + 4), 1);
    const __m256 c =
        _mm256_insertf128_ps(_mm256_castps128_ps256(load_da_sum2(xq + 2)), load_da_sum2(xq + 6), 1);
    /* a: blocks 0 1 | 4 5, c: blocks 2 3 | 6 7, each as (d, sum) pairs */
    *da = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(2, 0, 2, 0)); /* d0..d7 */
    *sum = _mm256_cvtepi32_ps(_mm256_castps_si256(_mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 1, 3, 1))));
}

/* Q4_K/Q5_K scales: the 12 packed bytes -> sc[0..7] in bytes 0-7 and min[0..7] in bytes 8-15 (the same
 * unpacking as quant_k4_scale_min, four sub-blocks at a time in 32-bit words, in general registers). */
AVX2 static inline __m128i unpack_k4_scales(const uint8_t packed[12]) {
    uint32_t u[3];
    memcpy(u, packed, 12);
    const uint64_t sc = (u[0] & 0x3F3F3F3F) |                                                    /* 0-3 */
                        (uint64_t)((u[2] & 0x0F0F0F0F) | ((u[0] >> 6) & 0x03030303) << 4) << 32; /* 4-7 */
    const uint64_t mn =
        (u[1] & 0x3F3F3F3F) | (uint64_t)(((u[2] >> 4) & 0x0F0F0F0F) | ((u[1] >> 6) & 0x03030303) << 4) << 32;
    return _mm_set_epi64x((long long)mn, (long long)sc);
}

/* Per super-block of Q4_K/Q5_K: the 8 block scales d * sc_j * da_j into scale[8], and the minimum term
 * sum_j dmin * min_j * da_j * sum_j added to *mins. */
AVX2 static inline void k4_scales(uint16_t d, uint16_t dmin, const uint8_t packed[12], const BlockQ8A *xq,
                                  float scale[8], __m256 *mins) {
    const __m128i sm = unpack_k4_scales(packed);
    __m256 da, sum;
    load_da_sum8(xq, &da, &sum);
    const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm));
    const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)));
    _mm256_storeu_ps(scale, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(F16(d)), sc), da));
    *mins = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(F16(dmin)), mn), _mm256_mul_ps(da, sum), *mins);
}

/* Q4_K sub-blocks 2c (low nibbles of qs[32c..]) and 2c+1 (high nibbles), c a constant */
AVX2 static inline void pair_q4_k(const BlockQ4_K *b, int c, const BlockQ8A *xq, const float *scale,
                                  __m256 *acc0, __m256 *acc1) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
    const __m256i s0 = dot_u8s8(_mm256_and_si256(q, m4), load_a(xq + 2 * c));
    const __m256i s1 = dot_u8s8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), load_a(xq + 2 * c + 1));
    *acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_broadcast_ss(scale + 2 * c), *acc0);
    *acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_broadcast_ss(scale + 2 * c + 1), *acc1);
}

AVX2 static float dot_q4_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ4_K *b = w;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), mins = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, b++, xq += 8) {
        PREFETCH_SUPER_BLOCK(b);
        float scale[8];
        k4_scales(b->d, b->dmin, b->scales, xq, scale, &mins);
        pair_q4_k(b, 0, xq, scale, &acc0, &acc1);
        pair_q4_k(b, 1, xq, scale, &acc0, &acc1);
        pair_q4_k(b, 2, xq, scale, &acc0, &acc1);
        pair_q4_k(b, 3, xq, scale, &acc0, &acc1);
    }
    return hsum_ps(_mm256_sub_ps(_mm256_add_ps(acc0, acc1), mins));
}

AVX2 static float dot_q5_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ5_K *b = w;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(16);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), mins = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, b++, xq += 8) {
        PREFETCH_SUPER_BLOCK(b);
        float scale[8];
        k4_scales(b->d, b->dmin, b->scales, xq, scale, &mins);
        /* fifth bits: bit j of qh[l] for sub-block j; h is qh shifted right by 2c (per 16-bit lane: the
         * bits that cross into a byte from its neighbour land above the ones used) */
        __m256i h = _mm256_loadu_si256((const __m256i *)b->qh);
        for (int c = 0; c < 4; c++, h = _mm256_srli_epi16(h, 2)) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
            const __m256i q0 =
                _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m16));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                               _mm256_and_si256(_mm256_slli_epi16(h, 3), m16));
            const __m256i s0 = dot_u8s8(q0, load_a(xq + 2 * c));
            const __m256i s1 = dot_u8s8(q1, load_a(xq + 2 * c + 1));
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_broadcast_ss(scale + 2 * c), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_broadcast_ss(scale + 2 * c + 1), acc1);
        }
    }
    return hsum_ps(_mm256_sub_ps(_mm256_add_ps(acc0, acc1), mins));
}

/* Q6_K: per half of 128 values, four activation blocks (dequant.c's table): block g takes the nibbles of
 * ql[32 (g % 2) ..] (low for g < 2, high else) and bits 2g, 2g+1 of qh[0..31]. The two 16-value groups of
 * a block have their own int8 scales, applied in integers with madd against [sc_lo x8 | sc_hi x8]. */

/* acc + block k's dot: q (0..63) unpacked, sc8 the super-block's 16 scales, k (0..7) a constant */
AVX2 static inline __m256 block_q6_k(__m256i q, const BlockQ8A *a, __m128i sc8, int k, float d, __m256 acc) {
    /* bytes 2k x8 then 2k+1 x8 of the scales, sign-extended to int16 */
    const __m128i pick = _mm_set_epi64x((long long)(0x0101010101010101ull * (uint64_t)(2 * k + 1)),
                                        (long long)(0x0101010101010101ull * (uint64_t)(2 * k)));
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
    const __m256i av = load_a(a);
    const __m256i p =
        _mm256_sub_epi16(_mm256_maddubs_epi16(q, av), _mm256_maddubs_epi16(_mm256_set1_epi8(32), av));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, sc)), _mm256_set1_ps(d * a->d), acc);
}

/* One half (h = 0 or 1, a constant) of a Q6_K super-block: four activation blocks from xq. */
AVX2 static inline void half_q6_k(const BlockQ6_K *b, int h, const BlockQ8A *xq, __m128i sc8, float d,
                                  __m256 *acc0, __m256 *acc1) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
    const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    /* the two high bits of each group moved to bits 4-5 (16-bit shifts: within each byte the bits kept
     * by the 0x30 mask come from that byte) */
    const __m256i q0 =
        _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m3));
    const __m256i q1 =
        _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m3));
    const __m256i q2 =
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m3));
    const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                       _mm256_and_si256(_mm256_srli_epi16(qh, 2), m3));
    *acc0 = block_q6_k(q0, xq + 0, sc8, 4 * h + 0, d, *acc0);
    *acc1 = block_q6_k(q1, xq + 1, sc8, 4 * h + 1, d, *acc1);
    *acc0 = block_q6_k(q2, xq + 2, sc8, 4 * h + 2, d, *acc0);
    *acc1 = block_q6_k(q3, xq + 3, sc8, 4 * h + 3, d, *acc1);
}

AVX2 static float dot_q6_k(const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    (void)x;
    const BlockQ6_K *b = w;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, b++, xq += 8) {
        PREFETCH_SUPER_BLOCK(b);
        const float d = F16(b->d);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
        half_q6_k(b, 0, xq, sc8, d, &acc0, &acc1);
        half_q6_k(b, 1, xq + 4, sc8, d, &acc0, &acc1);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* two rows of Q4_K, as dot_q4_k each (see ROW_LOOP2; Q6_K gained nothing from it) */
AVX2 static void dot2_q4_k(const void *w, size_t rb, const BlockQ8A *xq, int64_t n, float y[2]) {
    const BlockQ4_K *b = w, *c = (const BlockQ4_K *)(const void *)((const uint8_t *)w + rb);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), mins = _mm256_setzero_ps();
    __m256 bcc0 = _mm256_setzero_ps(), bcc1 = _mm256_setzero_ps(), nins = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, b++, c++, xq += 8) {
        PREFETCH_SUPER_BLOCK(b);
        PREFETCH_SUPER_BLOCK(c);
        float scale[8], scale2[8];
        k4_scales(b->d, b->dmin, b->scales, xq, scale, &mins);
        k4_scales(c->d, c->dmin, c->scales, xq, scale2, &nins);
        pair_q4_k(b, 0, xq, scale, &acc0, &acc1);
        pair_q4_k(c, 0, xq, scale2, &bcc0, &bcc1);
        pair_q4_k(b, 1, xq, scale, &acc0, &acc1);
        pair_q4_k(c, 1, xq, scale2, &bcc0, &bcc1);
        pair_q4_k(b, 2, xq, scale, &acc0, &acc1);
        pair_q4_k(c, 2, xq, scale2, &bcc0, &bcc1);
        pair_q4_k(b, 3, xq, scale, &acc0, &acc1);
        pair_q4_k(c, 3, xq, scale2, &bcc0, &bcc1);
    }
    y[0] = hsum_ps(_mm256_sub_ps(_mm256_add_ps(acc0, acc1), mins));
    y[1] = hsum_ps(_mm256_sub_ps(_mm256_add_ps(bcc0, bcc1), nins));
}

/* ---- Q8A quantization ---- */

/* roundf (half away from zero) of 8 floats: truncate, then step away from zero where the dropped
 * fraction is >= 0.5 */
AVX2 static inline __m256 round_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
    const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    const __m256 step =
        _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_or_ps(step, sign));
}

/* 8 floats times id, rounded half away from zero and clamped to [-127, 127] (as the portable code: min/max
 * with the constant as second operand also map NaN to a number), as int32 */
AVX2 static inline __m256i quantize8(__m256 v, __m256 id) {
    const __m256 lim = _mm256_set1_ps(127.0f);
    const __m256 r = round_away(_mm256_mul_ps(v, id));
    return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim));
}

/* max |x| over 32 floats. max_ps returns its second operand when either is NaN, so with the running
 * maximum (never NaN) as the second operand NaNs are skipped, as in the portable code. */
AVX2 static inline float absmax32(const float *x) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x), abs_mask), _mm256_setzero_ps());
    m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8), abs_mask), m);
    m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 16), abs_mask), m);
    m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 24), abs_mask), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}

/* One block: the 32 codes of x at the inverse scale id, their sum, and d. */
AVX2 static inline void q8a_block(const float *x, float d, float id, BlockQ8A *y) {
    const __m256 idv = _mm256_set1_ps(id);
    /* int32 x 32 -> int8 x 32: the packs work per 128-bit lane, a permute restores the order */
    const __m256i p16a =
        _mm256_packs_epi32(quantize8(_mm256_loadu_ps(x), idv), quantize8(_mm256_loadu_ps(x + 8), idv));
    const __m256i p16b =
        _mm256_packs_epi32(quantize8(_mm256_loadu_ps(x + 16), idv), quantize8(_mm256_loadu_ps(x + 24), idv));
    const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b),
                                                   _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)y->qs, p8);
    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p8), _mm256_set1_epi16(1));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    y->d = d;
    y->sum = _mm_cvtsi128_si32(s4);
}

/* Eight blocks at a time: the two divisions per block (d = amax / 127, id = 1 / d) are done as two vector
 * divisions per eight blocks (scalar ones, each waiting on the last, cost half the time here). Same values
 * as the portable code: IEEE division is exact-rounded either way. */
AVX2 static void q8a_quantize(const float *x, BlockQ8A *y, int64_t n) {
    const int64_t nb = n / QK8A;
    for (int64_t i = 0; i < nb; i += 8) {
        const int k_end = nb - i < 8 ? (int)(nb - i) : 8;
        float amax[8] = {1, 1, 1, 1, 1, 1, 1, 1}, d[8], id[8];
        for (int k = 0; k < k_end; k++) amax[k] = absmax32(x + QK8A * (i + k));
        const __m256 dv = _mm256_div_ps(_mm256_loadu_ps(amax), _mm256_set1_ps(127.0f));
        const __m256 nonzero = _mm256_cmp_ps(dv, _mm256_setzero_ps(), _CMP_NEQ_UQ);
        _mm256_storeu_ps(d, dv);
        _mm256_storeu_ps(id, _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), dv), nonzero));
        for (int k = 0; k < k_end; k++) q8a_block(x + QK8A * (i + k), d[k], id[k], y + i + k);
    }
}

/* ---- dispatch ---- */

QuantDotFn quant_dot_avx2(uint32_t type) {
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

QuantQ8AFn quant_q8a_avx2(void) {
    return q8a_quantize;
}

QuantDot2Fn quant_dot2_avx2(uint32_t type) {
    switch (type) {
    case QT_Q4_0:
        return dot2_q4_0;
    case QT_Q4_1:
        return dot2_q4_1;
    case QT_Q5_0:
        return dot2_q5_0;
    case QT_Q5_1:
        return dot2_q5_1;
    case QT_Q8_0:
        return dot2_q8_0;
    case QT_Q4_K:
        return dot2_q4_k;
    default:
        return NULL;
    }
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

QuantDot2Fn quant_dot2_avx2(uint32_t type) {
    (void)type;
    return NULL;
}

#endif
