/*
 * gemm_avx2: products of several weight rows with several activations at once (the prefill's matrix
 * products), AVX2 + FMA + F16C, for Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K and Q6_K. Compiled with target
 * attributes like dot_avx2.c; dot.c calls in only after quant_avx2_usable().
 *
 * One tile kernel in two steps per panel of 8 rows and up to KB blocks of 32 values: pack unpacks every
 * weight block once into 32 byte codes q, a block scale s and a minimum m (value = s * q - m; Q4_0 and
 * Q5_0 take their offset 8, 16 as the minimum, Q8_0 keeps |w| and its signs, Q6_K its group scales) and
 * interleaves the 8 rows so that each row has its own vector lane, amortized over all activations of the
 * call (the CPU backend passes up to 64); compute runs tiles of the 8 rows x TCU activations, the
 * accumulators in registers, while the next panel's weights are prefetched. The activations' da and
 * da * sum per block are computed once per call. Measured against the row-at-a-time tiles this replaced
 * (quant_dot, 64 activations, one thread): Q5_0 48 -> 71 GMAC/s, Q4_K 48 -> 69, Q6_K 38 -> 53, Q8_0
 * 40 -> 50.
 *
 * Every activation's result is bit for bit independent of T and of the other activations (quant.h
 * promises it): each (row, activation) sum is computed by the same operations in the same order whatever
 * tile it falls in. The one-row kernels of dot_avx2.c, which quant_gemv uses for decode, differ in the last
 * bits.
 */
#include "quant_impl.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE __attribute__((always_inline)) inline
#define F16(h) quant_f16_table[(h)]

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

/* ---- K-quant helpers ---- */

/* the 12 packed scale bytes -> sc[0..7] in bytes 0-7 and min[0..7] in bytes 8-15 (dot_avx2.c's) */
AVX2 static INLINE __m128i unpack_k4_scales(const uint8_t packed[12]) {
    uint32_t u[3];
    memcpy(u, packed, 12);
    const uint64_t sc = (u[0] & 0x3F3F3F3F) | (uint64_t)((u[2] & 0x0F0F0F0F) | ((u[0] >> 6) & 0x03030303) << 4) << 32;
    const uint64_t mn =
        (u[1] & 0x3F3F3F3F) | (uint64_t)(((u[2] >> 4) & 0x0F0F0F0F) | ((u[1] >> 6) & 0x03030303) << 4) << 32;
    return _mm_set_epi64x((long long)mn, (long long)sc);
}

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

/* ---- unpacking blocks into codes, a scale and a minimum ---- */

#define KB 64 /* blocks of 32 per panel (2048 values; a whole number of K-quant super-blocks) */

enum { KIND_U, KIND_S, KIND_6 }; /* unsigned q with a minimum; signed q (Q8_0); Q6_K */


/* one block of 32 values of the layouts of 32-value blocks: its codes (Q8_0: |w|, and the signed values
 * into *w), its s and m */
AVX2 static INLINE __m256i pack_b32(uint32_t type, const uint8_t *blk, __m256i *w, float *s, float *m) {
    if (type == QT_Q8_0) {
        const BlockQ8_0 *b = (const void *)blk;
        *w = _mm256_loadu_si256((const __m256i *)b->qs);
        *s = F16(b->d), *m = 0;
        return _mm256_sign_epi8(*w, *w);
    } else if (type == QT_Q4_0) {
        const BlockQ4_0 *b = (const void *)blk;
        *s = F16(b->d), *m = 8 * F16(b->d);
        return unpack_nibbles(b->qs);
    } else if (type == QT_Q5_0) {
        const BlockQ5_0 *b = (const void *)blk;
        *s = F16(b->d), *m = 16 * F16(b->d);
        return _mm256_or_si256(unpack_nibbles(b->qs), _mm256_and_si256(bits_mask(b->qh), _mm256_set1_epi8(16)));
    } else if (type == QT_Q4_1) {
        const BlockQ4_1 *b = (const void *)blk;
        *s = F16(b->d), *m = -F16(b->m);
        return unpack_nibbles(b->qs);
    } else { /* Q5_1 */
        const BlockQ5_1 *b = (const void *)blk;
        *s = F16(b->d), *m = -F16(b->m);
        return _mm256_or_si256(unpack_nibbles(b->qs), _mm256_and_si256(bits_mask(b->qh), _mm256_set1_epi8(16)));
    }
}

