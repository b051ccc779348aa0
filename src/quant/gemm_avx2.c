/*
 * gemm_avx2: products of several weight rows with several activations at once (the prefill's matrix
 * products), AVX2 + FMA + F16C, for the layouts the served models hold: Q8_0, Q5_0, Q4_0, Q4_K, Q6_K.
 * Compiled with target attributes like dot_avx2.c; dot.c calls in only after quant_avx2_usable().
 *
 * A tile is TR rows x TC activations: each weight block is loaded and unpacked once per tile and used
 * against TC activation blocks, and each activation block once against TR rows, with TR * TC fp32
 * accumulators in registers. The sums are those of the one-row kernels (dot.c's table), per block:
 *   Q8_0, Q5_0, Q4_0: the block unpacked to signed int8 (q minus its offset), integer dot by
 *     maddubs(|w|, a * sign(w)) (the sign trick of dot_avx2.c's Q8_0), times d * da;
 *   Q4_K: maddubs(q, a) times d * sc_j * da, and the minimum dmin * min_j * da * sum(a) subtracted from
 *     the same accumulator (lanes are summed at the end anyway);
 *   Q6_K: maddubs(q, a) - maddubs(32, a) weighted per 16-value group by madd with the int8 scales, times
 *     d * da.
 * The per-block products of scales (d * da, d * sc_j * da) are computed as vectors of eight per
 * super-block or per block and broadcast from memory, so the inner step is maddubs, madd, cvt, fma.
 *
 * Not here: one activation (decode; dot_avx2.c's kernels do that), the other layouts (dot.c loops
 * quant_vec_dot for them).
 */
#include "quant_impl.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE __attribute__((always_inline)) inline
#define F16(h) quant_f16_table[(h)]

#define TR 4 /* the most weight rows per tile */
#define TC 4 /* the most activations per tile */

/* ---- helpers ---- */

AVX2 static INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of nibbles -> 32 bytes: value j (low nibble of qs[j]) in byte j, value j+16 in byte j+16 */
AVX2 static INLINE __m256i unpack_nibbles(const uint8_t *qs) {
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi32(t, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm256_set1_epi8(0x0F));
}

/* byte j = 0xFF where bit j of the little-endian 32-bit qh is set, 0 elsewhere */
AVX2 static INLINE __m256i bits_mask(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x8040201008040201);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

AVX2 static INLINE __m256i load_a(const BlockQ8A *a) {
    return _mm256_loadu_si256((const __m256i *)a->qs);
}

/* sum of 32 int8 products as 8 int32 lanes, as fp32 */
AVX2 static INLINE __m256 sum_i16(__m256i p, __m256i weights16) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, weights16));
}

/* The 8 scales da and the 8 sums of eight consecutive activation blocks (each BlockQ8A starts with
 * {d, sum}: one 64-bit load per block, then a de-interleave). */
AVX2 static INLINE __m128 load_da_sum2(const BlockQ8A *xq) {
    const __m128i lo = _mm_loadl_epi64((const __m128i *)(const void *)&xq[0]);
    return _mm_castsi128_ps(_mm_unpacklo_epi64(lo, _mm_loadl_epi64((const __m128i *)(const void *)&xq[1])));
}

AVX2 static INLINE void load_da_sum8(const BlockQ8A *xq, __m256 *da, __m256 *sum) {
    const __m256 a = _mm256_insertf128_ps(_mm256_castps128_ps256(load_da_sum2(xq)), load_da_sum2(xq + 4), 1);
    const __m256 c = _mm256_insertf128_ps(_mm256_castps128_ps256(load_da_sum2(xq + 2)), load_da_sum2(xq + 6), 1);
    *da = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(2, 0, 2, 0));
    *sum = _mm256_cvtepi32_ps(_mm256_castps_si256(_mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 1, 3, 1))));
}

/* ---- blocks of 32: Q8_0, Q5_0, Q4_0 (each block starts with its fp16 scale d) ---- */

