/*
 * dequant.cuh: the GGUF block layouts on the device, as "units" of 32 consecutive values. Unit u of a row
 * is values 32u .. 32u+31: a whole block for the 32-value layouts, sub-block u % 8 of super-block u / 8
 * for the K-quants. Every kernel that reads a weight (GEMV, dequantize-to-fp16 for the tensor cores,
 * embedding rows) goes through unit_load, so a layout is written once here.
 *
 * The layouts are those of ../../quant.h (one header for the CPU and the GPU); the arithmetic follows
 * src/quant/dequant.c (the reference the kernel tests compare against): scale products first, then
 * q * scale - min, in fp32.
 */
#ifndef ORCD_CUDA_DEQUANT_CUH
#define ORCD_CUDA_DEQUANT_CUH

#include "../../quant.h"

#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ float h2f(const uint8_t *p) {
    const uint16_t bits = (uint16_t)(p[0] | p[1] << 8);
    return __half2float(__ushort_as_half(bits));
}

/* 16 bytes from a 2-byte aligned address, as four 32-bit words (little endian). */
__device__ __forceinline__ void load16_a2(const uint8_t *p, uint32_t w[4]) {
    const uint16_t *h = (const uint16_t *)p;
#pragma unroll
    for (int i = 0; i < 4; i++) w[i] = (uint32_t)h[2 * i] | (uint32_t)h[2 * i + 1] << 16;
}

__device__ __forceinline__ int byte_of(const uint32_t *w, int i) {
    return (int)((w[i >> 2] >> (8 * (i & 3))) & 0xFF);
}

/* Sub-block j's 6-bit scale and minimum of a Q4_K/Q5_K super-block, from its first 16 bytes h (d and dmin in
 * h.x; the 12 scale bytes in h.y, h.z, h.w). */
__device__ __forceinline__ void k4_scale_min(const uint4 &h, int j, float *sc, float *m) {
    const int s = 8 * (j & 3);
    const uint32_t a = h.y >> s, b = h.z >> s, c = h.w >> s;
    if (j < 4) {
        *sc = (float)(a & 63);
        *m = (float)(b & 63);
    } else {
        *sc = (float)((c & 0x0F) | (a >> 2 & 0x30));
        *m = (float)((c >> 4 & 0x0F) | (b >> 2 & 0x30));
    }
}

__device__ __forceinline__ float half_lo(uint32_t w) {
    return __half2float(__ushort_as_half((uint16_t)(w & 0xFFFF)));
}
__device__ __forceinline__ float half_hi(uint32_t w) {
    return __half2float(__ushort_as_half((uint16_t)(w >> 16)));
}

/* The two 16-value scales of sub-block k (0..7) of a Q3_K block b: d * (6-bit scale - 32). */
__device__ __forceinline__ void q3k_scales(const uint8_t *b, int k, float dl[2]) {
    const float d = h2f(b + 108);
    const uint8_t *scales = b + 96;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int g = 2 * k + i;
        const int lo = (scales[g % 8] >> (g < 8 ? 0 : 4)) & 0x0F;
        const int hi = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
        dl[i] = d * (float)((lo | hi << 4) - 32);
    }
}

/* Block geometry at compile time (the sizes of ../../quant.h's structs; 32 or 256 values per block). */
__host__ __device__ constexpr int quant_block_elems_dev(int t) {
    return t == QT_Q2_K || t == QT_Q3_K || t == QT_Q4_K || t == QT_Q5_K || t == QT_Q6_K ? 256 : 32;
}
__host__ __device__ constexpr int quant_block_bytes_dev(int t) {
    return t == QT_Q4_0 ? 18 : t == QT_Q4_1 ? 20 : t == QT_Q5_0 ? 22 : t == QT_Q5_1 ? 24 : t == QT_Q8_0 ? 34
         : t == QT_Q2_K ? 84 : t == QT_Q3_K ? 110 : t == QT_Q4_K ? 144 : t == QT_Q5_K ? 176 : t == QT_Q6_K ? 210
         : t == QT_F32 ? 128 : 64;
}