/* super-block `blk` of Q4_K (five = 0) or Q5_K (five = 1): blocks 0..7 into q, s, m */
AVX2 static INLINE void pack_k4(const uint8_t *blk, int five, uint8_t (*q)[32], float *s, float *m) {
    const uint8_t *scales, *qs, *qh = NULL;
    uint16_t d, dmin;
    if (five) {
        const BlockQ5_K *b = (const void *)blk;
        scales = b->scales, qs = b->qs, qh = b->qh, d = b->d, dmin = b->dmin;
    } else {
        const BlockQ4_K *b = (const void *)blk;
        scales = b->scales, qs = b->qs, d = b->d, dmin = b->dmin;
    }
    const __m128i sm = unpack_k4_scales(scales);
    _mm256_store_ps(s, _mm256_mul_ps(_mm256_broadcast_ss(&F16(d)), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm))));
    _mm256_store_ps(m, _mm256_mul_ps(_mm256_broadcast_ss(&F16(dmin)),
                                     _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)))));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(16);
    __m256i h = five ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if (five) { /* fifth bits: bit 2c of qh[l] for block 2c, bit 2c+1 for block 2c+1 */
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(h, 4), m16));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(h, 3), m16));
            h = _mm256_srli_epi16(h, 2);
        }
        _mm256_store_si256((__m256i *)q[2 * c], lo);
        _mm256_store_si256((__m256i *)q[2 * c + 1], hi);
    }
}

/* Q6_K super-block: blocks 0..7 into q (0..63), sc (group scales per int16 lane), s = d */
AVX2 static INLINE void pack_q6_k(const BlockQ6_K *b, uint8_t (*q)[32], int16_t (*sc)[16], float *s) {
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
    for (int k = 0; k < 8; k++) {
        _mm256_store_si256((__m256i *)q[k], q6_block(b, k));
        _mm256_store_si256((__m256i *)sc[k], q6_scales(sc8, k));
    }
    _mm256_store_ps(s, _mm256_broadcast_ss(&F16(b->d)));
}

/* da and da * sum of the gl (1..8) activation blocks from a, zero beyond */
AVX2 static INLINE void load_da8(const BlockQ8A *a, int gl, __m256 *da, __m256 *dsum) {
    if (gl == 8) {
        __m256 sum;
        load_da_sum8(a, da, &sum);
        *dsum = _mm256_mul_ps(*da, sum);
        return;
    }
    /* a masked gather of the d and sum fields (10 words apart): no read beyond block gl - 1, and no store
     * to reload (a vector load of eight scalar stores would wait for them) */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(gl), lane);
    const __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32((int)(sizeof(BlockQ8A) / 4)));
    *da = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), &a->d, idx, _mm256_castsi256_ps(mask), 4);
    const __m256i sum = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), &a->sum, idx, mask, 4);
    *dsum = _mm256_mul_ps(*da, _mm256_cvtepi32_ps(sum));
}

/* da and da * sum of the activation's blocks, eight at a time as load_da8 has them (each group of eight
 * starts at a multiple of 8 from the start of its panel, and panels start at multiples of KB) */
AVX2 static INLINE void act_scales(const BlockQ8A *xq, int64_t nb, float *da, float *dsum) {
    for (int64_t b0 = 0; b0 < nb; b0 += KB)
        for (int64_t g = b0; g < nb && g < b0 + KB; g += 8) {
            __m256 d, ds;
            load_da8(xq + g, nb - g < 8 ? (int)(nb - g) : 8, &d, &ds);
            _mm256_storeu_ps(da + g, d);
            _mm256_storeu_ps(dsum + g, ds);
        }
}

/* ---- panels of 8 interleaved rows ----
 * A panel holds IR = 8 rows, block b as eight vectors, vector k holding values 4k..4k+3 of each of the 8
 * rows (4 bytes a row). maddubs of vector k with values 4k..4k+3 of one activation broadcast to all lanes
 * (a broadcast load, no shuffle) leaves each row's pair sums in its own lane, and the lanes' sums over the
 * eight vectors are each row's block sum:
 *   KIND_U (codes 0..31 with a minimum): the eight summed in int16 in two halves of four (at most
 *     4 * 2 * 31 * 127 = 31496), two madd and an add: 21 vector operations per block for 8 rows and one
 *     activation, where a row-at-a-time tile needs 4 per row (maddubs, madd, convert, FMA) plus scales;
 *   KIND_6 (Q6_K, codes 0..63, value = d * sc_g * (q - 32)): two vectors summed in int16 (at most
 *     2 * 2 * 63 * 127 = 32004), each half's sums weighted by its group scale in madd, and the offset
 *     32 * (sc0 * sum(a, half 0) + sc1 * sum(a, half 1)) subtracted in int32 (one more madd);
 *   KIND_S (Q8_0): |w| . (a * sign(w)) per vector (pair sums up to 2 * 128 * 127), eight madd into int32.
 * Then one convert and one FMA by the 8 rows' s * da (and for KIND_U an FNMA by m * da * sum).
 *
 * Each (row, activation) result is one lane's chain: per block, acc = fma(float(block sum), s * da, acc)
 * (then acc -= m * (da * sum)), in block order from 0; panels along the row add to y in order. Nothing in
 * it depends on the other rows or activations of the call, so T = 1 takes the same path (bit for bit
 * independent of T, as quant.h promises). */

