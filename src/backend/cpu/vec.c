/*
 * attn: the inner loops of CPU attention over one page of the paged KV store: scores of one query head
 * against up to a page of keys, the softmax of a row of scores, and the probability-weighted sum of
 * values. AVX2/FMA versions (target attributes, chosen at run time) and portable ones; both sum in fp32
 * (the order of the additions differs between them).
 *
 * The AVX2 scores take keys eight at a time: eight accumulators over the head dimension, folded by a
 * tree of horizontal adds into one vector of eight scores (no per-key horizontal sum). exp is a
 * Cephes-style polynomial (relative error ~2e-7, within 2 ulp of expf over the softmax's range).
 *
 * Not here: walking pages, heads and threads (cpu.c).
 */
#include "vec.h"

#include <math.h>

/* ---- portable ---- */

static void scores_portable(float *sc, const float *q, const float *k, int n, int stride, int hd, float scale) {
    for (int t = 0; t < n; t++, k += stride) {
        float acc[8] = {0};
        int d = 0;
        for (; d + 8 <= hd; d += 8)
            for (int u = 0; u < 8; u++) acc[u] += q[d + u] * k[d + u];
        float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; d < hd; d++) s += q[d] * k[d];
        sc[t] = s * scale;
    }
}

static void softmax_portable(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static void swiglu_portable(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static int argmax_portable(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static double log_sum_exp_portable(const float *x, int n, float max) {
    double z = 0;
    for (int i = 0; i < n; i++) z += exp((double)x[i] - max);
    return log(z);
}

static void accum_portable(float *out, const float *p, const float *v, int n, int stride, int hd) {
    for (int t = 0; t < n; t++, v += stride) {
        const float pt = p[t];
        for (int d = 0; d < hd; d++) out[d] += pt * v[d];
    }
}

/* ---- AVX2 ---- */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* lane j = sum of the lanes of a[j] */
AVX2 static inline __m256 hsum8x8(const __m256 a[8]) {
    const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
    /* h0123: lanes (0 1 2 3 low halves | 0 1 2 3 high halves), likewise h4567 */
    const __m256 lo = _mm256_permute2f128_ps(h0123, h4567, 0x20), hi = _mm256_permute2f128_ps(h0123, h4567, 0x31);
    return _mm256_add_ps(lo, hi);
}

AVX2 static void scores_avx2(float *sc, const float *q, const float *k, int n, int stride, int hd, float scale) {
    if (hd % 8) {
        scores_portable(sc, q, k, n, stride, hd, scale);
        return;
    }
    const __m256 sv = _mm256_set1_ps(scale);
    int t = 0;
    for (; t + 8 <= n; t += 8) {
        __m256 acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
        for (int d = 0; d < hd; d += 8) {
            const __m256 qd = _mm256_loadu_ps(q + d);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                acc[j] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + (size_t)(t + j) * stride + d), acc[j]);
        }
        _mm256_storeu_ps(sc + t, _mm256_mul_ps(hsum8x8(acc), sv));
    }
    for (; t < n; t++) {
        const float *kt = k + (size_t)t * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int d = 0;
        for (; d + 16 <= hd; d += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kt + d), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(kt + d + 8), a1);
        }
        if (d < hd) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kt + d), a0);
        sc[t] = hsum(_mm256_add_ps(a0, a1)) * scale;
    }
}

/* e^x for x not NaN; below -87.3 the result is 0, above 88.7 it is e^88.7. */
AVX2 static inline __m256 exp_ps(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    const __m256 zero_mask = _mm256_cmp_ps(x, lo, _CMP_NLT_UQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.7f));
    /* x = n ln2 + r, |r| <= ln2 / 2 (ln2 split in two for an exact product) */
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* times 2^n (-126 <= n <= 128 here; 2^128 is taken as 2^127 * 2) */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i big = _mm256_cmpgt_epi32(ni, _mm256_set1_epi32(127)); /* n = 128: 2^127, then * 2 */
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_add_epi32(ni, big), _mm256_set1_epi32(127)), 23);
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    p = _mm256_add_ps(p, _mm256_and_ps(p, _mm256_castsi256_ps(big)));
    return _mm256_and_ps(p, zero_mask);
}