/* Values 32u .. 32u+31 of a row of type T into v. */
template <int T> __device__ __forceinline__ void unit_load(const uint8_t *row, int u, int units, float v[32]);

/* Regrouped rows. The blocks of the 32-value layouts (18 to 34 bytes) and of Q6_K (210) are not 16-byte
 * aligned, so their rows live on the device regrouped: part p of every block of a row (the parts below, in
 * order) in one region, block after block, the regions one after another, the row padded to a multiple of
 * 16 bytes (ck_row_bytes). The same bytes, so aligned that the GEMV reads a unit's bytes straight from
 * global memory in a few loads.
 * - Q8_0: qs (32 bytes), d (2); in a row of U units, unit u's qs at 32u and its d at 32U + 2u.
 * - Q4_0, Q4_1, Q5_0, Q5_1: qs (16 bytes), then qh (4; Q5_0, Q5_1), then d (2) or d and m (4): unit u's qs
 *   at 16u, its qh at 16U + 4u, its d (and m) after them.
 * - Q6_K, for 8-bit activations: by stripes. Stripe s of a block (s = 4h + q: half h of 128 values, l0 = 8q)
 *   holds the 8 values l0 .. l0 + 7 of each of the half's four 32-value groups, i.e. the ql bytes
 *   64h + l0 .. +7 (groups 0, 2: low and high nibbles) and 64h + 32 + l0 .. +7 (groups 1, 3) and the qh
 *   bytes 32h + l0 .. +7 (two bits per group): 6 bits a value, 24 bytes, with their scales (sc[8h + q/2 +
 *   2g], g = 0..3, one 4-byte word) and d. Parts: ql by stripes (16 bytes each), qh as stored (so 8 bytes a
 *   stripe), the 16 scales as 4 words (word 2h + i: sc[8h + i + 2g], g = 0..3), d. A lane of the GEMV
 *   takes stripe u (a 32-value unit in all but the order of its values) with a 16-, an 8-, a 4- and a
 *   2-byte load. (Regrouped by 32-value units instead, 64 bytes of ql and qh a unit, two units in flight took
 *   80 registers a thread and the 7B down projection went from 25 to 41 us.) */
__host__ __device__ constexpr bool regrouped(int t) {
    return t == QT_Q4_0 || t == QT_Q4_1 || t == QT_Q5_0 || t == QT_Q5_1 || t == QT_Q8_0 || t == QT_Q6_K;
}
__host__ __device__ constexpr int regroup_parts(int t) {
    return t == QT_Q5_0 || t == QT_Q5_1 ? 3 : t == QT_Q6_K ? 4 : regrouped(t) ? 2 : 0;
}
/* part p's length in bytes per block */
__host__ __device__ constexpr int regroup_len(int t, int p) {
    return t == QT_Q8_0   ? (p == 0 ? 32 : 2)
           : t == QT_Q4_0 ? (p == 0 ? 16 : 2)
           : t == QT_Q4_1 ? (p == 0 ? 16 : 4)
           : t == QT_Q5_0 ? (p == 0 ? 16 : p == 1 ? 4 : 2)
           : t == QT_Q5_1 ? (p == 0 ? 16 : 4)
           : p == 0 ? 128 : p == 1 ? 64 : p == 2 ? 16 : 2;
}
/* where byte k of part p comes from in the file's block (../../quant.h's structs: d [, m] [, qh], qs) */
__host__ __device__ constexpr int regroup_src(int t, int p, int k) {
    return t == QT_Q8_0 || t == QT_Q4_0 ? (p == 0 ? 2 + k : k)
           : t == QT_Q4_1             ? (p == 0 ? 4 + k : k)
           : t == QT_Q5_0             ? (p == 0 ? 6 + k : p == 1 ? 2 + k : k)
           : t == QT_Q5_1             ? (p == 0 ? 8 + k : p == 1 ? 4 + k : k)
           : p == 0 ? 64 * (k / 64) + 32 * (k % 16 / 8) + 8 * (k / 16 % 4) + k % 8 /* stripe k/16 */
           : p == 1 ? 128 + k
           : p == 2 ? 192 + 8 * (k / 8) + k / 4 % 2 + 2 * (k % 4) /* word k/4 = 2h + i, byte g = k%4 */
                    : 208 + k;
}