#define IR 8 /* rows per interleaved panel */
#ifndef TCU
#define TCU 4 /* activations per interleaved tile (TCU accumulators, 8 weight vectors in registers) */
#endif

typedef struct PanelI {
    _Alignas(32) uint8_t qi[KB][8][32]; /* interleaved: qi[b][k] holds values 4k..4k+3 of rows 0..7 */
    _Alignas(32) float s[KB][IR];       /* block scale, per block for the 8 rows (0 beyond the rows) */
    _Alignas(32) float m[KB][IR];       /* KIND_U: the minimum (value = s * q - m) */
    _Alignas(32) int32_t g0[KB][IR], g1[KB][IR], gp[KB][IR]; /* KIND_6: int16 pairs of the two group
                                                              * scales: (sc0, sc0), (sc1, sc1), (sc0, sc1) */
    _Alignas(32) uint8_t wi[KB][8][32]; /* KIND_S: the signed values, interleaved as qi (which holds |w|) */
    /* the K-quants' row-by-row forms (pack_k4, pack_q6_k), before interleaving */
    _Alignas(32) uint8_t q[IR][KB][32];
    _Alignas(32) int16_t sc[IR][KB][16];
    _Alignas(32) float sr[IR][KB + 8], mr[IR][KB + 8];
} PanelI;

/* the 8 rows' 32 bytes v[0..7] interleaved into dst: an 8 x 8 transpose of 32-bit words, word k of row r
 * -> word r of vector k */
AVX2 static INLINE void interleave(const __m256i v[IR], uint8_t dst[8][32]) {
    __m256i t[IR], u[IR];
#pragma GCC unroll 4
    for (int i = 0; i < IR; i += 2) {
        t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < IR; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        _mm256_store_si256((__m256i *)dst[k], _mm256_permute2x128_si256(u[k], u[k + 4], 0x20));
        _mm256_store_si256((__m256i *)dst[k + 4], _mm256_permute2x128_si256(u[k], u[k + 4], 0x31));
    }
}

/* Rows w + r * rb (r < R), blocks b0 .. b0 + nbk of them, into the panel; rows R..7 are zero. The layouts
 * of 32-value blocks go block by block straight into the interleaved form; the K-quants unpack a
 * super-block of each row at a time (pack_k4, pack_q6_k) into the row-by-row forms first. */