AVX2 static void softmax_avx2(float *x, int n) {
    __m256 mv = _mm256_set1_ps(x[0]);
    int i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    float max = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    const __m256 mx = _mm256_set1_ps(max);
    __m256 sv = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
        _mm256_storeu_ps(x + i, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = hsum(sv);
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    const __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
    for (; i < n; i++) x[i] *= inv;
}

AVX2 static void swiglu_avx2(float *gate, const float *up, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp_ps(_mm256_xor_ps(g, neg));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    swiglu_portable(gate + i, up + i, n - i);
}

/* the largest non-NaN value, then the first index holding it (= argmax_portable unless x[0] is NaN,
 * which argmax_portable keeps) */
AVX2 static int argmax_avx2(const float *x, int n) {
    if (n < 16 || x[0] != x[0]) return argmax_portable(x, n);
    __m256 mv = _mm256_set1_ps(x[0]);
    int i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(_mm256_loadu_ps(x + i), mv); /* NaN in x: mv kept */
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    float max = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    for (int k = i; k < n; k++) max = x[k] > max ? x[k] : max;
    const __m256 target = _mm256_set1_ps(max);
    for (i = 0; i + 8 <= n; i += 8) {
        const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ));
        if (hit) return i + __builtin_ctz((unsigned)hit);
    }
    for (; i < n; i++)
        if (x[i] == max) return i;
    return 0;
}

AVX2 static double log_sum_exp_avx2(const float *x, int n, float max) {
    const __m256 mx = _mm256_set1_ps(max);
    __m256d z0 = _mm256_setzero_pd(), z1 = _mm256_setzero_pd();
    __m256 nan = _mm256_setzero_ps(); /* exp_ps is not for NaN: NaNs are looked for on the side */
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        const __m256 e = exp_ps(_mm256_sub_ps(v, mx));
        z0 = _mm256_add_pd(z0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        z1 = _mm256_add_pd(z1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(z0, z1));
    double z = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    if (_mm256_movemask_ps(nan)) z = NAN;
    for (; i < n; i++) z += exp((double)x[i] - max);
    return log(z);
}

AVX2 static void accum_avx2(float *out, const float *p, const float *v, int n, int stride, int hd) {
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
        __m256 a0 = _mm256_loadu_ps(out + d), a1 = _mm256_loadu_ps(out + d + 8);
        __m256 a2 = _mm256_loadu_ps(out + d + 16), a3 = _mm256_loadu_ps(out + d + 24);
        const float *vt = v + d;
        for (int t = 0; t < n; t++, vt += stride) {
            const __m256 pt = _mm256_broadcast_ss(p + t);
            a0 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vt), a0);
            a1 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vt + 8), a1);
            a2 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vt + 16), a2);
            a3 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(vt + 24), a3);
        }
        _mm256_storeu_ps(out + d, a0);
        _mm256_storeu_ps(out + d + 8, a1);
        _mm256_storeu_ps(out + d + 16, a2);
        _mm256_storeu_ps(out + d + 24, a3);
    }
    for (; d + 8 <= hd; d += 8) {
        __m256 a0 = _mm256_loadu_ps(out + d);
        for (int t = 0; t < n; t++) a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + t), _mm256_loadu_ps(v + (size_t)t * stride + d), a0);
        _mm256_storeu_ps(out + d, a0);
    }
    for (; d < hd; d++)
        for (int t = 0; t < n; t++) out[d] += p[t] * v[(size_t)t * stride + d];
}

#endif

VecKernels vec_kernels(int portable) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!portable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return (VecKernels){scores_avx2, softmax_avx2, accum_avx2, swiglu_avx2, argmax_avx2, log_sum_exp_avx2};
#endif
    (void)portable;
    return (VecKernels){scores_portable, softmax_portable, accum_portable, swiglu_portable, argmax_portable,
                        log_sum_exp_portable};
}