/* the regrouped 32-value layouts (Q4_0, Q4_1, Q5_0, Q5_1): their unit functions are one template each
 * (small_raw; the primary templates of unit_decode and unit_int8_raw) */
__host__ __device__ constexpr bool small_layout(int t) {
    return t == QT_Q4_0 || t == QT_Q4_1 || t == QT_Q5_0 || t == QT_Q5_1;
}

/* Units as raw words, so that a kernel can have several units' loads in flight before it decodes any
 * (unit_raw, then unit_decode; unit_load is the two). The float layouts (F32: 8 16-byte words, F16/BF16: 4),
 * the super-block layouts whose blocks keep 16-byte alignment, and the regrouped rows, read straight from
 * global memory: Q4_K (144-byte blocks: the block's first 16 bytes, d, dmin and the scales, then the 32
 * bytes of qs that hold the unit's nibbles), Q5_K (176: the same 16, the 32 bytes of high bits, the unit's 32
 * bytes of qs), Q8_0 (the unit's 32 qs; d in s), Q4_0 .. Q5_1 (16 bytes of qs; d or d and m in s, the high
 * bits in h), Q6_K (gathered from the stripes: unit_raw<QT_Q6_K>). Every unit function takes the row's
 * length in units (the regrouped rows need it; the others ignore it). */
template <int T> struct UnitRaw {
    static constexpr int n = T == QT_F32                    ? 8
                             : T == QT_Q4_K                 ? 3
                             : T == QT_Q5_K || T == QT_Q6_K ? 5
                             : T == QT_Q8_0                 ? 2
                             : small_layout(T)              ? 1
                                                            : 4;
    uint4 w[n];
    uint32_t s, h; /* the scale (and minimum), the high bits (Q5_0, Q5_1) */
};

/* The regrouped 32-value layouts: qs (16 bytes), [qh (4)], d [and m] */
template <int T> __device__ __forceinline__ void small_raw(const uint8_t *row, int u, int units, UnitRaw<T> &r) {
    constexpr bool q5 = T == QT_Q5_0 || T == QT_Q5_1, dm = T == QT_Q4_1 || T == QT_Q5_1;
    r.w[0] = *(const uint4 *)(row + 16 * (size_t)u);
    const uint8_t *tail = row + 16 * (size_t)units;
    if constexpr (q5) r.h = ((const uint32_t *)tail)[u], tail += 4 * (size_t)units;
    r.s = dm ? ((const uint32_t *)tail)[u] : ((const uint16_t *)tail)[u];
}

/* the float layouts: n 16-byte words a unit; the 32-value layouts: small_raw */
template <int T> __device__ __forceinline__ void unit_raw(const uint8_t *row, int u, int units, UnitRaw<T> &r) {
    if constexpr (small_layout(T)) {
        small_raw<T>(row, u, units, r);
    } else {
        const uint4 *p = (const uint4 *)(row + (size_t)u * (16 * UnitRaw<T>::n));
#pragma unroll
        for (int i = 0; i < UnitRaw<T>::n; i++) r.w[i] = p[i];
    }
}

template <> __device__ __forceinline__ void unit_raw<QT_Q4_K>(const uint8_t *row, int u, int, UnitRaw<QT_Q4_K> &r) {
    const uint8_t *b = row + (size_t)(u >> 3) * sizeof(BlockQ4_K);
    const uint4 *q = (const uint4 *)(b + 16 + 32 * ((u & 7) >> 1));
    r.w[0] = *(const uint4 *)b, r.w[1] = q[0], r.w[2] = q[1];
}

template <> __device__ __forceinline__ void unit_raw<QT_Q5_K>(const uint8_t *row, int u, int, UnitRaw<QT_Q5_K> &r) {
    const uint8_t *b = row + (size_t)(u >> 3) * sizeof(BlockQ5_K);
    const uint4 *h = (const uint4 *)(b + 16), *q = (const uint4 *)(b + 48 + 32 * ((u & 7) >> 1));
    r.w[0] = *(const uint4 *)b, r.w[1] = h[0], r.w[2] = h[1], r.w[3] = q[0], r.w[4] = q[1];
}