AVX2 static INLINE void pack_i(uint32_t type, PanelI *p, const uint8_t *w, size_t rb, int R, int64_t b0, int nbk) {
    if (type != QT_Q4_K && type != QT_Q5_K && type != QT_Q6_K) {
        const size_t bsz = quant_traits(type)->block_bytes;
        for (int b = 0; b < nbk; b++) {
            __m256i v[IR], sv[IR];
#pragma GCC unroll 8
            for (int r = 0; r < IR; r++) {
                if (r < R) {
                    v[r] = pack_b32(type, w + (size_t)r * rb + (size_t)(b0 + b) * bsz, &sv[r], &p->s[b][r], &p->m[b][r]);
                } else {
                    v[r] = sv[r] = _mm256_setzero_si256();
                    p->s[b][r] = p->m[b][r] = 0;
                }
            }
            interleave(v, p->qi[b]);
            if (type == QT_Q8_0) interleave(sv, p->wi[b]);
        }
        return;
    }
    for (int r = 0; r < R; r++) {
        const uint8_t *row = w + (size_t)r * rb;
        if (type == QT_Q6_K) {
            for (int j = 0; j < nbk; j += 8)
                pack_q6_k((const BlockQ6_K *)(const void *)row + (b0 + j) / 8, &p->q[r][j], &p->sc[r][j], &p->sr[r][j]);
        } else {
            const size_t sbsz = type == QT_Q4_K ? sizeof(BlockQ4_K) : sizeof(BlockQ5_K);
            for (int j = 0; j < nbk; j += 8)
                pack_k4(row + (size_t)((b0 + j) / 8) * sbsz, type == QT_Q5_K, &p->q[r][j], &p->sr[r][j], &p->mr[r][j]);
        }
    }
    for (int b = 0; b < nbk; b++) {
        __m256i v[IR];
#pragma GCC unroll 8
        for (int r = 0; r < IR; r++) v[r] = r < R ? _mm256_load_si256((const __m256i *)p->q[r][b]) : _mm256_setzero_si256();
        interleave(v, p->qi[b]);
        for (int r = 0; r < IR; r++) {
            p->s[b][r] = r < R ? p->sr[r][b] : 0.0f;
            if (type != QT_Q6_K) {
                p->m[b][r] = r < R ? p->mr[r][b] : 0.0f;
            } else {
                const uint32_t sc0 = r < R ? (uint16_t)p->sc[r][b][0] : 0, sc1 = r < R ? (uint16_t)p->sc[r][b][8] : 0;
                p->g0[b][r] = (int32_t)(sc0 | sc0 << 16);
                p->g1[b][r] = (int32_t)(sc1 | sc1 << 16);
                p->gp[b][r] = (int32_t)(sc0 | sc1 << 16);
            }
        }
    }
}

/* values 4k..4k+3 of activation block a, in every 32-bit lane */
AVX2 static INLINE __m256i act4(const BlockQ8A *a, int k) {
    int32_t v;
    memcpy(&v, a->qs + 4 * k, 4);
    return _mm256_set1_epi32(v);
}

/* y[c * ldy + r] (+)= dot of panel row r (r < R) with activation c (c < C), blocks 0 .. nbk of the panel;
 * activations xq + c * ldq, their da and da * sum at da_all, dsum_all + c * lds, and (KIND_6) the sums of
 * their two 16-value halves as an int16 pair at gs_all + c * lds.
 * KIND_6 (Q6_K, codes 0..63, value = d * sc_g * (q - 32)): pair sums of two vectors at most
 * 2 * 2 * 63 * 127 = 32004, each half's int16 sums weighted by its group scale in madd, and the offset
 * 32 * (sc0 * sum(a, half 0) + sc1 * sum(a, half 1)) subtracted in int32 (one more madd). */