/* the block's 32 values as signed int8 (q minus the layout's offset); `type` is a constant */
AVX2 static INLINE __m256i block_s8(uint32_t type, const uint8_t *blk) {
    if (type == QT_Q8_0) return _mm256_loadu_si256((const __m256i *)((const BlockQ8_0 *)(const void *)blk)->qs);
    if (type == QT_Q4_0)
        return _mm256_sub_epi8(unpack_nibbles(((const BlockQ4_0 *)(const void *)blk)->qs), _mm256_set1_epi8(8));
    /* Q5_0: q - 16 is the nibble where the fifth bit is set, the nibble - 16 (its bits | 0xF0) where not */
    const BlockQ5_0 *b = (const void *)blk;
    return _mm256_or_si256(unpack_nibbles(b->qs), _mm256_andnot_si256(bits_mask(b->qh), _mm256_set1_epi8((char)0xF0)));
}

/* y[c * ldy + r] for r < R, c < C: rows w + r * rb (nb blocks of bsz bytes), activations xq + c * nb. */
AVX2 static INLINE void tile_b32(uint32_t type, size_t bsz, const uint8_t *w, size_t rb, const BlockQ8A *xq,
                                 int64_t nb, int R, int C, float *y, int64_t ldy) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[TR][TC];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wabs[TR], wsgn[TR];
        __m256 dw[TR];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + (size_t)r * rb + (size_t)b * bsz;
            uint16_t d;
            memcpy(&d, blk, 2);
            wsgn[r] = block_s8(type, blk);
            wabs[r] = _mm256_sign_epi8(wsgn[r], wsgn[r]);
            dw[r] = _mm256_broadcast_ss(&F16(d));
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const BlockQ8A *a = xq + (size_t)c * nb + b;
            const __m256i av = load_a(a);
            const __m256 da = _mm256_broadcast_ss(&a->d);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256i p = _mm256_maddubs_epi16(wabs[r], _mm256_sign_epi8(av, wsgn[r]));
                acc[r][c] = _mm256_fmadd_ps(sum_i16(p, ones), _mm256_mul_ps(dw[r], da), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[(size_t)c * ldy + r] = hsum_ps(acc[r][c]);
}

/* ---- Q4_K ---- */

/* the 12 packed scale bytes -> sc[0..7] in bytes 0-7 and min[0..7] in bytes 8-15 (dot_avx2.c's) */
AVX2 static INLINE __m128i unpack_k4_scales(const uint8_t packed[12]) {
    uint32_t u[3];
    memcpy(u, packed, 12);
    const uint64_t sc = (u[0] & 0x3F3F3F3F) | (uint64_t)((u[2] & 0x0F0F0F0F) | ((u[0] >> 6) & 0x03030303) << 4) << 32;
    const uint64_t mn =
        (u[1] & 0x3F3F3F3F) | (uint64_t)(((u[2] >> 4) & 0x0F0F0F0F) | ((u[1] >> 6) & 0x03030303) << 4) << 32;
    return _mm_set_epi64x((long long)mn, (long long)sc);
}