template <>
__device__ __forceinline__ void unit_raw<QT_Q8_0>(const uint8_t *row, int u, int units, UnitRaw<QT_Q8_0> &r) {
    const uint4 *q = (const uint4 *)(row + 32 * (size_t)u);
    r.w[0] = q[0], r.w[1] = q[1];
    r.s = ((const uint16_t *)(row + 32 * (size_t)units))[u];
}

/* Q6_K's unit u (values 32u ..; h = u % 8 / 4, group g = u % 4) from the regrouped row (U = units): its ql
 * bytes from the half's 4 stripes (8 each), its 32 qh bytes, the half's two scale words and d, as w[0..1]
 * (ql), w[2..3] (qh), w[4] (x, y: the scale words; z: d). */
template <>
__device__ __forceinline__ void unit_raw<QT_Q6_K>(const uint8_t *row, int u, int units, UnitRaw<QT_Q6_K> &r) {
    const size_t nb = (size_t)units / 8, b = (size_t)(u >> 3);
    const int h = (u >> 2) & 1, g = u & 3;
    const uint8_t *ql = row + 16 * (8 * b + 4 * h) + 8 * (g & 1);
    const uint2 a0 = *(const uint2 *)ql, a1 = *(const uint2 *)(ql + 16), a2 = *(const uint2 *)(ql + 32),
                a3 = *(const uint2 *)(ql + 48);
    r.w[0] = make_uint4(a0.x, a0.y, a1.x, a1.y), r.w[1] = make_uint4(a2.x, a2.y, a3.x, a3.y);
    const uint4 *qh = (const uint4 *)(row + 128 * nb + 64 * b + 32 * h);
    r.w[2] = qh[0], r.w[3] = qh[1];
    const uint2 sc = *(const uint2 *)(row + 192 * nb + 16 * b + 8 * h);
    r.w[4] = make_uint4(sc.x, sc.y, *(const uint16_t *)(row + 208 * nb + 2 * b), 0);
}

/* A Q6_K stripe (above) as read for 8-bit activations: ql (a.x, a.y: groups 0 and 2; a.z, a.w: 1 and 3),
 * qh (b), the four scales (sc, byte g) and d (low half of d). */
struct Q6Stripe {
    uint4 a;
    uint2 b;
    uint32_t sc, d;
};

__device__ __forceinline__ void q6_stripe_raw(const uint8_t *row, int u, int units, Q6Stripe &s) {
    const size_t nb = (size_t)units / 8, b = (size_t)(u >> 3);
    const int h = (u >> 2) & 1, q = u & 3;
    s.a = *(const uint4 *)(row + 16 * (size_t)u);
    s.b = *(const uint2 *)(row + 128 * nb + 8 * (size_t)u);
    s.sc = *(const uint32_t *)(row + 192 * nb + 16 * b + 4 * (2 * h + (q >> 1)));
    s.d = *(const uint16_t *)(row + 208 * nb + 2 * b);
}

/* Group g's 8 values of a stripe as signed bytes q - 32 (two words) */
__device__ __forceinline__ void q6_stripe_group(const Q6Stripe &s, int g, int w[2]) {
    const uint32_t l[2] = {g & 1 ? s.a.z : s.a.x, g & 1 ? s.a.w : s.a.y}, h[2] = {s.b.x, s.b.y};
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const uint32_t lo = (g >> 1 ? l[i] >> 4 : l[i]) & 0x0F0F0F0Fu;
        const uint32_t hi = (g == 0 ? h[i] << 4 : g == 1 ? h[i] << 2 : g == 2 ? h[i] : h[i] >> 2) & 0x30303030u;
        w[i] = (int)__vsub4(lo | hi, 0x20202020u);
    }
}