AVX2 static INLINE void compute_i(int kind, const PanelI *p, int C, const BlockQ8A *xq, int64_t ldq, const float *da_all,
                                  const float *dsum_all, const int32_t *gs_all, int64_t lds, int nbk, float *y,
                                  int64_t ldy, int R, int add) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[TCU];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) acc[c] = _mm256_setzero_ps();
    for (int b = 0; b < nbk; b++) {
        __m256i w[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) w[k] = _mm256_load_si256((const __m256i *)p->qi[b][k]);
        const __m256 sv = _mm256_load_ps(p->s[b]);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const BlockQ8A *a = xq + (size_t)c * ldq + b;
            __m256i sum;
            if (kind == KIND_S) { /* |w| . (a * sign(w)): pair sums up to 2 * 128 * 127, summed in int32 */
                sum = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++)
                    sum = _mm256_add_epi32(
                        sum, _mm256_madd_epi16(_mm256_maddubs_epi16(w[k], _mm256_sign_epi8(act4(a, k), _mm256_load_si256(
                                                                                                    (const __m256i *)p->wi[b][k]))),
                                               ones));
            } else if (kind == KIND_6) {
                const __m256i l0 = _mm256_add_epi16(_mm256_maddubs_epi16(w[0], act4(a, 0)), _mm256_maddubs_epi16(w[1], act4(a, 1)));
                const __m256i l1 = _mm256_add_epi16(_mm256_maddubs_epi16(w[2], act4(a, 2)), _mm256_maddubs_epi16(w[3], act4(a, 3)));
                const __m256i h0 = _mm256_add_epi16(_mm256_maddubs_epi16(w[4], act4(a, 4)), _mm256_maddubs_epi16(w[5], act4(a, 5)));
                const __m256i h1 = _mm256_add_epi16(_mm256_maddubs_epi16(w[6], act4(a, 6)), _mm256_maddubs_epi16(w[7], act4(a, 7)));
                const __m256i g0 = _mm256_load_si256((const __m256i *)p->g0[b]), g1 = _mm256_load_si256((const __m256i *)p->g1[b]);
                sum = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(l0, g0), _mm256_madd_epi16(l1, g0)),
                                       _mm256_add_epi32(_mm256_madd_epi16(h0, g1), _mm256_madd_epi16(h1, g1)));
                const __m256i off = _mm256_madd_epi16(_mm256_load_si256((const __m256i *)p->gp[b]),
                                                      _mm256_set1_epi32(gs_all[(size_t)c * lds + b]));
                sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(off, 5));
            } else {
                const __m256i lo = _mm256_add_epi16(
                    _mm256_add_epi16(_mm256_maddubs_epi16(w[0], act4(a, 0)), _mm256_maddubs_epi16(w[1], act4(a, 1))),
                    _mm256_add_epi16(_mm256_maddubs_epi16(w[2], act4(a, 2)), _mm256_maddubs_epi16(w[3], act4(a, 3))));
                const __m256i hi = _mm256_add_epi16(
                    _mm256_add_epi16(_mm256_maddubs_epi16(w[4], act4(a, 4)), _mm256_maddubs_epi16(w[5], act4(a, 5))),
                    _mm256_add_epi16(_mm256_maddubs_epi16(w[6], act4(a, 6)), _mm256_maddubs_epi16(w[7], act4(a, 7))));
                sum = _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones));
            }
            const __m256 scale = _mm256_mul_ps(sv, _mm256_broadcast_ss(da_all + (size_t)c * lds + b));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[c]);
            if (kind == KIND_U)
                acc[c] = _mm256_fnmadd_ps(_mm256_load_ps(p->m[b]), _mm256_broadcast_ss(dsum_all + (size_t)c * lds + b),
                                          acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        float *o = y + (size_t)c * ldy;
        if (R == IR) {
            _mm256_storeu_ps(o, add ? _mm256_add_ps(_mm256_loadu_ps(o), acc[c]) : acc[c]);
        } else {
            _Alignas(32) float v[IR];
            _mm256_store_ps(v, acc[c]);
            for (int r = 0; r < R; r++) o[r] = add ? o[r] + v[r] : v[r];
        }
    }
}

typedef void (*ComputeIFn)(const PanelI *p, const BlockQ8A *xq, int64_t ldq, const float *da, const float *dsum,
                           const int32_t *gs, int64_t lds, int nbk, float *y, int64_t ldy, int R, int add);

#define COMPUTE_I_FN(name, kind, C)                                                                          \
    AVX2 static void name(const PanelI *p, const BlockQ8A *xq, int64_t ldq, const float *da, const float *dsum,   \
                          const int32_t *gs, int64_t lds, int nbk, float *y, int64_t ldy, int R, int add) {      \
        compute_i(kind, p, C, xq, ldq, da, dsum, gs, lds, nbk, y, ldy, R, add);                              \
    }

COMPUTE_I_FN(compute_iu_full, KIND_U, TCU)
COMPUTE_I_FN(compute_iu_one, KIND_U, 1)
COMPUTE_I_FN(compute_i6_full, KIND_6, TCU)
COMPUTE_I_FN(compute_i6_one, KIND_6, 1)
COMPUTE_I_FN(compute_is_full, KIND_S, TCU)
COMPUTE_I_FN(compute_is_one, KIND_S, 1)

/* the sums of the two 16-value halves of each of the nb activation blocks, as int16 pairs */
AVX2 static INLINE void act_half_sums(const BlockQ8A *xq, int64_t nb, int32_t *gs) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, load_a(xq + b)), ones16); /* 8 sums of 4 */
        const __m128i h = _mm_hadd_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        const __m128i q = _mm_hadd_epi32(h, h); /* lanes: half 0, half 1 */
        gs[b] = (int32_t)((uint32_t)(uint16_t)_mm_cvtsi128_si32(q) | (uint32_t)_mm_extract_epi32(q, 1) << 16);
    }
}

/* Ask for the weights the next pack will read (the same blocks of the next pr rows, or the next blocks
 * of these rows) while this panel is computed: a pack that waits for memory row by row costs as much as
 * a good part of the products. */