AVX2 static INLINE void tile_q4_k(const uint8_t *w, size_t rb, const BlockQ8A *xq, int64_t nb, int R, int C,
                                  float *y, int64_t ldy) {
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[TR][TC];
    _Alignas(32) float S[TR][TC][8]; /* d * sc_j * da_j of the current super-block */
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < nb / 8; sb++) {
        const BlockQ4_K *bk[TR];
        __m256 da[TC], dsum[TC];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m256 sum;
            load_da_sum8(xq + (size_t)c * nb + 8 * sb, &da[c], &sum);
            dsum[c] = _mm256_mul_ps(da[c], sum);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            bk[r] = (const BlockQ4_K *)(const void *)(w + (size_t)r * rb) + sb;
            const __m128i sm = unpack_k4_scales(bk[r]->scales);
            const __m256 dsc = _mm256_mul_ps(_mm256_broadcast_ss(&F16(bk[r]->d)), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
            const __m256 dmn = _mm256_mul_ps(_mm256_broadcast_ss(&F16(bk[r]->dmin)),
                                             _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                _mm256_store_ps(S[r][c], _mm256_mul_ps(dsc, da[c]));
                acc[r][c] = _mm256_fnmadd_ps(dmn, dsum[c], acc[r][c]);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256i lo[TR], hi[TR];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(bk[r]->qs + 32 * j));
                lo[r] = _mm256_and_si256(q, m4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            }
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const BlockQ8A *a = xq + (size_t)c * nb + 8 * sb + 2 * j;
                const __m256i a0 = load_a(a), a1 = load_a(a + 1);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    acc[r][c] = _mm256_fmadd_ps(sum_i16(_mm256_maddubs_epi16(lo[r], a0), ones),
                                                _mm256_broadcast_ss(&S[r][c][2 * j]), acc[r][c]);
                    acc[r][c] = _mm256_fmadd_ps(sum_i16(_mm256_maddubs_epi16(hi[r], a1), ones),
                                                _mm256_broadcast_ss(&S[r][c][2 * j + 1]), acc[r][c]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[(size_t)c * ldy + r] = hsum_ps(acc[r][c]);
}

/* ---- Q6_K ---- */

/* block k (0..7, a constant) of a Q6_K super-block as unsigned 0..63 (dot_avx2.c's table: the nibbles
 * of ql[64 (k / 4) + 32 (k % 2)..] (low for k % 4 < 2), bits 2 (k % 4), +1 of qh[32 (k / 4)..]) */
AVX2 static INLINE __m256i q6_block(const BlockQ6_K *b, int k) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    const int h = k / 4, g = k % 4;
    const __m256i ql = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (g % 2)));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    const __m256i lo = g < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
    const __m256i hb = g == 0   ? _mm256_slli_epi16(qh, 4)
                       : g == 1 ? _mm256_slli_epi16(qh, 2)
                       : g == 2 ? qh
                                : _mm256_srli_epi16(qh, 2);
    return _mm256_or_si256(lo, _mm256_and_si256(hb, m3));
}

/* the int8 scales of block k's two 16-value groups as int16: 2k x8, then 2k+1 x8 */
AVX2 static INLINE __m256i q6_scales(__m128i sc8, int k) {
    const __m128i pick = _mm_set_epi64x((long long)(0x0101010101010101ull * (uint64_t)(2 * k + 1)),
                                        (long long)(0x0101010101010101ull * (uint64_t)(2 * k)));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
}

AVX2 static INLINE void tile_q6_k(const uint8_t *w, size_t rb, const BlockQ8A *xq, int64_t nb, int R, int C,
                                  float *y, int64_t ldy) {
    const __m256i m32 = _mm256_set1_epi8(32);
    __m256 acc[TR][TC];
    _Alignas(32) float S[TR][TC][8]; /* d * da_k of the current super-block */
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < nb / 8; sb++) {
        const BlockQ6_K *bk[TR];
        __m128i sc8[TR];
        __m256 da[TC];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m256 sum;
            load_da_sum8(xq + (size_t)c * nb + 8 * sb, &da[c], &sum);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            bk[r] = (const BlockQ6_K *)(const void *)(w + (size_t)r * rb) + sb;
            sc8[r] = _mm_loadu_si128((const __m128i *)bk[r]->scales);
            const __m256 d = _mm256_broadcast_ss(&F16(bk[r]->d));
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) _mm256_store_ps(S[r][c], _mm256_mul_ps(d, da[c]));
        }
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            __m256i q[TR], sc[TR];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                q[r] = q6_block(bk[r], k);
                sc[r] = q6_scales(sc8[r], k);
            }
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const __m256i av = load_a(xq + (size_t)c * nb + 8 * sb + k);
                const __m256i off = _mm256_maddubs_epi16(m32, av);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[r], av), off);
                    acc[r][c] = _mm256_fmadd_ps(sum_i16(p, sc[r]), _mm256_broadcast_ss(&S[r][c][k]), acc[r][c]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) y[(size_t)c * ldy + r] = hsum_ps(acc[r][c]);
}