/* the 8 words of a raw unit from word i on */
template <int T> __device__ __forceinline__ void raw_words(const UnitRaw<T> &r, int i, uint32_t q[8]) {
    q[0] = r.w[i].x, q[1] = r.w[i].y, q[2] = r.w[i].z, q[3] = r.w[i].w;
    q[4] = r.w[i + 1].x, q[5] = r.w[i + 1].y, q[6] = r.w[i + 1].z, q[7] = r.w[i + 1].w;
}

/* Values 32u .. 32u+31 from unit u's raw words (the float layouts ignore u). */
template <int T> __device__ __forceinline__ void unit_decode(const UnitRaw<T> &r, int u, float v[32]);

template <> __device__ __forceinline__ void unit_decode<QT_F32>(const UnitRaw<QT_F32> &r, int, float v[32]) {
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const uint4 a = r.w[i];
        v[4 * i] = __uint_as_float(a.x), v[4 * i + 1] = __uint_as_float(a.y);
        v[4 * i + 2] = __uint_as_float(a.z), v[4 * i + 3] = __uint_as_float(a.w);
    }
}

template <> __device__ __forceinline__ void unit_decode<QT_F16>(const UnitRaw<QT_F16> &r, int, float v[32]) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint32_t w[4] = {r.w[i].x, r.w[i].y, r.w[i].z, r.w[i].w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float2 f = __half22float2(*(const __half2 *)&w[k]);
            v[8 * i + 2 * k] = f.x, v[8 * i + 2 * k + 1] = f.y;
        }
    }
}

template <> __device__ __forceinline__ void unit_decode<QT_BF16>(const UnitRaw<QT_BF16> &r, int, float v[32]) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint32_t w[4] = {r.w[i].x, r.w[i].y, r.w[i].z, r.w[i].w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            v[8 * i + 2 * k] = __uint_as_float(w[k] << 16);
            v[8 * i + 2 * k + 1] = __uint_as_float(w[k] & 0xFFFF0000u);
        }
    }
}

#define RAW_UNIT_LOAD(T)                                                                                    \
    template <> __device__ __forceinline__ void unit_load<T>(const uint8_t *row, int u, int units, float v[32]) { \
        UnitRaw<T> r;                                                                                         \
        unit_raw<T>(row, u, units, r);                                                                        \
        unit_decode<T>(r, u, v);                                                                              \
    }
RAW_UNIT_LOAD(QT_F32)
RAW_UNIT_LOAD(QT_F16)
RAW_UNIT_LOAD(QT_BF16)

/* The 32-value layouts (the primary template's definition: every other layout has its specialization):
 * value j (< 16) from the low nibble of byte j, value j + 16 from its high nibble, the fifth bit (Q5_0, Q5_1)
 * from bit j of qh */
template <int T> __device__ __forceinline__ void unit_decode(const UnitRaw<T> &r, int, float v[32]) {
    static_assert(small_layout(T), "a layout without its unit_decode");
    constexpr bool q5 = T == QT_Q5_0 || T == QT_Q5_1, dm = T == QT_Q4_1 || T == QT_Q5_1;
    const float d = half_lo(r.s), m = dm ? half_hi(r.s) : -(q5 ? 16.0f : 8.0f) * d;
    const uint32_t w[4] = {r.w[0].x, r.w[0].y, r.w[0].z, r.w[0].w};
#pragma unroll
    for (int j = 0; j < 16; j++) {
        const int q = byte_of(w, j);
        const int q0 = (q & 0x0F) | (q5 ? (int)((r.h >> j) & 1) << 4 : 0);
        const int q1 = (q >> 4) | (q5 ? (int)((r.h >> (j + 16)) & 1) << 4 : 0);
        v[j] = d * (float)q0 + m;
        v[j + 16] = d * (float)q1 + m;
    }
}
RAW_UNIT_LOAD(QT_Q4_0)
RAW_UNIT_LOAD(QT_Q4_1)
RAW_UNIT_LOAD(QT_Q5_0)
RAW_UNIT_LOAD(QT_Q5_1)