static INLINE void prefetch_next(const void *w, size_t rb, int64_t nr, int64_t r, int64_t b0, int nbk, uint32_t type,
                                 int pr) {
    const QuantTraits *t = quant_traits(type);
    const size_t per_block = (size_t)t->block_bytes * QK8A / t->block_elems; /* bytes per 32 values */
    const int64_t nb = (int64_t)(rb / per_block);
    int64_t rn = r, bn = b0 + nbk;
    if (bn >= nb) rn = r + pr, bn = 0;
    if (rn >= nr) return;
    const int64_t ne = nb - bn < KB ? nb - bn : KB;
    for (int64_t k = rn; k < rn + pr && k < nr; k++) {
        const uint8_t *base = (const uint8_t *)w + (size_t)k * rb + (size_t)bn * per_block;
        for (size_t off = 0; off < (size_t)ne * per_block; off += 64) __builtin_prefetch(base + off, 0, 3);
    }
}


/* quant_matmul: panels of IR rows x KB blocks, each packed once for all T activations, TCU at a time (then
 * one at a time for the rest) */
AVX2 static INLINE void gemm_i(uint32_t type, int kind, const void *w, size_t rb, int64_t nr, int64_t n,
                               const BlockQ8A *xq, int T, float *y, int64_t ldy) {
    const int64_t nb = n / QK8A, lds = (nb + 7) / 8 * 8;
    float *da = malloc(3 * (size_t)T * (size_t)lds * sizeof(float));
    PanelI *p = aligned_alloc(32, sizeof(PanelI));
    if (!da || !p) abort();
    float *dsum = da + (size_t)T * lds;
    int32_t *gs = (int32_t *)(dsum + (size_t)T * lds);
    for (int t = 0; t < T; t++) {
        act_scales(xq + (size_t)t * nb, nb, da + (size_t)t * lds, dsum + (size_t)t * lds);
        if (kind == KIND_6) act_half_sums(xq + (size_t)t * nb, nb, gs + (size_t)t * lds);
    }
    const ComputeIFn full = kind == KIND_6 ? compute_i6_full : kind == KIND_S ? compute_is_full : compute_iu_full;
    const ComputeIFn one = kind == KIND_6 ? compute_i6_one : kind == KIND_S ? compute_is_one : compute_iu_one;
    for (int64_t r = 0; r < nr; r += IR) {
        const int R = nr - r < IR ? (int)(nr - r) : IR;
        for (int64_t b0 = 0; b0 < nb; b0 += KB) {
            const int nbk = nb - b0 < KB ? (int)(nb - b0) : KB;
            pack_i(type, p, (const uint8_t *)w + (size_t)r * rb, rb, R, b0, nbk);
            prefetch_next(w, rb, nr, r, b0, nbk, type, IR);
            for (int t = 0; t < T;) {
                const int C = T - t >= TCU ? TCU : 1;
                const size_t o = (size_t)t * lds + b0;
                (C == TCU ? full : one)(p, xq + (size_t)t * nb + b0, nb, da + o, dsum + o, gs + o, lds, nbk,
                                        y + (size_t)t * ldy + r, ldy, R, b0 > 0);
                t += C;
            }
        }
    }
    free(p);
    free(da);
}

/* ---- the kernels by type ---- */

#define GEMM_FOR(name, type, kind)                                                                           \
    AVX2 static void name(const void *w, size_t rb, int64_t nr, int64_t n, const BlockQ8A *xq, int T, float *y, \
                          int64_t ldy) {                                                                     \
        gemm_i(type, kind, w, rb, nr, n, xq, T, y, ldy);                                                       \
    }

GEMM_FOR(gemm_q8_0, QT_Q8_0, KIND_S)
GEMM_FOR(gemm_q4_0, QT_Q4_0, KIND_U)
GEMM_FOR(gemm_q5_0, QT_Q5_0, KIND_U)
GEMM_FOR(gemm_q4_1, QT_Q4_1, KIND_U)
GEMM_FOR(gemm_q5_1, QT_Q5_1, KIND_U)
GEMM_FOR(gemm_q4_k, QT_Q4_K, KIND_U)
GEMM_FOR(gemm_q5_k, QT_Q5_K, KIND_U)
GEMM_FOR(gemm_q6_k, QT_Q6_K, KIND_6)

QuantGemmFn quant_gemm_avx2(uint32_t type) {
    switch (type) {
    case QT_Q8_0:
        return gemm_q8_0;
    case QT_Q5_0:
        return gemm_q5_0;
    case QT_Q4_0:
        return gemm_q4_0;
    case QT_Q4_1:
        return gemm_q4_1;
    case QT_Q5_1:
        return gemm_q5_1;
    case QT_Q5_K:
        return gemm_q5_k;
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