/* ---- drivers: full tiles, then single rows / single activations at the edges ---- */

typedef void (*TileFn)(const uint8_t *w, size_t rb, const BlockQ8A *xq, int64_t nb, float *y, int64_t ldy);

/* tiles[full rows][full activations], full tiles being R x C */
AVX2 static void drive(const TileFn tiles[2][2], int R, int C, const void *w, size_t rb, int64_t nr, int64_t n,
                       const BlockQ8A *xq, int T, float *y, int64_t ldy) {
    const int64_t nb = n / QK8A;
    for (int64_t r = 0; r < nr;) {
        const int full_r = nr - r >= R;
        for (int t = 0; t < T;) {
            const int full_c = T - t >= C;
            tiles[full_r][full_c]((const uint8_t *)w + (size_t)r * rb, rb, xq + (size_t)t * nb, nb,
                                  y + (size_t)t * ldy + r, ldy);
            t += full_c ? C : 1;
        }
        r += full_r ? R : 1;
    }
}

#define TILE_FN(name, R, C, call)                                                                            \
    AVX2 static void name(const uint8_t *w, size_t rb, const BlockQ8A *xq, int64_t nb, float *y, int64_t ldy) { \
        call(w, rb, xq, nb, R, C, y, ldy);                                                                   \
    }

/* GEMM_FOR(name, tile call, R, C): the four tile shapes (R x C, R x 1, 1 x C, 1 x 1) and the matmul entry
 * point of one layout */
#define GEMM_FOR(name, call, R, C)                                                                           \
    TILE_FN(name##_11, 1, 1, call)                                                                           \
    TILE_FN(name##_1c, 1, C, call)                                                                           \
    TILE_FN(name##_r1, R, 1, call)                                                                           \
    TILE_FN(name##_rc, R, C, call)                                                                           \
    AVX2 static void name(const void *w, size_t rb, int64_t nr, int64_t n, const BlockQ8A *xq, int T, float *y, \
                          int64_t ldy) {                                                                     \
        static const TileFn tiles[2][2] = {{name##_11, name##_1c}, {name##_r1, name##_rc}};                  \
        drive(tiles, R, C, w, rb, nr, n, xq, T, y, ldy);                                                     \
    }

#define CALL_Q8_0(w, rb, xq, nb, R, C, y, ldy) tile_b32(QT_Q8_0, sizeof(BlockQ8_0), w, rb, xq, nb, R, C, y, ldy)
#define CALL_Q5_0(w, rb, xq, nb, R, C, y, ldy) tile_b32(QT_Q5_0, sizeof(BlockQ5_0), w, rb, xq, nb, R, C, y, ldy)
#define CALL_Q4_0(w, rb, xq, nb, R, C, y, ldy) tile_b32(QT_Q4_0, sizeof(BlockQ4_0), w, rb, xq, nb, R, C, y, ldy)

#ifndef GR
#define GR 4
#define GC 3
#endif
GEMM_FOR(gemm_q8_0, CALL_Q8_0, GR, GC)
GEMM_FOR(gemm_q5_0, CALL_Q5_0, GR, GC)
GEMM_FOR(gemm_q4_0, CALL_Q4_0, GR, GC)
GEMM_FOR(gemm_q4_k, tile_q4_k, GR, GC)
GEMM_FOR(gemm_q6_k, tile_q6_k, GR, GC)

QuantGemmFn quant_gemm_avx2(uint32_t type) {
    switch (type) {
    case QT_Q8_0:
        return gemm_q8_0;
    case QT_Q5_0:
        return gemm_q5_0;
    case QT_Q4_0:
        return gemm_q4_0;
    case QT_Q4_K:
        return gemm_q4_k;
    case QT_Q6_K:
        return gemm_q6_k;
    default:
        return NULL;
    }
}

#else /* not x86 */

QuantGemmFn quant_gemm_avx2(uint32_t type) {
    (void)type;
    return NULL;
}

#endif