/* K-quants: sub-block j = u % 8 of super-block u / 8. */
template <> __device__ __forceinline__ void unit_decode<QT_Q4_K>(const UnitRaw<QT_Q4_K> &r, int u, float v[32]) {
    const int j = u & 7;
    float sc, m;
    k4_scale_min(r.w[0], j, &sc, &m);
    const float d1 = half_lo(r.w[0].x) * sc, m1 = half_hi(r.w[0].x) * m;
    uint32_t w[8];
    raw_words(r, 1, w);
    const int shift = 4 * (j & 1);
#pragma unroll
    for (int l = 0; l < 32; l++) v[l] = d1 * (float)((byte_of(w, l) >> shift) & 0x0F) - m1;
}

template <> __device__ __forceinline__ void unit_decode<QT_Q5_K>(const UnitRaw<QT_Q5_K> &r, int u, float v[32]) {
    const int j = u & 7;
    float sc, m;
    k4_scale_min(r.w[0], j, &sc, &m);
    const float d1 = half_lo(r.w[0].x) * sc, m1 = half_hi(r.w[0].x) * m;
    uint32_t w[8], h[8];
    raw_words(r, 3, w);
    raw_words(r, 1, h);
    const int shift = 4 * (j & 1);
#pragma unroll
    for (int l = 0; l < 32; l++) {
        const int q = ((byte_of(w, l) >> shift) & 0x0F) | ((byte_of(h, l) >> j) & 1) << 4;
        v[l] = d1 * (float)q - m1;
    }
}

template <> __device__ __forceinline__ void unit_decode<QT_Q8_0>(const UnitRaw<QT_Q8_0> &r, int, float v[32]) {
    const float d = half_lo(r.s);
    uint32_t w[8];
    raw_words(r, 0, w);
#pragma unroll
    for (int j = 0; j < 32; j++) v[j] = d * (float)(int8_t)byte_of(w, j);
}

RAW_UNIT_LOAD(QT_Q8_0)
RAW_UNIT_LOAD(QT_Q4_K)
RAW_UNIT_LOAD(QT_Q5_K)

template <> __device__ __forceinline__ void unit_decode<QT_Q6_K>(const UnitRaw<QT_Q6_K> &r, int u, float v[32]) {
    const int g = u & 3, lshift = 4 * (g >> 1), hshift = 2 * g;
    const float d = half_lo(r.w[4].z);
    const float s0 = d * (float)(int8_t)(r.w[4].x >> (8 * g)), s1 = d * (float)(int8_t)(r.w[4].y >> (8 * g));
    uint32_t ql[8], qh[8];
    raw_words(r, 0, ql);
    raw_words(r, 2, qh);
#pragma unroll
    for (int l = 0; l < 32; l++) {
        const int q = ((byte_of(ql, l) >> lshift) & 0x0F) | ((byte_of(qh, l) >> hshift) & 3) << 4;
        v[l] = (l < 16 ? s0 : s1) * (float)(q - 32);
    }
}

RAW_UNIT_LOAD(QT_Q6_K)
#undef RAW_UNIT_LOAD

template <> __device__ __forceinline__ void unit_load<QT_Q2_K>(const uint8_t *row, int u, int, float v[32]) {
    const uint8_t *b = row + (size_t)(u >> 3) * 84;
    const int k = u & 7, h = k >> 2, s = k & 3;
    const float d = h2f(b + 80), dmin = h2f(b + 82);
    const int sc0 = b[2 * k], sc1 = b[2 * k + 1];
    const float dl0 = d * (float)(sc0 & 0x0F), ml0 = dmin * (float)(sc0 >> 4);
    const float dl1 = d * (float)(sc1 & 0x0F), ml1 = dmin * (float)(sc1 >> 4);
    const uint8_t *qs = b + 16 + 32 * h;
#pragma unroll
    for (int l = 0; l < 32; l++) {
        const int q = (qs[l] >> (2 * s)) & 3;
        v[l] = l < 16 ? dl0 * (float)q - ml0 : dl1 * (float)q - ml1;
    }
}

template <> __device__ __forceinline__ void unit_load<QT_Q3_K>(const uint8_t *row, int u, int, float v[32]) {
    const uint8_t *b = row + (size_t)(u >> 3) * 110;
    const int k = u & 7, h = k >> 2, s = k & 3;
    float dl[2];
    q3k_scales(b, k, dl);
    const uint8_t *qs = b + 32 + 32 * h;
#pragma unroll
    for (int l = 0; l < 32; l++) {
        const int low = (qs[l] >> (2 * s)) & 3;
        const int high = (b[l] >> k) & 1;
        v[l] = dl[l >> 4] * (float)(low - (high ? 0 : 4));
    }
}

/* ---- units as integers, for the dot with 8-bit activations (the CPU's formulas, src/quant/dot.c) ----
 * A unit's 32 weights become 32 int8 values q (w[k] holds values 4k .. 4k+3) with
 *   value i = s0 * q_i + m0   (i < 16),   s1 * q_i + m1   (i >= 16)
 * so that its dot with activations da * a is da * (s0 sum_lo q a + s1 sum_hi q a + m0 sum_lo a + m1 sum_hi a).
 * Types with one scale for the whole unit (Int8Traits::split false) leave s1 and m1 unset, types without
 * a minimum (Int8Traits::min false) leave m0 and m1 unset. */
struct UnitI8 {
    int w[8];
    float s0, s1, m0, m1;
};

template <int T> struct Int8Traits {
    static constexpr bool split = T == QT_Q2_K || T == QT_Q3_K; /* two 16-value scales (Q6_K: dot_q8_q6_stripe) */
    static constexpr bool min = T == QT_Q4_0 || T == QT_Q4_1 || T == QT_Q5_0 || T == QT_Q5_1 || T == QT_Q2_K ||
                                T == QT_Q4_K || T == QT_Q5_K;
};

/* the low 4 bits of b, one per byte, at bit 0 of bytes 0..3 */
__device__ __forceinline__ int spread4(uint32_t b) {
    return (int)((b * 0x00204081u) & 0x01010101u);
}

template <int T> __device__ __forceinline__ void unit_int8(const uint8_t *row, int u, int units, UnitI8 &o);

/* The units unit_raw reads as integers from their raw words (the GEMV reads these straight from global
 * memory). */
template <int T> __device__ __forceinline__ void unit_int8_raw(const UnitRaw<T> &r, int u, UnitI8 &o);

/* The 32-value layouts (the primary template's definition: every other layout has its specialization): the
 * nibbles (and fifth bits) as bytes; the offset (-8 d, -16 d) or m as the minimum */
template <int T> __device__ __forceinline__ void unit_int8_raw(const UnitRaw<T> &r, int, UnitI8 &o) {
    static_assert(small_layout(T), "a layout without its unit_int8_raw");
    constexpr bool q5 = T == QT_Q5_0 || T == QT_Q5_1, dm = T == QT_Q4_1 || T == QT_Q5_1;
    const uint32_t q[4] = {r.w[0].x, r.w[0].y, r.w[0].z, r.w[0].w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        o.w[k] = (int)(q[k] & 0x0F0F0F0Fu), o.w[k + 4] = (int)((q[k] >> 4) & 0x0F0F0F0Fu);
        if constexpr (q5) {
            o.w[k] |= spread4(r.h >> (4 * k) & 15) << 4;
            o.w[k + 4] |= spread4(r.h >> (16 + 4 * k) & 15) << 4;
        }
    }
    o.s0 = half_lo(r.s), o.m0 = dm ? half_hi(r.s) : -(q5 ? 16.0f : 8.0f) * o.s0;
}

template <> __device__ __forceinline__ void unit_int8_raw<QT_Q4_K>(const UnitRaw<QT_Q4_K> &r, int u, UnitI8 &o) {
    const int j = u & 7, shift = 4 * (j & 1);
    float sc, m;
    k4_scale_min(r.w[0], j, &sc, &m);
    uint32_t q[8];
    raw_words(r, 1, q);
#pragma unroll
    for (int k = 0; k < 8; k++) o.w[k] = (int)((q[k] >> shift) & 0x0F0F0F0Fu);
    o.s0 = half_lo(r.w[0].x) * sc, o.m0 = -(half_hi(r.w[0].x) * m);
}

template <> __device__ __forceinline__ void unit_int8_raw<QT_Q5_K>(const UnitRaw<QT_Q5_K> &r, int u, UnitI8 &o) {
    const int j = u & 7, shift = 4 * (j & 1);
    float sc, m;
    k4_scale_min(r.w[0], j, &sc, &m);
    uint32_t q[8], h[8];
    raw_words(r, 3, q);
    raw_words(r, 1, h);
#pragma unroll
    for (int k = 0; k < 8; k++) o.w[k] = (int)((q[k] >> shift) & 0x0F0F0F0Fu) | (int)((h[k] >> j) & 0x01010101u) << 4;
    o.s0 = half_lo(r.w[0].x) * sc, o.m0 = -(half_hi(r.w[0].x) * m);
}

template <> __device__ __forceinline__ void unit_int8_raw<QT_Q8_0>(const UnitRaw<QT_Q8_0> &r, int, UnitI8 &o) {
    raw_words(r, 0, (uint32_t *)o.w);
    o.s0 = half_lo(r.s);
}

template <> __device__ __forceinline__ void unit_int8<QT_Q4_K>(const uint8_t *row, int u, int, UnitI8 &o) {
    UnitRaw<QT_Q4_K> r;
    unit_raw<QT_Q4_K>(row, u, 0, r);
    unit_int8_raw<QT_Q4_K>(r, u, o);
}

template <> __device__ __forceinline__ void unit_int8<QT_Q5_K>(const uint8_t *row, int u, int, UnitI8 &o) {
    UnitRaw<QT_Q5_K> r;
    unit_raw<QT_Q5_K>(row, u, 0, r);
    unit_int8_raw<QT_Q5_K>(r, u, o);
}

template <> __device__ __forceinline__ void unit_int8<QT_Q2_K>(const uint8_t *row, int u, int, UnitI8 &o) {
    const uint8_t *b = row + (size_t)(u >> 3) * 84;
    const int k8 = u & 7, h = k8 >> 2, s = k8 & 3;
    const float d = h2f(b + 80), dmin = h2f(b + 82);
    const int sc0 = b[2 * k8], sc1 = b[2 * k8 + 1];
    uint32_t q[8];
    load16_a2(b + 16 + 32 * h, q);
    load16_a2(b + 32 + 32 * h, q + 4);
#pragma unroll
    for (int k = 0; k < 8; k++) o.w[k] = (int)((q[k] >> (2 * s)) & 0x03030303u);
    o.s0 = d * (float)(sc0 & 0x0F), o.m0 = -(dmin * (float)(sc0 >> 4));
    o.s1 = d * (float)(sc1 & 0x0F), o.m1 = -(dmin * (float)(sc1 >> 4));
}

template <> __device__ __forceinline__ void unit_int8<QT_Q3_K>(const uint8_t *row, int u, int, UnitI8 &o) {
    const uint8_t *b = row + (size_t)(u >> 3) * 110;
    const int k8 = u & 7, h = k8 >> 2, s = k8 & 3;
    float dl[2];
    q3k_scales(b, k8, dl);
    uint32_t q[8], hm[8];
    load16_a2(b + 32 + 32 * h, q);
    load16_a2(b + 48 + 32 * h, q + 4);
    load16_a2(b, hm);
    load16_a2(b + 16, hm + 4);
#pragma unroll
    for (int k = 0; k < 8; k++)
        o.w[k] = (int)__vsub4(((q[k] >> (2 * s)) & 0x03030303u) | ((hm[k] >> k8) & 0x01010101u) << 2, 0x04040404u);
    o.s0 = dl[0], o.s1 = dl[1];
}

/* Call F<T>::run(args...) for a run-time type id; returns false for a type without a device layout. */
#define ORCD_FOR_EACH_DEVICE_TYPE(X)                                                                           \
    X(QT_F32) X(QT_F16) X(QT_BF16) X(QT_Q4_0) X(QT_Q4_1) X(QT_Q5_0) X(QT_Q5_1) X(QT_Q8_0) X(QT_Q2_K) X(QT_Q3_K) \
        X(QT_Q4_K) X(QT_Q5_K) X(QT_Q6_K)

#endif
