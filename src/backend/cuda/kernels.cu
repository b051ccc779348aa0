/*
 * cuda/kernels: the forward pass's kernels and their launchers (interface and contracts in kernels.h).
 * fp32 arithmetic and accumulation throughout; fp16 only for the KV store and the tensor-core inputs.
 */
#include "dequant.cuh"
#include "kernels.h"
#include "timeline.cuh"

#include <float.h>
#include <math.h>
#include <mma.h>

#define WARP 32

static_assert(quant_block_bytes_dev(QT_Q4_0) == sizeof(BlockQ4_0) && quant_block_bytes_dev(QT_Q4_1) == sizeof(BlockQ4_1) &&
                  quant_block_bytes_dev(QT_Q5_0) == sizeof(BlockQ5_0) && quant_block_bytes_dev(QT_Q5_1) == sizeof(BlockQ5_1) &&
                  quant_block_bytes_dev(QT_Q8_0) == sizeof(BlockQ8_0) && quant_block_bytes_dev(QT_Q4_K) == sizeof(BlockQ4_K) &&
                  quant_block_bytes_dev(QT_Q5_K) == sizeof(BlockQ5_K) && quant_block_bytes_dev(QT_Q6_K) == sizeof(BlockQ6_K),
              "device block sizes agree with quant.h");

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. */
__device__ float block_sum(float v) {
    __shared__ float part[32];
    v = warp_sum(v);
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, n_warps = blockDim.x / WARP;
    __syncthreads(); /* part may still be read by a previous call */
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = lane < n_warps ? part[lane] : 0.0f;
    return warp_sum(v);
}

/* 32 values as fp16 into dst[0..3] (16-byte stores) */
__device__ __forceinline__ void store_half32(uint4 *dst, const float v[32]) {
#pragma unroll
    for (int k = 0; k < 4; k++) {
        __half2 p[4];
#pragma unroll
        for (int e = 0; e < 4; e++) p[e] = __floats2half2_rn(v[8 * k + 2 * e], v[8 * k + 2 * e + 1]);
        dst[k] = *(uint4 *)p;
    }
}

static unsigned blocks_for(int64_t n, int per_block) {
    return (unsigned)((n + per_block - 1) / per_block);
}

/* ---- launches: programmatic dependent launch ----
 * On devices that have it (compute 9.0+, ck_set_pdl), kernels are launched with programmatic stream
 * serialization: a kernel may be scheduled while the one before it is still running, so its launch latency
 * and a product's first weight loads overlap the previous kernel's tail. The rule that keeps this safe: each
 * kernel calls pdl_begin() before it reads anything a kernel of the forward wrote or writes anything one
 * reads; only reads of what no kernel of the forward writes (weights, the step's inputs) may come before it.
 * pdl_begin lets the next kernel be scheduled (pdl_trigger: its blocks start, issue their own such loads and
 * wait in turn for all of this one), then waits until the previous kernel has finished and its writes are
 * visible (griddepcontrol.wait). The next kernel launches once every block of this one has triggered, so
 * no kernel's blocks wait behind blocks of a later one. */

static int pdl_on;

extern "C" void ck_set_pdl(int on) {
    pdl_on = on;
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_begin() {
    pdl_trigger();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
    tl_waited();
}

template <typename... P, typename... A>
static void launch(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t s, A &&...args) {
    cudaLaunchAttribute attr = {};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = 0, cfg.stream = s;
    cfg.attrs = &attr, cfg.numAttrs = pdl_on ? 1 : 0;
    cudaLaunchKernelEx(&cfg, kernel, static_cast<A &&>(args)...);
}

/* Where value i of an activation row of n values lives in the GEMV input layout (kernels.h): value j of
 * unit u (i = 32u + j) at (j / 4) * n / 8 + 4u + j % 4, so that consecutive lanes reading consecutive units
 * read consecutive 16-byte groups. Rows whose length is not a multiple of 32 stay row-major. */
__device__ __forceinline__ int xi_at(int i, int n) {
    return n % 32 ? i : (i & 31) / 4 * (n / 8) + (i >> 5) * 4 + (i & 3);
}

/* ---- 8-bit activations (kernels.h's CkQ8; the arithmetic of quant_q8a_quantize) ---- */

__device__ __forceinline__ int8_t q8_round(float v) {
    if (!(v >= -127.0f)) v = -127.0f; /* NaN too, as on the CPU */
    if (v > 127.0f) v = 127.0f;
    int t = (int)v;
    const float frac = v - (float)t;
    t += (frac >= 0.5f) - (frac <= -0.5f);
    return (int8_t)t;
}

/* The warp holds unit u of a row (lane i: value i); it writes the unit's 8-bit form into q's row t
 * (the row has n values). Every lane of the warp must call it. */
__device__ __forceinline__ void q8_store_unit(float v, int lane, const CkQ8 &q, int t, int n, int u) {
    const float amax = warp_max(fabsf(v)); /* fmaxf skips NaN, as the CPU's comparison does */
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const int8_t c = q8_round(v * id);
    const int sum = __reduce_add_sync(0xffffffffu, (int)c);
    q.qs[(size_t)t * n + (lane >> 4) * (n / 2) + u * 16 + (lane & 15)] = c;
    if (lane == 0) q.d[(size_t)t * (n / 32) + u] = d, q.sum[(size_t)t * (n / 32) + u] = sum;
}

__global__ void quantize_q8_kernel(const float *x, CkQ8 q, int n) {
    TL_KERNEL();
    pdl_begin();
    const int lane = threadIdx.x % WARP, u = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP, t = blockIdx.y;
    if (u >= n / 32) return;
    q8_store_unit(x[(size_t)t * n + xi_at(u * 32 + lane, n)], lane, q, t, n, u);
}

extern "C" void ck_quantize_q8(const float *x, const CkQ8 *q, int T, int n, cudaStream_t s) {
    launch(quantize_q8_kernel, dim3(blocks_for(n / 32, 4), T), 4 * WARP, s, x, *q, n);
}

/* dot of a unit of weights (as integers) with unit u of 8-bit activation row t */
template <int T>
__device__ __forceinline__ float dot_q8(const UnitI8 &w, const CkQ8 &q, int t, int n, int u) {
    const int8_t *qs = q.qs + (size_t)t * n;
    const int4 a0 = *(const int4 *)(qs + u * 16), a1 = *(const int4 *)(qs + n / 2 + u * 16);
    int lo = 0, hi = 0;
    lo = __dp4a(w.w[0], a0.x, lo), lo = __dp4a(w.w[1], a0.y, lo), lo = __dp4a(w.w[2], a0.z, lo), lo = __dp4a(w.w[3], a0.w, lo);
    hi = __dp4a(w.w[4], a1.x, hi), hi = __dp4a(w.w[5], a1.y, hi), hi = __dp4a(w.w[6], a1.z, hi), hi = __dp4a(w.w[7], a1.w, hi);
    const size_t b = (size_t)t * (n / 32) + u;
    float r = Int8Traits<T>::split ? w.s0 * (float)lo + w.s1 * (float)hi : w.s0 * (float)(lo + hi);
    if constexpr (T == QT_Q2_K) {
        int slo = 0;
        slo = __dp4a(0x01010101, a0.x, slo), slo = __dp4a(0x01010101, a0.y, slo);
        slo = __dp4a(0x01010101, a0.z, slo), slo = __dp4a(0x01010101, a0.w, slo);
        r += w.m0 * (float)slo + w.m1 * (float)(q.sum[b] - slo);
    } else if constexpr (Int8Traits<T>::min) {
        r += w.m0 * (float)q.sum[b];
    }
    return q.d[b] * r;
}

/* dot of a Q6_K stripe (dequant.cuh: values l0 .. l0 + 7 of the half's four groups) with 8-bit activation row
 * t: group g's 8 values meet the same 8 of activation unit 8 * block + 4h + g */
__device__ __forceinline__ float dot_q8_q6_stripe(const Q6Stripe &w, const CkQ8 &q, int t, int n, int u) {
    const int h = (u >> 2) & 1, l0 = 8 * (u & 3), u0 = 8 * (u >> 3) + 4 * h;
    const int8_t *qs = q.qs + (size_t)t * n + (l0 / 16) * (n / 2) + l0 % 16;
    const float *d = q.d + (size_t)t * (n / 32);
    float r = 0.0f;
#pragma unroll
    for (int g = 0; g < 4; g++) {
        int wg[2];
        q6_stripe_group(w, g, wg);
        const int2 a = *(const int2 *)(qs + 16 * (u0 + g));
        const int s = __dp4a(wg[1], a.y, __dp4a(wg[0], a.x, 0));
        r += d[u0 + g] * (float)(int8_t)(w.sc >> (8 * g)) * (float)s;
    }
    return half_lo(w.d) * r;
}

extern "C" int ck_type_supported(uint32_t type) {
    switch (type) {
#define CASE(T) case T:
        ORCD_FOR_EACH_DEVICE_TYPE(CASE)
#undef CASE
        return 1;
    default:
        return 0;
    }
}

/* ---- embedding rows and full dequantization: one thread per 32-value unit ---- */

template <int T> __global__ void embed_kernel(const uint8_t *w, size_t row_bytes, int cols, const int32_t *token,
                                              int n_tokens, float *x) {
    TL_KERNEL();
    pdl_begin();
    const int units = cols / 32;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n_tokens * units) return;
    const int t = (int)(i / units), u = (int)(i % units);
    float v[32];
    unit_load<T>(w + (size_t)token[t] * row_bytes, u, units, v);
    float4 *out = (float4 *)(x + (size_t)t * cols + (size_t)u * 32);
#pragma unroll
    for (int k = 0; k < 8; k++) out[k] = make_float4(v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]);
}

template <int T> __global__ void dequant_kernel(const uint8_t *w, size_t row_bytes, int64_t rows, int cols,
                                                void *out, int half_out) {
    TL_KERNEL();
    pdl_begin();
    const int units = cols / 32;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * units) return;
    const int64_t r = i / units;
    const int u = (int)(i % units);
    float v[32];
    unit_load<T>(w + (size_t)r * row_bytes, u, units, v);
    const size_t off = (size_t)r * cols + (size_t)u * 32;
    if (half_out) { /* 16-byte stores (rows of a multiple of 32 values keep them aligned) */
        store_half32((uint4 *)((__half *)out + off), v);
    } else {
        float4 *o = (float4 *)((float *)out + off);
#pragma unroll
        for (int k = 0; k < 8; k++) o[k] = make_float4(v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]);
    }
}


extern "C" void ck_embed(const CkMat *emb, const int32_t *token, int T, float *x, cudaStream_t s) {
    const int64_t n = (int64_t)T * (emb->cols / 32);
    const uint8_t *w = (const uint8_t *)emb->data;
    switch (emb->type) {
#define CASE(Q)                                                                                                \
    case Q:                                                                                                    \
        launch((embed_kernel<Q>), blocks_for(n, 128), 128, s, w, emb->row_bytes, (int)emb->cols, token, T, x); \
        break;
        ORCD_FOR_EACH_DEVICE_TYPE(CASE)
#undef CASE
    }
}

extern "C" void ck_dequant(const CkMat *m, void *out, int half_out, cudaStream_t s) {
    const int64_t n = m->rows * (m->cols / 32);
    const uint8_t *w = (const uint8_t *)m->data;
    switch (m->type) {
#define CASE(Q)                                                                                                   \
    case Q:                                                                                                       \
        launch((dequant_kernel<Q>), blocks_for(n, 128), 128, s, w, m->row_bytes, m->rows, (int)m->cols, out, half_out); \
        break;
        ORCD_FOR_EACH_DEVICE_TYPE(CASE)
#undef CASE
    }
}

/* ---- weights into the device's row layout (dequant.cuh: regrouped rows) ---- */

/* one thread per block of a row: each part of the file's block to its region */
template <int T> __global__ void regroup_kernel(const uint8_t *src, uint8_t *dst, size_t row_bytes, int64_t rows,
                                                int nb) {
    TL_KERNEL();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * nb) return;
    const int64_t r = i / nb;
    const int b = (int)(i % nb);
    const uint8_t *sb = src + (size_t)r * nb * quant_block_bytes_dev(T) + (size_t)b * quant_block_bytes_dev(T);
    uint8_t *dr = dst + (size_t)r * row_bytes;
    size_t region = 0;
#pragma unroll
    for (int p = 0; p < regroup_parts(T); p++) {
        const int len = regroup_len(T, p);
        for (int k = 0; k < len; k++) dr[region + (size_t)len * b + k] = sb[regroup_src(T, p, k)];
        region += (size_t)len * nb;
    }
}

static size_t file_row_bytes(uint32_t type, int64_t cols) {
    switch (type) {
#define CASE(Q) \
    case Q:     \
        return (size_t)(cols / quant_block_elems_dev(Q)) * quant_block_bytes_dev(Q);
        ORCD_FOR_EACH_DEVICE_TYPE(CASE)
#undef CASE
    }
    return 0;
}

extern "C" int ck_regrouped(uint32_t type) {
    return regrouped((int)type);
}

extern "C" size_t ck_row_bytes(uint32_t type, int64_t cols) {
    const size_t b = file_row_bytes(type, cols);
    return regrouped((int)type) ? (b + 15) / 16 * 16 : b;
}

template <int T> static void regroup_rows(const CkMat *m, int64_t n, const uint8_t *src, uint8_t *dst, cudaStream_t s) {
    if constexpr (regrouped(T)) {
        const int nb = (int)(m->cols / quant_block_elems_dev(T));
        regroup_kernel<T><<<(unsigned)((n * nb + 127) / 128), 128, 0, s>>>(src, dst, m->row_bytes, n, nb);
    }
}

extern "C" int ck_put_rows(const CkMat *m, int64_t r0, int64_t n, const void *src, cudaStream_t s) {
    uint8_t *dst = (uint8_t *)m->data + (size_t)r0 * m->row_bytes;
    const size_t fb = file_row_bytes(m->type, m->cols);
    if (!regrouped((int)m->type)) {
        if (fb != m->row_bytes) return -1;
        return cudaMemcpyAsync(dst, src, (size_t)n * fb, cudaMemcpyDeviceToDevice, s) == cudaSuccess ? 0 : -1;
    }
    if (cudaMemsetAsync(dst, 0, (size_t)n * m->row_bytes, s) != cudaSuccess) return -1; /* the padding */
    switch (m->type) {
#define CASE(Q)                                                   \
    case Q:                                                       \
        regroup_rows<Q>(m, n, (const uint8_t *)src, dst, s);      \
        break;
        ORCD_FOR_EACH_DEVICE_TYPE(CASE)
#undef CASE
    }
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}

/* ---- fused dequantize-and-dot: one warp per weight row, NT activation rows per pass ---- */

#define GEMV_WARPS 4

/* Bytes of 32 consecutive units (a warp's share of a row per step) for the quantized layouts. */
template <int T> struct Chunk {
    static constexpr int bytes = quant_block_bytes_dev(T) * (quant_block_elems_dev(T) == 256 ? 4 : 32);
};

/* dot of the 32 values v with unit u of activation row x (n values, GEMV input layout: a warp's lanes read
 * 8 coalesced 16-byte groups each), fp32 */
__device__ __forceinline__ float dot32(const float v[32], const float *x, int n, int u) {
    const float4 *xp = (const float4 *)x + u;
    float a = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float4 xv = xp[k * (n / 32)];
        a = fmaf(v[4 * k], xv.x, a);
        a = fmaf(v[4 * k + 1], xv.y, a);
        a = fmaf(v[4 * k + 2], xv.z, a);
        a = fmaf(v[4 * k + 3], xv.w, a);
    }
    return a;
}

/* A warp's chunk of a quantized row into registers: lane holds words lane, lane + 32, ... (all loads issued
 * together); then into the warp's shared buffer. Chunks start on 2-byte boundaries (every block size is
 * even); a last word may read up to 2 bytes past the chunk, inside the tensor's 256-byte-padded allocation. */
template <int CB> struct ChunkRegs {
    static constexpr int W = (CB / 4 + WARP - 1) / WARP;
    uint32_t r[W];
};

template <int CB>
__device__ __forceinline__ void chunk_fetch(ChunkRegs<CB> &c, const uint8_t *src, int bytes, int lane) {
    const int words = (bytes + 3) / 4;
    if (((uintptr_t)src & 3) == 0) {
#pragma unroll
        for (int k = 0; k < ChunkRegs<CB>::W; k++) {
            const int i = lane + WARP * k;
            if (i < words) c.r[k] = __ldg((const unsigned int *)src + i);
        }
    } else {
        const uint16_t *h = (const uint16_t *)src;
#pragma unroll
        for (int k = 0; k < ChunkRegs<CB>::W; k++) {
            const int i = lane + WARP * k;
            if (i < words) c.r[k] = (uint32_t)h[2 * i] | (uint32_t)h[2 * i + 1] << 16;
        }
    }
}

template <int CB>
__device__ __forceinline__ void chunk_store(const ChunkRegs<CB> &c, uint8_t *stage, int bytes, int lane) {
    const int words = (bytes + 3) / 4;
#pragma unroll
    for (int k = 0; k < ChunkRegs<CB>::W; k++) {
        const int i = lane + WARP * k;
        if (i < words) ((uint32_t *)stage)[i] = c.r[k];
    }
}

template <int T> __device__ __forceinline__ int chunk_bytes(int units, int u0) {
    const int n_units = min(WARP, units - u0);
    return quant_block_elems_dev(T) == 256 ? n_units / 8 * quant_block_bytes_dev(T) : n_units * quant_block_bytes_dev(T);
}

template <int T> __device__ __forceinline__ const uint8_t *chunk_src(const uint8_t *row, int u0) {
    return row + (size_t)u0 / (quant_block_elems_dev(T) == 256 ? 8 : 1) * quant_block_bytes_dev(T);
}

/* Staged rows (Q2_K, Q3_K; Q4_K/Q5_K against fp32 activations) are read a warp-wide chunk at a time (32
 * units, contiguous bytes) with coalesced 32-bit loads into shared memory, then each lane decodes its unit
 * from there; the others are read directly (direct_rows below: their units are 16-byte aligned). */
/* Up to CK_GEMV_MAX_OUT weights of one type and row length in one launch: weight i's rows are the
 * launch's rows end[i-1] .. end[i] (unused entries: end repeats the last), its results go to y[i]
 * (T, rows_i), plus bias[i] when set. */
struct GemvOuts {
    const uint8_t *w[CK_GEMV_MAX_OUT];
    const float *bias[CK_GEMV_MAX_OUT];
    float *y[CK_GEMV_MAX_OUT];
    int end[CK_GEMV_MAX_OUT];
    int n;
};

/* One chunk of a staged row (units u0 .. u0 + 31): r (its bytes, fetched earlier) into the warp's stage,
 * r refilled with the chunk at u0 + ahead (the warp's next but one), then each lane's unit against the NT
 * activation rows. */
template <int T, int NT, bool Q8, int CB>
__device__ __forceinline__ void gemv_chunk(ChunkRegs<CB> &r, uint8_t *stage, const uint8_t *wr, int units, int u0,
                                           int ahead, int lane, const float *x, const CkQ8 &xq, int cols,
                                           float (&acc)[NT]) {
    static_assert(!regrouped(T), "regrouped rows are read directly");
    __syncwarp();
    chunk_store(r, stage, chunk_bytes<T>(units, u0), lane);
    __syncwarp();
    if (u0 + ahead < units) chunk_fetch(r, chunk_src<T>(wr, u0 + ahead), chunk_bytes<T>(units, u0 + ahead), lane);
    const int u = u0 + lane;
    if (u >= units) return;
    if constexpr (Q8) {
        UnitI8 wi;
        unit_int8<T>(stage, lane, 0, wi);
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] += dot_q8<T>(wi, xq, t, cols, u);
    } else {
        float v[32];
        unit_load<T>(stage, lane, 0, v);
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] += dot32(v, x + (size_t)t * cols, cols, u);
    }
}

/* quantized weights meet 8-bit activations when there are some */
template <int T> __host__ __device__ constexpr bool quantized_type() {
    return T != QT_F32 && T != QT_F16 && T != QT_BF16;
}

/* Rows read straight from global memory, unit by unit (unit_raw), rather than staged through shared memory a
 * chunk at a time: the float layouts, the regrouped rows (Q4_0 .. Q8_0, Q6_K; dequant.cuh), and Q4_K/Q5_K
 * against 8-bit activations (their super-blocks keep 16-byte alignment, so a lane's unit is a few 16-byte loads;
 * lanes of one super-block share its scale bytes and lanes of a sub-block pair their nibbles within the
 * same load instruction). */
template <int T, bool Q8> __host__ __device__ constexpr bool direct_rows() {
    return !quantized_type<T>() || regrouped(T) || (Q8 && (T == QT_Q4_K || T == QT_Q5_K));
}

/* What a direct row's unit is read into: its raw words, or for Q6_K against 8-bit activations its stripe */
template <int T, bool Q8> struct DirectRaw {
    using type = UnitRaw<T>;
};
template <> struct DirectRaw<QT_Q6_K, true> {
    using type = Q6Stripe;
};

template <int T, int NT, int R> struct DirectUnits {
    /* A round is n units a row, loaded, then used. Float rows: 4 units in all (F32 2; 2 against 4+ activation
     * rows). Q4_K/Q5_K: 2 units alone, 2 a row for gate/up (rounds of 4 alone took 90 registers a thread and
     * 1.4 waves for the 7B O and down projections; H100, 7B Q4_K_M decode 371 -> 397 tok/s with 2, 377 with
     * 4). Regrouped rows (Q4_0 .. Q8_0, Q6_K: pipe): one unit (Q6_K against 8-bit activations: one
     * stripe) a row, and the next round's loads go out before the current round is used (two register sets):
     * H200, 7B Q8_0 decode 300 -> 369 tok/s with 2-unit rounds, 390 pipelined; for Q4_K the pipelined rounds
     * were slower (gate/up 27.2 -> 28.8 us; H100, single rows: 7B Q4_K_M 407 -> 403). */
    static constexpr bool pipe = regrouped(T);
    static constexpr int all = pipe ? R : T == QT_F32 ? 2 : NT >= 4 ? 2 : quantized_type<T>() && R == 1 ? 2 : 4;
    static constexpr int n = all / R > 0 ? all / R : 1; /* per row */
};

/* Direct rows, R rows against the same activations: each lane takes units lane, lane + 32, ... of every row,
 * FU of them per round with all their loads issued before the first is used (and, for pipelined types, the
 * next round's issued before this one is used; one unit at a time and no pipelining left a
 * warp 2 KB in flight: the 7B F16 down projection ran at 60% of the bandwidth). The first round's weight
 * loads go out before ready() (pdl_begin and what the caller loads right after it); BAR: ready() holds a block's
 * barriers (rms_in_block), so every lane calls it at one point. Each acc[r] sums its units in order, as one at a
 * time would. */
template <int T, int NT, bool Q8, int R, bool BAR = false, typename Ready>
__device__ __forceinline__ void gemv_direct_rows(const uint8_t *const (&wr)[R], int units, int first, int step,
                                                 const float *x, const CkQ8 &xq, int cols, float (&acc)[R][NT],
                                                 Ready &&ready) {
    constexpr int FU = DirectUnits<T, NT, R>::n;
    using Raw = typename DirectRaw<T, Q8>::type;
    /* the round of units u0, u0 + step, ... (FU of them) of every row */
    auto load = [&](Raw(&raw)[R][FU], int u0) {
#pragma unroll
        for (int k = 0; k < FU; k++)
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (u0 + k * step >= units) continue;
                if constexpr (Q8 && T == QT_Q6_K) q6_stripe_raw(wr[r], u0 + k * step, units, raw[r][k]);
                else unit_raw<T>(wr[r], u0 + k * step, units, raw[r][k]);
            }
    };
    auto use = [&](const Raw(&raw)[R][FU], int u0) {
#pragma unroll
        for (int k = 0; k < FU; k++) {
            const int u = u0 + k * step;
            if (u >= units) break;
#pragma unroll
            for (int r = 0; r < R; r++) {
                if constexpr (Q8 && T == QT_Q6_K) {
#pragma unroll
                    for (int t = 0; t < NT; t++) acc[r][t] += dot_q8_q6_stripe(raw[r][k], xq, t, cols, u);
                } else if constexpr (Q8) {
                    UnitI8 wi;
                    unit_int8_raw<T>(raw[r][k], u, wi);
#pragma unroll
                    for (int t = 0; t < NT; t++) acc[r][t] += dot_q8<T>(wi, xq, t, cols, u);
                } else {
                    float v[32];
                    unit_decode<T>(raw[r][k], u, v);
#pragma unroll
                    for (int t = 0; t < NT; t++) acc[r][t] += dot32(v, x + (size_t)t * cols, cols, u);
                }
            }
        }
    };
    if constexpr (DirectUnits<T, NT, R>::pipe) {
        Raw ra[R][FU], rb[R][FU];
        load(ra, first);
        ready(); /* the first weights are on their way */
        for (int u0 = first; u0 < units; u0 += 2 * FU * step) {
            load(rb, u0 + FU * step);
            use(ra, u0);
            if (u0 + FU * step >= units) break;
            load(ra, u0 + 2 * FU * step);
            use(rb, u0 + FU * step);
        }
    } else if constexpr (BAR) { /* ready() by every lane at once: it holds a block's barriers */
        Raw raw[R][FU];
        load(raw, first); /* (nothing for lanes past the row) */
        ready();
        for (int u0 = first; u0 < units; u0 += FU * step) {
            if (u0 != first) load(raw, u0);
            use(raw, u0);
        }
    } else { /* (the form above for every kernel had cost 7B Q4_K_M decode 453 -> 419 tok/s) */
        for (int u0 = first; u0 < units; u0 += FU * step) {
            Raw raw[R][FU];
            load(raw, u0);
            if (u0 == first) ready();
            use(raw, u0);
        }
        if (first >= units) ready();
    }
}

/* Where row g of a multi-output launch goes: its weight's row, output and bias (selects, not an index: a
 * dynamic index would copy the parameters to local memory). */
struct GemvRow {
    const uint8_t *w;
    const float *bias;
    float *y;
    int row, rows;
};

__device__ __forceinline__ GemvRow gemv_row(const GemvOuts &o, int g, size_t row_bytes) {
    const int i = g < o.end[0] ? 0 : g < o.end[1] ? 1 : 2;
    const int start = i == 0 ? 0 : i == 1 ? o.end[0] : o.end[1];
    GemvRow r;
    r.row = g - start, r.rows = (i == 0 ? o.end[0] : i == 1 ? o.end[1] : o.end[2]) - start;
    r.bias = i == 0 ? o.bias[0] : i == 1 ? o.bias[1] : o.bias[2];
    r.y = i == 0 ? o.y[0] : i == 1 ? o.y[1] : o.y[2];
    r.w = (i == 0 ? o.w[0] : i == 1 ? o.w[1] : o.w[2]) + (size_t)r.row * row_bytes;
    return r;
}

/* The RMSNorm of a product's input done by each block of the product (ck_gemv_multi_rms, ck_gemv_swiglu_rms):
 * pdl_begin, then the block reads the residual row (a value or a few a thread, one round trip; the norm's
 * weights prefetched into L2 before the wait), sums its squares over the block and writes the normalized row
 * into xs (shared memory) in the GEMV input layout, from which the block's warps read it as they would the
 * norm kernel's output. Every thread of the block calls it once (it has barriers); dim <= CK_RMS_IN_MAX. */
__device__ __forceinline__ void rms_in_block(const CkRmsIn &in, int dim, float *xs) {
    constexpr int V = CK_RMS_IN_MAX / (GEMV_WARPS * WARP);
    if (threadIdx.x < WARP)
        for (int i = threadIdx.x * 32; i < dim; i += WARP * 32) asm volatile("prefetch.global.L2 [%0];" ::"l"(in.w + i));
    pdl_begin();
    float v[V], w[V], ss = 0.0f;
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int i = threadIdx.x + k * GEMV_WARPS * WARP;
        v[k] = i < dim ? in.x[i] : 0.0f, w[k] = i < dim ? in.w[i] : 0.0f;
    }
#pragma unroll
    for (int k = 0; k < V; k++) ss += v[k] * v[k];
    ss = block_sum(ss);
    const float scale = rsqrtf(ss / (float)dim + in.eps);
#pragma unroll
    for (int k = 0; k < V; k++) {
        const int i = threadIdx.x + k * GEMV_WARPS * WARP;
        if (i < dim) xs[xi_at(i, dim)] = v[k] * scale * w[k];
    }
    __syncthreads();
}

/* KS warps per row: 1, or GEMV_WARPS (a block per row): warp w of a row takes units 32 (w + KS k) + lane
 * (chunks w, w + KS, ... when staged), and the row's first warp adds the KS partial sums in order. Long rows
 * against few of them (the 7B down projection with float weights; 0.5B's down projection) otherwise leave too
 * few warps to fill the device. RW rows per warp (2: staged rows of one chunk, both fetched before the
 * previous kernel has finished, in the two register sets that longer rows use for their next two chunks;
 * or direct float rows of one round, gemv_float_two_rows): half the warps, every weight byte in flight at
 * once. */
template <int T, int NT, bool Q8, int KS, int RW, bool RMS>
__device__ __forceinline__ void gemv_rows(const GemvOuts &o, size_t row_bytes, int cols, const float *x,
                                          const CkQ8 &xq, int accumulate, const CkRmsIn &rin) {
    static_assert(!RMS || (KS == 1 && !Q8), "the norm inside: float inputs, a warp a row");
    __shared__ __align__(16) float xs[RMS ? CK_RMS_IN_MAX : 1];
    if constexpr (RMS) x = xs;
    constexpr bool staged = !direct_rows<T, Q8>();
    static_assert(KS == 1 || KS == GEMV_WARPS, "a row per warp, or a block per row");
    static_assert(RW == 1 || (RW == 2 && KS == 1), "two rows a warp: rows of one chunk or one round");
    constexpr int CB = staged ? Chunk<T>::bytes : 16;
    __shared__ __align__(16) uint8_t stage[GEMV_WARPS][(CB + 15) / 16 * 16 + 16];
    __shared__ float part[KS > 1 ? GEMV_WARPS : 1][NT];
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, sub = warp % KS;
    const int g = (blockIdx.x * (GEMV_WARPS / KS) + warp / KS) * RW, end = o.end[CK_GEMV_MAX_OUT - 1];
    /* unused entries repeat the last end; with KS > 1 the whole block (one row) returns alike */
    if (g >= end) {
        if constexpr (RMS) rms_in_block(rin, cols, xs);
        return;
    }
    const int n_rows = RW == 2 && g + 1 < end ? 2 : 1;
    GemvRow r[RW];
#pragma unroll
    for (int k = 0; k < RW; k++) r[k] = gemv_row(o, k < n_rows ? g + k : g, row_bytes);
    const int units = cols / 32;
    float acc[RW][NT];
#pragma unroll
    for (int k = 0; k < RW; k++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[k][t] = 0.0f;
    /* what the lane that writes a row's outputs adds to them, loaded early so that no round trip follows the
     * sums: the row's bias (a weight: before the previous kernel has finished) and, when accumulating, the
     * outputs as they are (right after pdl_begin) */
    const bool writer = lane == 0 && sub == 0;
    float bias[RW], res[RW][NT];
#pragma unroll
    for (int k = 0; k < RW; k++) {
        bias[k] = writer && r[k].bias ? r[k].bias[r[k].row] : 0.0f;
#pragma unroll
        for (int t = 0; t < NT; t++) res[k][t] = 0.0f;
    }
    auto ready = [&]() {
        if constexpr (RMS) rms_in_block(rin, cols, xs);
        else pdl_begin();
        if (writer && accumulate)
#pragma unroll
            for (int k = 0; k < RW; k++)
#pragma unroll
                for (int t = 0; t < NT; t++) res[k][t] = r[k].y[(size_t)t * r[k].rows + r[k].row];
    };
    if constexpr (staged && RW == 2) { /* units <= WARP: one chunk a row */
        ChunkRegs<CB> ra, rb;
        chunk_fetch(ra, r[0].w, chunk_bytes<T>(units, 0), lane);
        if (n_rows == 2) chunk_fetch(rb, r[RW - 1].w, chunk_bytes<T>(units, 0), lane);
        ready();
        gemv_chunk<T, NT, Q8>(ra, stage[warp], r[0].w, units, 0, WARP, lane, x, xq, cols, acc[0]);
        if (n_rows == 2) gemv_chunk<T, NT, Q8>(rb, stage[warp], r[RW - 1].w, units, 0, WARP, lane, x, xq, cols, acc[RW - 1]);
    } else if constexpr (staged) {
        /* two chunks' loads in flight: each register set is stored to shared memory, refilled with the warp's
         * chunk two ahead, then its chunk is used */
        const uint8_t *wr = r[0].w;
        const int u1 = sub * WARP, step = KS * WARP;
        ChunkRegs<CB> ra, rb;
        if (u1 < units) chunk_fetch(ra, chunk_src<T>(wr, u1), chunk_bytes<T>(units, u1), lane);
        if (u1 + step < units) chunk_fetch(rb, chunk_src<T>(wr, u1 + step), chunk_bytes<T>(units, u1 + step), lane);
        ready(); /* the first chunks of weights are on their way */
        for (int u0 = u1; u0 < units; u0 += 2 * step) {
            gemv_chunk<T, NT, Q8>(ra, stage[warp], wr, units, u0, 2 * step, lane, x, xq, cols, acc[0]);
            if (u0 + step < units)
                gemv_chunk<T, NT, Q8>(rb, stage[warp], wr, units, u0 + step, 2 * step, lane, x, xq, cols, acc[0]);
        }
    } else {
        const uint8_t *rows[RW]; /* RW == 2 with one row left: that row twice */
#pragma unroll
        for (int k = 0; k < RW; k++) rows[k] = r[k].w;
        gemv_direct_rows<T, NT, Q8, RW, RMS>(rows, units, sub * WARP + lane, KS * WARP, x, xq, cols, acc, ready);
    }
#pragma unroll
    for (int k = 0; k < RW; k++) {
        if (k >= n_rows) break;
        float sum[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) sum[t] = warp_sum(acc[k][t]);
        if constexpr (KS > 1) { /* the row's first warp adds the others' sums in order */
            if (lane == 0)
#pragma unroll
                for (int t = 0; t < NT; t++) part[warp][t] = sum[t];
            __syncthreads(); /* every warp of the block (its one row) gets here */
            if (sub != 0) return;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                sum[t] = part[warp][t];
#pragma unroll
                for (int j = 1; j < KS; j++) sum[t] += part[warp + j][t];
            }
        }
        if (lane == 0)
#pragma unroll
            for (int t = 0; t < NT; t++) {
                const float v = sum[t] + bias[k];
                r[k].y[(size_t)t * r[k].rows + r[k].row] = accumulate ? res[k][t] + v : v;
            }
    }
}

/* The product's kernel, and the same with the RMSNorm of its input inside (rms_in_block; held to 128
 * registers, 16 warps an SM, as the plain F16 kernel: the norm's values had taken it to 162). Two kernels, not
 * one with a conditional bound: an explicit bound of 1 block changed the plain kernels' register choices (7B
 * Q4_K_M: Q6_K rows 64 -> 76 registers, decode 454 -> 444 tok/s). */
template <int T, int NT, bool Q8, int KS, int RW>
__global__ void __launch_bounds__(GEMV_WARPS *WARP)
    gemv_kernel(GemvOuts o, size_t row_bytes, int cols, const float *x, CkQ8 xq, int accumulate, CkRmsIn rin) {
    TL_KERNEL();
    gemv_rows<T, NT, Q8, KS, RW, false>(o, row_bytes, cols, x, xq, accumulate, rin);
}

template <int T, int NT, bool Q8, int KS, int RW>
__global__ void __launch_bounds__(GEMV_WARPS *WARP, 4)
    gemv_rms_kernel(GemvOuts o, size_t row_bytes, int cols, const float *x, CkQ8 xq, int accumulate, CkRmsIn rin) {
    TL_KERNEL();
    gemv_rows<T, NT, Q8, KS, RW, true>(o, row_bytes, cols, x, xq, accumulate, rin);
}

/* gate and up rows r together, out = silu(gate . x) * (up . x): the SwiGLU input of the FFN in one pass.
 * RW rows per warp as gemv_kernel's (2: staged rows of one chunk, or direct float rows of one round:
 * gemv_two_rows). */
template <int T, int NT, bool Q8, int RW, bool RMS>
__device__ __forceinline__ void gemv_swiglu_rows(const uint8_t *wg, const uint8_t *wu, size_t row_bytes, int rows,
                                                 int cols, const float *x, const CkQ8 &xq, float *y,
                                                 const CkRmsIn &rin) {
    static_assert(!RMS || (!Q8 && direct_rows<T, Q8>()), "the norm inside: float inputs");
    __shared__ __align__(16) float xs[RMS ? CK_RMS_IN_MAX : 1];
    if constexpr (RMS) x = xs;
    auto ready = [&] {
        if constexpr (RMS) rms_in_block(rin, cols, xs);
        else pdl_begin();
    };
    constexpr bool staged = !direct_rows<T, Q8>();
    static_assert(RW == 1 || RW == 2, "one or two rows of each a warp");
    constexpr int CB = staged ? Chunk<T>::bytes : 16;
    __shared__ __align__(16) uint8_t stage[GEMV_WARPS][2][(CB + 15) / 16 * 16 + 16];
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const int row = (blockIdx.x * GEMV_WARPS + warp) * RW;
    if (row >= rows) {
        if constexpr (RMS) rms_in_block(rin, cols, xs);
        return;
    }
    const int units = cols / 32, n_rows = RW == 2 && row + 1 < rows ? 2 : 1;
    float acc[RW][2][NT]; /* gate, up */
#pragma unroll
    for (int k = 0; k < RW; k++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[k][0][t] = acc[k][1][t] = 0.0f;
    const uint8_t *rg = wg + (size_t)row * row_bytes, *ru = wu + (size_t)row * row_bytes;
    if constexpr (staged && RW == 2) { /* units <= WARP: each register set holds a row's one chunk */
        const uint8_t *rg1 = rg + row_bytes, *ru1 = ru + row_bytes;
        ChunkRegs<CB> ga, gb, ua, ub;
        chunk_fetch(ga, rg, chunk_bytes<T>(units, 0), lane);
        chunk_fetch(ua, ru, chunk_bytes<T>(units, 0), lane);
        if (n_rows == 2) {
            chunk_fetch(gb, rg1, chunk_bytes<T>(units, 0), lane);
            chunk_fetch(ub, ru1, chunk_bytes<T>(units, 0), lane);
        }
        pdl_begin();
        gemv_chunk<T, NT, Q8>(ga, stage[warp][0], rg, units, 0, WARP, lane, x, xq, cols, acc[0][0]);
        gemv_chunk<T, NT, Q8>(ua, stage[warp][1], ru, units, 0, WARP, lane, x, xq, cols, acc[0][1]);
        if (n_rows == 2) {
            gemv_chunk<T, NT, Q8>(gb, stage[warp][0], rg1, units, 0, WARP, lane, x, xq, cols, acc[RW - 1][0]);
            gemv_chunk<T, NT, Q8>(ub, stage[warp][1], ru1, units, 0, WARP, lane, x, xq, cols, acc[RW - 1][1]);
        }
    } else if constexpr (staged) {
        float(&ag)[NT] = acc[0][0], (&au)[NT] = acc[0][1];
        ChunkRegs<CB> ga, gb, ua, ub; /* two chunks of each row in flight, as gemv_kernel */
        chunk_fetch(ga, chunk_src<T>(rg, 0), chunk_bytes<T>(units, 0), lane);
        chunk_fetch(ua, chunk_src<T>(ru, 0), chunk_bytes<T>(units, 0), lane);
        if (WARP < units) {
            chunk_fetch(gb, chunk_src<T>(rg, WARP), chunk_bytes<T>(units, WARP), lane);
            chunk_fetch(ub, chunk_src<T>(ru, WARP), chunk_bytes<T>(units, WARP), lane);
        }
        pdl_begin();
        for (int u0 = 0; u0 < units; u0 += 2 * WARP) {
            gemv_chunk<T, NT, Q8>(ga, stage[warp][0], rg, units, u0, 2 * WARP, lane, x, xq, cols, ag);
            gemv_chunk<T, NT, Q8>(ua, stage[warp][1], ru, units, u0, 2 * WARP, lane, x, xq, cols, au);
            if (u0 + WARP < units) {
                gemv_chunk<T, NT, Q8>(gb, stage[warp][0], rg, units, u0 + WARP, 2 * WARP, lane, x, xq, cols, ag);
                gemv_chunk<T, NT, Q8>(ub, stage[warp][1], ru, units, u0 + WARP, 2 * WARP, lane, x, xq, cols, au);
            }
        }
    } else if constexpr (RW == 2) { /* direct rows of one round: both pairs' loads in flight together (a lone
                                       * row is read twice, its second sums dropped) */
        const uint8_t *rg1 = n_rows == 2 ? rg + row_bytes : rg, *ru1 = n_rows == 2 ? ru + row_bytes : ru;
        const uint8_t *const rows4[4] = {rg, ru, rg1, ru1};
        gemv_direct_rows<T, NT, Q8, 4, RMS>(rows4, units, lane, WARP, x, xq, cols,
                                            reinterpret_cast<float(&)[4][NT]>(acc), ready);
    } else {
        const uint8_t *const rows2[2] = {rg, ru};
        gemv_direct_rows<T, NT, Q8, 2, RMS>(rows2, units, lane, WARP, x, xq, cols, acc[0], ready);
    }
#pragma unroll
    for (int k = 0; k < RW; k++) {
        if (k >= n_rows) break;
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float g = warp_sum(acc[k][0][t]), up = warp_sum(acc[k][1][t]);
            if (lane == 0) y[(size_t)t * rows + xi_at(row + k, rows)] = g / (1.0f + expf(-g)) * up;
        }
    }
}

template <int T, int NT, bool Q8, int RW>
__global__ void __launch_bounds__(GEMV_WARPS *WARP)
    gemv_swiglu_kernel(const uint8_t *wg, const uint8_t *wu, size_t row_bytes, int rows, int cols, const float *x,
                       CkQ8 xq, float *y, CkRmsIn rin) {
    TL_KERNEL();
    gemv_swiglu_rows<T, NT, Q8, RW, false>(wg, wu, row_bytes, rows, cols, x, xq, y, rin);
}

template <int T, int NT, bool Q8, int RW>
__global__ void __launch_bounds__(GEMV_WARPS *WARP, 4)
    gemv_swiglu_rms_kernel(const uint8_t *wg, const uint8_t *wu, size_t row_bytes, int rows, int cols, const float *x,
                           CkQ8 xq, float *y, CkRmsIn rin) {
    TL_KERNEL();
    gemv_swiglu_rows<T, NT, Q8, RW, true>(wg, wu, row_bytes, rows, cols, x, xq, y, rin);
}

/* The activation rows t0 .. of an 8-bit input */
static CkQ8 q8_rows(const CkQ8 &q, int t0, int n) {
    if (!q.qs) return q;
    return CkQ8{q.qs + (size_t)t0 * n, q.d + (size_t)t0 * (n / 32), q.sum + (size_t)t0 * (n / 32)};
}

/* Staged rows of one chunk (up to 32 units) take two a warp (gemv_kernel's RW), and so do float gate/up
 * pairs of one round (gemv_swiglu_kernel's RW). H100, 0.5B (rows of 28 units, when its Q5_0 and Q8_0 rows
 * were staged): Q4_K_M decode 1,166 -> 1,190 tok/s, Q8_0 1,170 -> 1,195; the gate/up kernel went from 1.84
 * waves to 0.66. F16 gate/up (4,864 pairs: 2.3 waves of one pair a warp, 128 registers a thread, 16 warps an
 * SM, 3.6 KB in flight each): 0.5B F16 decode 1,444 -> 1,469 tok/s (medians of 4, one call). */
static int gemv_two_rows(int units) {
    return units <= WARP;
}

static int sm_count();

/* Float rows of one round (a unit a lane at most) take two a warp when they are many (the 0.5B F16 LM head:
 * 151,936 rows of 28 units): a warp of one row has 1.8 KB in flight, and the device holds too few warps
 * (128 registers a thread: 16 an SM) to cover the memory's latency with that; the second row costs no
 * registers beyond its accumulator. H100, 0.5B F16 decode 1,434 -> 1,468 tok/s (medians of 4). The quantized
 * layouts hold a set of registers a row (Q8_0: 48 -> 80, 0.5B Q8_0 decode 1,882 -> 1,826). */
static int gemv_float_two_rows(int units, int rows) {
    return units <= WARP && rows >= 16 * GEMV_WARPS * sm_count();
}

template <int T, int NT>
static void gemv_swiglu_launch(const CkMat *g, const CkMat *u, const float *x, const CkQ8 *xq, int t0, float *y,
                               cudaStream_t s) {
    const int rows = (int)g->rows, cols = (int)g->cols;
    const uint8_t *wg = (const uint8_t *)g->data, *wu = (const uint8_t *)u->data;
    const float *xs = x + (size_t)t0 * cols;
    float *ys = y + (size_t)t0 * rows;
    if constexpr (quantized_type<T>()) {
        if (xq && xq->qs) {
            constexpr int RW = direct_rows<T, true>() ? 1 : 2; /* two one-chunk rows a warp: staged rows */
            if (RW == 2 && gemv_two_rows(cols / 32))
                launch((gemv_swiglu_kernel<T, NT, true, RW>), blocks_for(rows, RW * GEMV_WARPS), GEMV_WARPS * WARP, s, wg,
                       wu, g->row_bytes, rows, cols, xs, q8_rows(*xq, t0, cols), ys, CkRmsIn{});
            else
                launch((gemv_swiglu_kernel<T, NT, true, 1>), blocks_for(rows, GEMV_WARPS), GEMV_WARPS * WARP, s, wg, wu,
                       g->row_bytes, rows, cols, xs, q8_rows(*xq, t0, cols), ys, CkRmsIn{});
            return;
        }
    }
    if constexpr (!quantized_type<T>()) {
        if (NT == 1 && gemv_two_rows(cols / 32)) { /* two pairs a warp */
            launch((gemv_swiglu_kernel<T, NT, false, NT == 1 ? 2 : 1>), blocks_for(rows, 2 * GEMV_WARPS),
                   GEMV_WARPS * WARP, s, wg, wu, g->row_bytes, rows, cols, xs, CkQ8{}, ys, CkRmsIn{});
            return;
        }
    }
    launch((gemv_swiglu_kernel<T, NT, false, 1>), blocks_for(rows, GEMV_WARPS), GEMV_WARPS * WARP, s, wg, wu,
           g->row_bytes, rows, cols, xs, CkQ8{}, ys, CkRmsIn{});
}

template <int T>
static void gemv_swiglu_type(const CkMat *g, const CkMat *u, const float *x, const CkQ8 *xq, int n, float *y,
                             cudaStream_t s) {
    for (int t0 = 0; t0 < n;) {
        const int left = n - t0;
        if (left >= 8) gemv_swiglu_launch<T, 8>(g, u, x, xq, t0, y, s), t0 += 8;
        else if (left >= 4) gemv_swiglu_launch<T, 4>(g, u, x, xq, t0, y, s), t0 += 4;
        else if (left >= 2) gemv_swiglu_launch<T, 2>(g, u, x, xq, t0, y, s), t0 += 2;
        else gemv_swiglu_launch<T, 1>(g, u, x, xq, t0, y, s), t0 += 1;
    }
}

/* the block-shared norm's products: F16 and BF16 weights (F32's gate/up pairs, held to 128 registers with
 * the norm, spilled 444 bytes a thread), one entry, rows of at most CK_RMS_IN_MAX values */
static int rms_in_ok(uint32_t type, int64_t cols, int T) {
    return (type == QT_F16 || type == QT_BF16) && T == 1 && cols % 32 == 0 && cols <= CK_RMS_IN_MAX;
}

template <int T>
static void gemv_swiglu_rms_type(const CkMat *g, const CkMat *u, const CkRmsIn &in, float *y, cudaStream_t s) {
    if constexpr (!quantized_type<T>()) {
        const int rows = (int)g->rows, cols = (int)g->cols, rw = gemv_two_rows(cols / 32) ? 2 : 1;
        auto go = [&](auto kernel) {
            launch(kernel, blocks_for(rows, rw * GEMV_WARPS), GEMV_WARPS * WARP, s, (const uint8_t *)g->data,
                   (const uint8_t *)u->data, g->row_bytes, rows, cols, (const float *)NULL, CkQ8{}, y, in);
        };
        if (rw == 2) go(gemv_swiglu_rms_kernel<T, 1, false, 2>);
        else go(gemv_swiglu_rms_kernel<T, 1, false, 1>);
    }
}

extern "C" int ck_gemv_swiglu_rms(const CkMat *gate, const CkMat *up, const CkRmsIn *in, int T, float *y,
                                  cudaStream_t s) {
    if (gate->type != up->type || gate->rows != up->rows || gate->cols != up->cols || gate->row_bytes != up->row_bytes ||
        !rms_in_ok(gate->type, gate->cols, T))
        return -1;
    switch (gate->type) {
    case QT_F16: gemv_swiglu_rms_type<QT_F16>(gate, up, *in, y, s); return 0;
    case QT_BF16: gemv_swiglu_rms_type<QT_BF16>(gate, up, *in, y, s); return 0;
    }
    return -1;
}

extern "C" int ck_gemv_swiglu(const CkMat *gate, const CkMat *up, const float *x, const CkQ8 *xq, int T, float *y,
                              cudaStream_t s) {
    if (gate->type != up->type || gate->rows != up->rows || gate->cols != up->cols || gate->row_bytes != up->row_bytes)
        return -1;
    switch (gate->type) {
#define CASE(Q)                                           \
    case Q:                                               \
        gemv_swiglu_type<Q>(gate, up, x, xq, T, y, s);    \
        return 0;
        ORCD_FOR_EACH_DEVICE_TYPE(CASE)
#undef CASE
    }
    return -1;
}

/* Warps per row of a float-weight GEMV (gemv_kernel's KS). H100, 7B F16: the down projection (592 units a
 * row) 61 -> 57 us with 4; rows of 112 units (Q/K/V, O) were slower with 2 or 4, and 0.5B's rows lost 8-25%. */
static int gemv_float_split(int units) {
    return units >= 256 ? GEMV_WARPS : 1;
}

static int sm_count() {
    static int n;
    if (!n) {
        int dev = 0;
        cudaGetDevice(&dev);
        if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1) n = 1;
    }
    return n;
}

/* Warps per quantized row (8-bit activations): GEMV_WARPS when each has a chunk and a warp a row would leave
 * fewer than 8 warps an SM (0.5B's down projection: 896 rows of 152 units, 9.0 -> 6.5 us under ncu; decode
 * 1,166 -> 1,213 tok/s on Q4_K_M), else 1 (the 7B shapes: more warps a row were slower there). */
static int gemv_quant_split(int units, int rows) {
    return units >= GEMV_WARPS * WARP && rows < 8 * sm_count() ? GEMV_WARPS : 1;
}

template <int T, int NT>
static void gemv_launch(GemvOuts o, size_t row_bytes, int cols, const float *x, const CkQ8 *xq, int t0,
                        int accumulate, cudaStream_t s) {
    const int rows = o.end[o.n - 1];
    for (int i = 0; i < o.n; i++) o.y[i] += (size_t)t0 * (o.end[i] - (i ? o.end[i - 1] : 0));
    const float *xs = x + (size_t)t0 * cols;
    if constexpr (quantized_type<T>()) {
        if (xq && xq->qs) {
            const CkQ8 q = q8_rows(*xq, t0, cols);
            constexpr int RW = direct_rows<T, true>() ? 1 : 2; /* two one-chunk rows a warp: staged rows */
            if (RW == 2 && gemv_two_rows(cols / 32))
                launch((gemv_kernel<T, NT, true, 1, RW>), blocks_for(rows, RW * GEMV_WARPS), GEMV_WARPS * WARP, s, o,
                       row_bytes, cols, xs, q, accumulate, CkRmsIn{});
            else if (gemv_quant_split(cols / 32, rows) == GEMV_WARPS)
                launch((gemv_kernel<T, NT, true, GEMV_WARPS, 1>), rows, GEMV_WARPS * WARP, s, o, row_bytes, cols, xs, q,
                       accumulate, CkRmsIn{});
            else
                launch((gemv_kernel<T, NT, true, 1, 1>), blocks_for(rows, GEMV_WARPS), GEMV_WARPS * WARP, s, o,
                       row_bytes, cols, xs, q, accumulate, CkRmsIn{});
            return;
        }
    }
    if constexpr (!quantized_type<T>()) {
        if (NT == 1 && gemv_float_two_rows(cols / 32, rows)) {
            launch((gemv_kernel<T, NT, false, 1, NT == 1 ? 2 : 1>), blocks_for(rows, 2 * GEMV_WARPS), GEMV_WARPS * WARP,
                   s, o, row_bytes, cols, xs, CkQ8{}, accumulate, CkRmsIn{});
            return;
        }
        if (gemv_float_split(cols / 32) == GEMV_WARPS) {
            launch((gemv_kernel<T, NT, false, GEMV_WARPS, 1>), rows, GEMV_WARPS * WARP, s, o, row_bytes, cols, xs,
                   CkQ8{}, accumulate, CkRmsIn{});
            return;
        }
    }
    launch((gemv_kernel<T, NT, false, 1, 1>), blocks_for(rows, GEMV_WARPS), GEMV_WARPS * WARP, s, o, row_bytes, cols,
           xs, CkQ8{}, accumulate, CkRmsIn{});
}

template <int T>
static void gemv_type(const GemvOuts &o, size_t row_bytes, int cols, const float *x, const CkQ8 *xq, int n,
                      int accumulate, cudaStream_t s) {
    for (int t0 = 0; t0 < n;) {
        const int left = n - t0;
        if (left >= 8) gemv_launch<T, 8>(o, row_bytes, cols, x, xq, t0, accumulate, s), t0 += 8;
        else if (left >= 4) gemv_launch<T, 4>(o, row_bytes, cols, x, xq, t0, accumulate, s), t0 += 4;
        else if (left >= 2) gemv_launch<T, 2>(o, row_bytes, cols, x, xq, t0, accumulate, s), t0 += 2;
        else gemv_launch<T, 1>(o, row_bytes, cols, x, xq, t0, accumulate, s), t0 += 1;
    }
}

/* Up to CK_GEMV_MAX_OUT weights of one type and row length as one launch's outputs; -1 when they differ. */
static int gemv_outs(const CkGemvOut *outs, int n_outs, GemvOuts *o) {
    if (n_outs < 1 || n_outs > CK_GEMV_MAX_OUT) return -1;
    const CkMat *m = outs[0].w;
    *o = GemvOuts{};
    o->n = n_outs;
    for (int i = 0; i < n_outs; i++) {
        const CkMat *w = outs[i].w;
        if (w->type != m->type || w->cols != m->cols || w->row_bytes != m->row_bytes) return -1;
        o->w[i] = (const uint8_t *)w->data, o->bias[i] = outs[i].bias, o->y[i] = outs[i].y;
        o->end[i] = (i ? o->end[i - 1] : 0) + (int)w->rows;
    }
    for (int i = n_outs; i < CK_GEMV_MAX_OUT; i++) o->end[i] = o->end[n_outs - 1];
    return 0;
}

extern "C" int ck_gemv_multi(const CkGemvOut *outs, int n_outs, const float *x, const CkQ8 *xq, int T, int accumulate,
                             cudaStream_t s) {
    GemvOuts o;
    if (gemv_outs(outs, n_outs, &o)) return -1;
    const CkMat *m = outs[0].w;
    switch (m->type) {
#define CASE(Q)                                                                  \
    case Q:                                                                      \
        gemv_type<Q>(o, m->row_bytes, (int)m->cols, x, xq, T, accumulate, s); \
        return 0;
        ORCD_FOR_EACH_DEVICE_TYPE(CASE)
#undef CASE
    }
    return -1;
}

template <int T> static void gemv_rms_type(const GemvOuts &o, size_t row_bytes, int cols, const CkRmsIn &in,
                                          cudaStream_t s) {
    if constexpr (!quantized_type<T>()) {
        const int rows = o.end[o.n - 1];
        if (gemv_float_two_rows(cols / 32, rows))
            launch(gemv_rms_kernel<T, 1, false, 1, 2>, blocks_for(rows, 2 * GEMV_WARPS), GEMV_WARPS * WARP, s, o,
                   row_bytes, cols, (const float *)NULL, CkQ8{}, 0, in);
        else
            launch(gemv_rms_kernel<T, 1, false, 1, 1>, blocks_for(rows, GEMV_WARPS), GEMV_WARPS * WARP, s, o,
                   row_bytes, cols, (const float *)NULL, CkQ8{}, 0, in);
    }
}

extern "C" int ck_gemv_multi_rms(const CkGemvOut *outs, int n_outs, const CkRmsIn *in, int T, cudaStream_t s) {
    GemvOuts o;
    if (gemv_outs(outs, n_outs, &o) || !rms_in_ok(outs[0].w->type, outs[0].w->cols, T)) return -1;
    const CkMat *m = outs[0].w;
    switch (m->type) {
    case QT_F16: gemv_rms_type<QT_F16>(o, m->row_bytes, (int)m->cols, *in, s); return 0;
    case QT_BF16: gemv_rms_type<QT_BF16>(o, m->row_bytes, (int)m->cols, *in, s); return 0;
    }
    return -1;
}

extern "C" void ck_gemv(const CkMat *m, const float *x, const CkQ8 *xq, int T, float *y, const float *bias,
                        int accumulate, cudaStream_t s) {
    const CkGemvOut out = {m, y, bias};
    ck_gemv_multi(&out, 1, x, xq, T, accumulate, s);
}

/* ---- tensor-core products for larger T (batched decode, prefill) ----
 * A block computes a tile of TC_BM weight rows x TC_BN activation rows. Per step along the rows it
 * dequantizes TC_BK values of each of its weight rows (unit_load, the GEMV's layouts) into shared memory as
 * fp16 and converts the same span of its activation rows to fp16; four warps then multiply the tiles on the
 * tensor cores (wmma 16x16x16, fp32 accumulation), each warp a 32 x 32 part. The weight never exists
 * dequantized outside shared memory. */

#define TC_BM 64
#define TC_BN 64
#define TC_BK 128             /* 4 units */
#define TC_LD (TC_BK + 8)     /* shared row length in halves (padding against bank conflicts) */
#define TC_CLD (TC_BM + 4)    /* the result tile's column length in floats */
#define TC_THREADS 128
static_assert(TC_BN * TC_CLD * 4 <= 2 * TC_BM * TC_LD * 2, "the result tile fits where the inputs were");

/* Up to CK_GEMV_MAX_OUT weights of one type and row length in one launch: weight i's row blocks are the
 * launch's blocks rb_end[i-1] .. rb_end[i] (unused entries repeat the last); split partial sums of output i
 * at part_off[i]. Chosen by selects, not indexing, so the parameters stay in constant memory. */
struct GemmOuts {
    const uint8_t *w[CK_GEMV_MAX_OUT];
    float *y[CK_GEMV_MAX_OUT];
    const float *bias[CK_GEMV_MAX_OUT];
    int rows[CK_GEMV_MAX_OUT], rb_end[CK_GEMV_MAX_OUT];
    size_t part_off[CK_GEMV_MAX_OUT];
    int n;
};
static_assert(CK_GEMV_MAX_OUT == 3, "the selects below name three outputs");
#define GEMM_SEL(o, f, i) ((i) == 0 ? (o).f[0] : (i) == 1 ? (o).f[1] : (o).f[2])

template <int Q>
__global__ void __launch_bounds__(TC_THREADS) gemm_tc_kernel(GemmOuts o, size_t row_bytes, int cols, const float *x,
                                                             int T, float *part, int accumulate, int split_cols) {
    TL_KERNEL();
    pdl_begin();
    using namespace nvcuda;
    __shared__ __align__(32) unsigned char smem[2 * TC_BM * TC_LD * 2];
    __half *as = (__half *)smem, *bs = as + TC_BM * TC_LD;
    const int oi = (int)(blockIdx.x >= (unsigned)o.rb_end[0]) + (int)(blockIdx.x >= (unsigned)o.rb_end[1]);
    const uint8_t *w = GEMM_SEL(o, w, oi);
    float *y = GEMM_SEL(o, y, oi);
    const float *bias = GEMM_SEL(o, bias, oi);
    const int rows = GEMM_SEL(o, rows, oi), rb0 = oi == 0 ? 0 : oi == 1 ? o.rb_end[0] : o.rb_end[1];
    const int r0 = ((int)blockIdx.x - rb0) * TC_BM, t0 = blockIdx.y * TC_BN, tid = threadIdx.x, warp = tid / WARP;
    const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32; /* the warp's part: rows wm.., activations wn.. */
    const int units = cols / 32;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
    /* split_cols < cols: this block's part of the rows (blockIdx.z), its sums into its own partial y */
    const int k_begin = blockIdx.z * split_cols, k_end = min(cols, k_begin + split_cols);
    if (split_cols < cols) y = part + GEMM_SEL(o, part_off, oi) + (size_t)blockIdx.z * T * rows, bias = NULL, accumulate = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += TC_BK) {
        /* weights: TC_BM rows x 4 units, two units per thread */
#pragma unroll
        for (int h = 0; h < TC_BM * 4 / TC_THREADS; h++) {
            const int i = tid + TC_THREADS * h, r = i >> 2, uu = i & 3, u = k0 / 32 + uu;
            uint4 *dst = (uint4 *)(as + r * TC_LD + uu * 32);
            if (r0 + r < rows && u < units && u * 32 < k_end) {
                float v[32];
                unit_load<Q>(w + (size_t)(r0 + r) * row_bytes, u, units, v);
                store_half32(dst, v);
            } else {
#pragma unroll
                for (int k = 0; k < 4; k++) dst[k] = make_uint4(0, 0, 0, 0);
            }
        }
        /* activations: TC_BN rows x TC_BK values, 4 at a time */
#pragma unroll
        for (int h = 0; h < TC_BN * TC_BK / 4 / TC_THREADS; h++) {
            const int i = tid + TC_THREADS * h, t = i / (TC_BK / 4), c = i % (TC_BK / 4) * 4;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (t0 + t < T && k0 + c < k_end) v = *(const float4 *)(x + (size_t)(t0 + t) * cols + k0 + c);
            __half2 *dst = (__half2 *)(bs + t * TC_LD + c);
            dst[0] = __floats2half2_rn(v.x, v.y), dst[1] = __floats2half2_rn(v.z, v.w);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b[2];
#pragma unroll
            for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], as + (wm + 16 * i) * TC_LD + kk, TC_LD);
#pragma unroll
            for (int j = 0; j < 2; j++) wmma::load_matrix_sync(b[j], bs + (wn + 16 * j) * TC_LD + kk, TC_LD);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    /* the result tile through shared memory (weight row m, activation row n at cs[n * TC_CLD + m]), then
     * out with bias and accumulation, consecutive threads on consecutive outputs */
    float *cs = (float *)smem;
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(cs + (wn + 16 * j) * TC_CLD + wm + 16 * i, acc[i][j], TC_CLD, wmma::mem_col_major);
    __syncthreads();
    const int m = tid % TC_BM;
    if (r0 + m >= rows) return;
    const float b = bias ? bias[r0 + m] : 0.0f;
    for (int n = tid / TC_BM; n < TC_BN && t0 + n < T; n += TC_THREADS / TC_BM) {
        float *o = y + (size_t)(t0 + n) * rows + r0 + m;
        const float v = cs[n * TC_CLD + m] + b;
        *o = accumulate ? *o + v : v;
    }
}

/* y_i = (y_i when accumulate) + bias_i + the splits' partial sums, in split order; element e of the launch
 * is output i's element e - T * (rows of the outputs before i) */
__global__ void gemm_reduce_kernel(GemmOuts o, const float *part, int splits, int T, int accumulate) {
    TL_KERNEL();
    pdl_begin();
    int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int oi = 0;
    for (; oi < o.n - 1 && e >= (int64_t)T * GEMM_SEL(o, rows, oi); oi++) e -= (int64_t)T * GEMM_SEL(o, rows, oi);
    const int rows = GEMM_SEL(o, rows, oi);
    const int64_t n = (int64_t)T * rows;
    if (e >= n) return;
    const float *p = part + GEMM_SEL(o, part_off, oi);
    float v = 0.0f;
    for (int k = 0; k < splits; k++) v += p[k * n + e];
    const float *bias = GEMM_SEL(o, bias, oi);
    float *y = GEMM_SEL(o, y, oi);
    if (bias) v += bias[e % rows];
    y[e] = accumulate ? y[e] + v : v;
}

extern "C" int ck_gemm_multi(const CkGemvOut *outs, int n_outs, const float *x, int T, int accumulate, float *part,
                             size_t part_floats, cudaStream_t s) {
    if (n_outs < 1 || n_outs > CK_GEMV_MAX_OUT || T < 1) return -1;
    const CkMat *m = outs[0].w;
    if (m->cols % 32) return -1;
    if (!part) part_floats = 0;
    GemmOuts o = {};
    o.n = n_outs;
    int64_t all_rows = 0;
    for (int i = 0; i < n_outs; i++) {
        const CkMat *w = outs[i].w;
        if (w->type != m->type || w->cols != m->cols || w->row_bytes != m->row_bytes || w->rows > INT32_MAX) return -1;
        o.w[i] = (const uint8_t *)w->data, o.y[i] = outs[i].y, o.bias[i] = outs[i].bias, o.rows[i] = (int)w->rows;
        o.rb_end[i] = (i ? o.rb_end[i - 1] : 0) + (int)blocks_for(w->rows, TC_BM);
        all_rows += w->rows;
    }
    for (int i = n_outs; i < CK_GEMV_MAX_OUT; i++) o.rb_end[i] = o.rb_end[n_outs - 1], o.rows[i] = 0;
    const int cols = (int)m->cols, steps = (cols + TC_BK - 1) / TC_BK;
    const unsigned tiles = (unsigned)o.rb_end[n_outs - 1] * blocks_for(T, TC_BN);
    /* too few tiles to fill the device: split the rows' length too, up to CK_GEMM_MAX_SPLITS parts of
     * whole steps, when the partial sums fit in part */
    int splits = 1;
    while (splits < CK_GEMM_MAX_SPLITS && tiles * splits < 256 && splits * 2 <= steps &&
           (size_t)splits * 2 * T * all_rows <= part_floats)
        splits *= 2;
    const int split_cols = (steps + splits - 1) / splits * TC_BK;
    splits = (cols + split_cols - 1) / split_cols;
    for (int i = 0; i < n_outs; i++) o.part_off[i] = i ? o.part_off[i - 1] + (size_t)splits * T * o.rows[i - 1] : 0;
    const dim3 grid(o.rb_end[n_outs - 1], blocks_for(T, TC_BN), splits);
    switch (m->type) {
#define CASE(Q)                                                                                               \
    case Q:                                                                                                   \
        launch((gemm_tc_kernel<Q>), grid, TC_THREADS, s, o, m->row_bytes, cols, x, T, part, accumulate,           \
                                                      splits > 1 ? split_cols : cols);                        \
        break;
        ORCD_FOR_EACH_DEVICE_TYPE(CASE)
#undef CASE
    default:
        return -1;
    }
    if (splits > 1) launch(gemm_reduce_kernel, blocks_for((int64_t)T * all_rows, 256), 256, s, o, part, splits, T, accumulate);
    return 0;
}

extern "C" int ck_gemm(const CkMat *m, const float *x, int T, float *y, const float *bias, int accumulate, float *part,
                       size_t part_floats, cudaStream_t s) {
    const CkGemvOut out = {m, y, bias};
    return ck_gemm_multi(&out, 1, x, T, accumulate, part, part_floats, s);
}

/* ---- element-wise and row ops ---- */

__global__ void to_half_kernel(const float *x, __half *y, size_t n) {
    TL_KERNEL();
    pdl_begin();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half_rn(x[i]);
}

extern "C" void ck_to_half(const float *x, void *y, size_t n, cudaStream_t s) {
    launch(to_half_kernel, blocks_for((int64_t)n, 256), 256, s, x, (__half *)y, n);
}

__global__ void add_bias_kernel(float *y, const float *bias, int T, int n) {
    TL_KERNEL();
    pdl_begin();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (int64_t)T * n) y[i] += bias[i % n];
}

extern "C" void ck_add_bias(float *y, const float *bias, int T, int n, cudaStream_t s) {
    launch(add_bias_kernel, blocks_for((int64_t)T * n, 256), 256, s, y, bias, T, n);
}

__global__ void swiglu_kernel(float *g, const float *u, size_t n) {
    TL_KERNEL();
    pdl_begin();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

extern "C" void ck_swiglu(float *gate, const float *up, size_t n, cudaStream_t s) {
    launch(swiglu_kernel, blocks_for((int64_t)n, 256), 256, s, gate, up, n);
}

/* V values a thread in flight together: a round of an RMSNorm row */
template <int V> __device__ __forceinline__ void rms_load(float (&v)[V], const float *xr, int i0, int dim) {
#pragma unroll
    for (int k = 0; k < V; k++) v[k] = i0 + k * (int)blockDim.x < dim ? xr[i0 + k * blockDim.x] : 0.0f;
}

/* RMSNorm of row blockIdx.y. One block a row (gridDim.x == 1), or sliced: block b writes values b * blockDim.x
 * + threadIdx.x, each block reading the whole row for its sum of squares. A step of few entries is sliced:
 * each block's chain is one read, one barrier and one write, where one block a row re-read the row and
 * quantized its units a warp at a time in turn (the 7B row: 112 units, 32 warps). */
template <int V>
__global__ void rmsnorm_kernel(const float *x, const int32_t *src, const float *w, float *y, int dim, float eps,
                               int gemv_layout, CkQ8 q) {
    TL_KERNEL();
    const bool sliced = gridDim.x > 1;
    const int row = blockIdx.y, step = V * blockDim.x, lane = threadIdx.x % WARP;
    const int mine = blockIdx.x * blockDim.x + threadIdx.x; /* a sliced block's value */
    float wv[V]; /* the weights of the first round (sliced: the block's own), loaded while the previous kernel finishes */
    if (sliced) wv[0] = mine < dim ? w[mine] : 0.0f;
    else rms_load(wv, w, threadIdx.x, dim);
    pdl_begin();
    const float *xr = x + (size_t)(src ? src[row] : row) * dim;
    float ss = 0.0f, v[V], own = 0.0f;
    for (int i0 = threadIdx.x; i0 < dim; i0 += step) {
        rms_load(v, xr, i0, dim);
#pragma unroll
        for (int k = 0; k < V; k++) {
            ss += v[k] * v[k];
            if (i0 + k * (int)blockDim.x == mine) own = v[k];
        }
    }
    ss = block_sum(ss);
    const float scale = rsqrtf(ss / (float)dim + eps);
    float *yr = y + (size_t)row * dim;
    if (sliced) {
        if (mine - lane >= dim) return; /* the warp's values are all past the row */
        const float out = mine < dim ? own * scale * wv[0] : 0.0f;
        if (mine < dim) yr[gemv_layout ? xi_at(mine, dim) : mine] = out;
        if (q.qs) q8_store_unit(out, lane, q, row, dim, mine / 32); /* dim % 32 == 0: mine < dim */
        return;
    }
    for (int i0 = threadIdx.x; i0 - lane < dim; i0 += step) { /* whole warps: q8_store_unit */
        rms_load(v, xr, i0, dim);
        if (i0 != (int)threadIdx.x) rms_load(wv, w, i0, dim);
#pragma unroll
        for (int k = 0; k < V; k++) {
            const int i = i0 + k * blockDim.x;
            if (i - lane >= dim) break; /* the warp's values are all past the row */
            const float out = i < dim ? v[k] * scale * wv[k] : 0.0f;
            if (i < dim) yr[gemv_layout ? xi_at(i, dim) : i] = out;
            if (q.qs) q8_store_unit(out, lane, q, row, dim, i / 32); /* dim % 32 == 0: i < dim */
        }
    }
}

#define RMS_SLICE 256 /* values a sliced RMSNorm block writes */

extern "C" void ck_rmsnorm(const float *x, const int32_t *src, const float *w, float *y, int T, int dim, float eps,
                           int gemv_layout, const CkQ8 *q, cudaStream_t s) {
    const CkQ8 none = {NULL, NULL, NULL}, qq = q && dim % 32 == 0 ? *q : none;
    /* the row's latency, not its bandwidth, is the cost: sliced while the blocks re-reading their rows stay
     * few (steps of few entries), else one block a row, a thread per value up to 1024 */
    const int slices = (int)blocks_for(dim, RMS_SLICE);
    if (slices > 1 && (int64_t)T * slices <= 1024) {
        launch(rmsnorm_kernel<16>, dim3(slices, T), RMS_SLICE, s, x, src, w, y, dim, eps, gemv_layout, qq);
        return;
    }
    const int threads = dim >= 1024 ? 1024 : (dim + WARP - 1) / WARP * WARP;
    launch(rmsnorm_kernel<8>, dim3(1, T), threads, s, x, src, w, y, dim, eps, gemv_layout, qq);
}

__global__ void to_gemv_layout_kernel(const float *x, float *y, int n) {
    TL_KERNEL();
    pdl_begin();
    const float *xr = x + (size_t)blockIdx.y * n;
    float *yr = y + (size_t)blockIdx.y * n;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) yr[xi_at(i, n)] = xr[i];
}

extern "C" void ck_to_gemv_layout(const float *x, float *y, int T, int n, cudaStream_t s) {
    launch(to_gemv_layout_kernel, dim3(blocks_for(n, 256), T), 256, s, x, y, n);
}

/* ---- RoPE and the KV store ---- */

__device__ __forceinline__ size_t kv_offset(const CkKV kv, int layer, int seq, int pos, int kv_dim) {
    const int page = kv.table[(size_t)seq * kv.pages_per_slot + pos / kv.page_size];
    return (((size_t)layer * kv.n_pages + (size_t)page) * kv.page_size + (size_t)(pos % kv.page_size)) *
           (size_t)kv_dim;
}

/* Pair i (of rope_dim / 2) of a head: its two elements, NEOX (i, i + rope_dim / 2) or adjacent (2i, 2i + 1) */
__device__ __forceinline__ void rope_index(int i, int half, int neox, int &a, int &b) {
    a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
}

/* One pair rotated by the angle pos * inv_freq (rope_angle: its cosine and sine), rounded as written (no
 * contraction left to the compiler), so that ck_rope_kv and the attention's own RoPE (CkRope) give the same
 * bits. */
__device__ __forceinline__ void rope_angle(int pos, float inv_freq, float &c, float &sn) {
    const float angle = (float)pos * inv_freq;
    c = cosf(angle), sn = sinf(angle);
}

__device__ __forceinline__ void rope_rotate(float &x0, float &x1, float c, float sn) {
    const float a = x0, b = x1;
    x0 = __fmaf_rn(a, c, -__fmul_rn(b, sn));
    x1 = __fmaf_rn(a, sn, __fmul_rn(b, c));
}

__device__ __forceinline__ void rope_pair(float &x0, float &x1, int pos, float inv_freq) {
    float c, sn;
    rope_angle(pos, inv_freq, c, sn);
    rope_rotate(x0, x1, c, sn);
}

__global__ void rope_kv_kernel(float *q, float *k, const float *v, const float *inv_freq, int n_heads,
                               int n_kv_heads, int head_dim, int rope_dim, int neox, CkKV kv, int layer) {
    TL_KERNEL();
    pdl_begin();
    const int t = blockIdx.x, pos = kv.pos[t], half = rope_dim / 2;
    const int q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim;
    float *qt = q + (size_t)t * q_dim, *kt = k + (size_t)t * kv_dim;
    for (int j = threadIdx.x; j < (n_heads + n_kv_heads) * half; j += blockDim.x) {
        const int h = j / half, i = j % half;
        float *vec = h < n_heads ? qt + (size_t)h * head_dim : kt + (size_t)(h - n_heads) * head_dim;
        int a, b;
        rope_index(i, half, neox, a, b);
        rope_pair(vec[a], vec[b], pos, inv_freq[i]);
    }
    __syncthreads();
    const size_t off = kv_offset(kv, layer, kv.seq[t], pos, kv_dim);
    __half *ks = (__half *)kv.k + off, *vs = (__half *)kv.v + off;
    const float *vt = v + (size_t)t * kv_dim;
    for (int j = threadIdx.x; j < kv_dim; j += blockDim.x) {
        ks[j] = __float2half_rn(kt[j]);
        vs[j] = __float2half_rn(vt[j]);
    }
}

extern "C" void ck_rope_kv(float *q, float *k, const float *v, const float *inv_freq, int T, int n_heads,
                           int n_kv_heads, int head_dim, int rope_dim, int style, const CkKV *kv, int layer,
                           cudaStream_t s) {
    launch(rope_kv_kernel, T, 512, s, q, k, v, inv_freq, n_heads, n_kv_heads, head_dim, rope_dim,
                                     style == 1 /* ROPE_NEOX */, *kv, layer);
}

/* ---- attention: each block one (split of positions, head, entry); the last split to finish combines ---- */

/* *p += v at device scope with acquire-release ordering (generic address); returns the old value */
__device__ __forceinline__ unsigned atomic_add_acq_rel(unsigned *p, unsigned v) {
    unsigned old;
    asm volatile("atom.acq_rel.gpu.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}

#define ATTN_WARPS 4

__device__ __forceinline__ int out_at(int i, int n, int gemv_layout) {
    return gemv_layout ? xi_at(i, n) : i;
}

/* Blocks an SM must hold at once (the registers a thread may use): 5 for head_dim 128 with 8 positions a step
 * (at most 102 registers; at 110 an SM held 4, and the 7B's 560 blocks of a 612-position context took a
 * second wave) */
__host__ __device__ constexpr int attn_min_blocks(int hd, int unroll) {
    return hd == 128 && unroll == 8 ? 5 : 1;
}

/* ATTN_UNROLL: positions per warp per step, their page lookups and loads in flight together (8: a 32-position
 * split in one step, for steps of few entries; 4 keeps registers low where many blocks hide the latency).
 * A decode step's attention is a chain of dependent round trips to memory, not bandwidth, so the kernel
 * lets the next kernel launch at once and issues each load as early as its address is known: with the RoPE
 * here, the position, sequence, the first round's page entries, keys and values before the previous kernel
 * has finished (early, below), then the query and the entry's own new key and value; the first round's
 * loads before the RoPE's barriers (a round's loads branch-free: below); and the combining block reads the
 * splits' maxima and sums a split a thread and, with them, the first 32 splits' partial sums. */
template <int HD, int ATTN_UNROLL>
__global__ void __launch_bounds__(ATTN_WARPS *WARP, attn_min_blocks(HD, ATTN_UNROLL))
    attn_partial_kernel(const float *q, float *out, float *part, int max_splits, int split_len, int n_heads,
                        int n_kv_heads, CkKV kv, int layer, int gemv_layout, CkQ8 oq, unsigned *done, CkRope rope) {
    TL_KERNEL();
    constexpr int E = HD / WARP, QE = (HD + ATTN_WARPS * WARP - 1) / (ATTN_WARPS * WARP); /* per lane, per thread */
    static_assert(ATTN_WARPS * WARP >= CK_ATTN_MAX_SPLITS, "the combining block reads a split a thread");
    /* the RoPE's frequencies (never written by a forward) before the previous kernel has finished */
    const float freq = rope.k && (int)threadIdx.x < rope.rope_dim / 2 ? rope.inv_freq[threadIdx.x] : 0.0f;
    /* early: with the RoPE here (rope.k) the step's entries are of distinct sequences, so the only position of
     * the store this step writes that an entry reads is its own, which this kernel writes: the position,
     * sequence, page entries (step inputs, copied before the forward) and the first round's keys and values
     * (earlier steps') are loaded before the previous kernel has finished. Without it, ck_rope_kv wrote the
     * step's positions: everything after pdl_begin. */
    const bool early = rope.k != NULL;
    pdl_trigger(); /* before the loads below, which wait on one another */
    if (!early) pdl_begin();
    const int split = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const float *qh = q + ((size_t)t * n_heads + h) * HD;
    float qt[QE];
    auto load_q = [&]() {
#pragma unroll
        for (int j = 0; j < QE; j++) qt[j] = threadIdx.x + j * blockDim.x < HD ? qh[threadIdx.x + j * blockDim.x] : 0.0f;
    };
    if (!early) load_q(); /* with the position's and the sequence's loads */
    const int n = kv.pos[t] + 1, seq = kv.seq[t], start = split * split_len;
    if (start >= n) return;
    const int end = min(n, start + split_len);
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const int kv_dim = n_kv_heads * HD, kvh = h / (n_heads / n_kv_heads);
    const float scale = 1.0f / sqrtf((float)HD);
    /* own: this block writes the entry's own key and value (position n - 1: the RoPE is here, the split
     * holds it); it takes them from shared memory, rounded as stored, rather than reading them back */
    const bool own = early && end == n;
    __shared__ float s_q[HD], s_k[HD], s_v[HD];
    const int32_t *pages = kv.table + (size_t)seq * kv.pages_per_slot;
    const size_t layer_base = (size_t)layer * kv.n_pages * kv.page_size * kv_dim + (size_t)kvh * HD + lane;
    float kk[ATTN_UNROLL][E], vv[ATTN_UNROLL][E];
    /* the round of positions p0, p0 + ATTN_WARPS, ... (a warp's); in the first round the own position is
     * filled in after it is written. Branch-free: positions past the split read its last one (their scores are
     * masked), so that all the round's page entries go out at once, then all its keys and values (a branch per
     * position made the compiler wait for each position's loads in turn: 16 round trips a round) */
    auto fetch = [&](int p0, bool skip_own) {
        int pg[ATTN_UNROLL];
#pragma unroll
        for (int u = 0; u < ATTN_UNROLL; u++) pg[u] = pages[min(p0 + u * ATTN_WARPS, end - 1) / kv.page_size];
        __half hk[ATTN_UNROLL][E], hv[ATTN_UNROLL][E];
#pragma unroll
        for (int u = 0; u < ATTN_UNROLL; u++) {
            const int p = min(p0 + u * ATTN_WARPS, end - 1);
            const size_t off = layer_base + ((size_t)pg[u] * kv.page_size + p % kv.page_size) * kv_dim;
            const __half *kr = (const __half *)kv.k + off, *vr = (const __half *)kv.v + off;
#pragma unroll
            for (int e = 0; e < E; e++) hk[u][e] = kr[WARP * e], hv[u][e] = vr[WARP * e];
        }
#pragma unroll
        for (int u = 0; u < ATTN_UNROLL; u++) {
            const int p = p0 + u * ATTN_WARPS;
            const bool use = p < end && !(skip_own && p == n - 1);
#pragma unroll
            for (int e = 0; e < E; e++)
                kk[u][e] = use ? __half2float(hk[u][e]) : 0.0f, vv[u][e] = use ? __half2float(hv[u][e]) : 0.0f;
        }
    };
    const int first = start + warp;
    fetch(first, own);
    /* the own entry's place in the store (its page entry: a step input) and the RoPE's rotation of pair
     * threadIdx.x, while the loads above are in flight */
    const size_t own_off = own ? kv_offset(kv, layer, seq, n - 1, kv_dim) + (size_t)kvh * HD : 0;
    float rc = 0.0f, rs = 0.0f;
    if (early && (int)threadIdx.x < rope.rope_dim / 2) rope_angle(n - 1, freq, rc, rs);
    float kt[QE] = {}, vt[QE] = {};
    if (early) { /* the query and the entry's own key and value: the previous kernel's outputs */
        pdl_begin();
        load_q();
        if (own) {
            const float *kh = rope.k + ((size_t)t * n_kv_heads + kvh) * HD, *vh = rope.v + ((size_t)t * n_kv_heads + kvh) * HD;
#pragma unroll
            for (int j = 0; j < QE; j++) {
                const int i = threadIdx.x + j * blockDim.x;
                kt[j] = i < HD ? kh[i] : 0.0f, vt[j] = i < HD ? vh[i] : 0.0f;
            }
        }
    }
#pragma unroll
    for (int j = 0; j < QE; j++) {
        const int i = threadIdx.x + j * blockDim.x;
        if (i < HD) {
            s_q[i] = qt[j];
            if (own) s_k[i] = kt[j], s_v[i] = vt[j];
        }
    }
    if (early) { /* the RoPE here (CkRope): the query, and the entry's own key by the split that holds it */
        const int half = rope.rope_dim / 2;
        static_assert(HD / 2 <= ATTN_WARPS * WARP, "a thread a pair");
        __syncthreads();
        if ((int)threadIdx.x < half) {
            int a, b;
            rope_index(threadIdx.x, half, rope.neox, a, b);
            rope_rotate(s_q[a], s_q[b], rc, rs);
            if (own) rope_rotate(s_k[a], s_k[b], rc, rs);
        }
        __syncthreads();
        if (own) { /* every head of the group writes the same bits */
            for (int i = threadIdx.x; i < HD; i += blockDim.x) {
                ((__half *)kv.k)[own_off + i] = __float2half_rn(s_k[i]);
                ((__half *)kv.v)[own_off + i] = __float2half_rn(s_v[i]);
            }
#pragma unroll
            for (int u = 0; u < ATTN_UNROLL; u++)
                if (first + u * ATTN_WARPS == n - 1)
#pragma unroll
                    for (int e = 0; e < E; e++)
                        kk[u][e] = __half2float(__float2half_rn(s_k[lane + WARP * e])),
                        vv[u][e] = __half2float(__float2half_rn(s_v[lane + WARP * e]));
        }
    }
    __syncthreads();
    float qv[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) qv[e] = s_q[lane + WARP * e] * scale, acc[e] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int p0 = first; p0 < end; p0 += ATTN_WARPS * ATTN_UNROLL) {
        if (p0 != first) fetch(p0, false);
        float sc[ATTN_UNROLL];
        float m_new = m;
#pragma unroll
        for (int u = 0; u < ATTN_UNROLL; u++) {
            float d = 0.0f;
#pragma unroll
            for (int e = 0; e < E; e++) d = fmaf(qv[e], kk[u][e], d);
            sc[u] = p0 + u * ATTN_WARPS < end ? warp_sum(d) : -INFINITY;
            m_new = fmaxf(m_new, sc[u]);
        }
        const float corr = expf(m - m_new);
        l *= corr;
#pragma unroll
        for (int e = 0; e < E; e++) acc[e] *= corr;
#pragma unroll
        for (int u = 0; u < ATTN_UNROLL; u++) {
            const float pr = expf(sc[u] - m_new);
            l += pr;
#pragma unroll
            for (int e = 0; e < E; e++) acc[e] = fmaf(pr, vv[u][e], acc[e]);
        }
        m = m_new;
    }
    /* combine the warps */
    __shared__ float s_m[ATTN_WARPS], s_l[ATTN_WARPS], s_acc[ATTN_WARPS][HD];
    if (lane == 0) s_m[warp] = m, s_l[warp] = l;
#pragma unroll
    for (int e = 0; e < E; e++) s_acc[warp][lane + WARP * e] = acc[e];
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < ATTN_WARPS; w++) M = fmaxf(M, s_m[w]);
    float L = 0.0f, wgt[ATTN_WARPS];
#pragma unroll
    for (int w = 0; w < ATTN_WARPS; w++) wgt[w] = s_l[w] > 0.0f ? expf(s_m[w] - M) : 0.0f, L += s_l[w] * wgt[w];
    const bool single = n <= split_len;
    float *dst = part + (((size_t)t * n_heads + h) * max_splits + split) * (HD + 2);
    for (int i = threadIdx.x; i < HD; i += blockDim.x) {
        float a = 0.0f;
#pragma unroll
        for (int w = 0; w < ATTN_WARPS; w++) a += s_acc[w][i] * wgt[w];
        if (single) {
            out[(size_t)t * n_heads * HD + out_at(h * HD + i, n_heads * HD, gemv_layout)] = a / L;
            if (oq.qs) q8_store_unit(a / L, i % WARP, oq, t, n_heads * HD, (h * HD + i) / 32);
        } else {
            dst[2 + i] = a;
        }
    }
    if (single) return;
    /* the last of the (head, entry)'s splits to finish combines them, in split order (deterministic). The
     * barrier orders the block's partial writes before thread 0's counter update, which releases them (and,
     * for the last block, acquires the other blocks'); one thread's acq_rel atomic, not a fence by all. */
    __shared__ bool last;
    if (threadIdx.x == 0) dst[0] = M, dst[1] = L;
    __syncthreads();
    const int splits = (n + split_len - 1) / split_len;
    if (threadIdx.x == 0) last = atomic_add_acq_rel(&done[(size_t)t * n_heads + h], 1u) == (unsigned)(splits - 1);
    __syncthreads();
    if (!last) return;
    /* split k's maximum and sum by thread k and, with them, the first ATTN_PV splits' partial sums of value
     * threadIdx.x (L2 loads: the other blocks wrote them); then each value's sum over the splits, its loads
     * ATTN_PV splits at a time (a context of up to 1,024 positions: one round trip in all) */
    const float *ps = part + ((size_t)t * n_heads + h) * max_splits * (HD + 2);
    const int k = threadIdx.x;
    const float mk = k < splits ? __ldcg(ps + (size_t)k * (HD + 2)) : -INFINITY;
    const float lk = k < splits ? __ldcg(ps + (size_t)k * (HD + 2) + 1) : 0.0f;
    constexpr int ATTN_PV = 32;
    float pv[ATTN_PV];
    auto load_pv = [&](int k0, int i) {
#pragma unroll
        for (int j = 0; j < ATTN_PV; j++) pv[j] = k0 + j < splits ? __ldcg(ps + (size_t)(k0 + j) * (HD + 2) + 2 + i) : 0.0f;
    };
    if ((int)threadIdx.x < HD) load_pv(0, threadIdx.x);
    __shared__ float s_w[ATTN_WARPS * WARP], s_red[ATTN_WARPS];
    const float wm = warp_max(mk);
    if (lane == 0) s_red[warp] = wm;
    __syncthreads();
    float MM = -INFINITY;
#pragma unroll
    for (int w = 0; w < ATTN_WARPS; w++) MM = fmaxf(MM, s_red[w]);
    const float wk = k < splits ? expf(mk - MM) : 0.0f;
    s_w[k] = wk;
    const float lw = warp_sum(lk * wk);
    __syncthreads(); /* s_red read by all */
    if (lane == 0) s_red[warp] = lw;
    __syncthreads();
    float LL = 0.0f;
#pragma unroll
    for (int w = 0; w < ATTN_WARPS; w++) LL += s_red[w];
    for (int i = threadIdx.x; i < HD; i += blockDim.x) {
        float a = 0.0f;
        for (int k0 = 0; k0 < splits; k0 += ATTN_PV) {
            if (k0 > 0 || i != (int)threadIdx.x) load_pv(k0, i);
#pragma unroll
            for (int j = 0; j < ATTN_PV; j++)
                if (k0 + j < splits) a += pv[j] * s_w[k0 + j];
        }
        out[(size_t)t * n_heads * HD + out_at(h * HD + i, n_heads * HD, gemv_layout)] = a / LL;
        if (oq.qs) q8_store_unit(a / LL, i % WARP, oq, t, n_heads * HD, (h * HD + i) / 32);
    }
    if (threadIdx.x == 0) done[(size_t)t * n_heads + h] = 0; /* ready for the next launch */
}

template <int HD>
static void attention_hd(const float *q, float *out, float *part, int max_splits, int split_len, int T, int n_heads,
                         int n_kv_heads, const CkKV *kv, int layer, int gemv_layout, const CkQ8 *oq,
                         unsigned *done, const CkRope &rope, cudaStream_t s) {
    const CkQ8 q8 = oq ? *oq : CkQ8{NULL, NULL, NULL};
    if (HD <= 128 && T <= 8)
        launch((attn_partial_kernel<HD, 8>), dim3(max_splits, n_heads, T), ATTN_WARPS * WARP, s, q, out, part,
               max_splits, split_len, n_heads, n_kv_heads, *kv, layer, gemv_layout, q8, done, rope);
    else
        launch((attn_partial_kernel<HD, 4>), dim3(max_splits, n_heads, T), ATTN_WARPS * WARP, s, q, out, part,
               max_splits, split_len, n_heads, n_kv_heads, *kv, layer, gemv_layout, q8, done, rope);
}

extern "C" void ck_attention(const float *q, float *out, float *part, int max_splits, int split_len, int T,
                             int n_heads, int n_kv_heads, int head_dim, const CkKV *kv, int layer, int gemv_layout,
                             const CkQ8 *oq, unsigned *done, const CkRope *rope, cudaStream_t s) {
    const CkRope r = rope ? *rope : CkRope{};
    switch (head_dim) {
    case 64:
        attention_hd<64>(q, out, part, max_splits, split_len, T, n_heads, n_kv_heads, kv, layer, gemv_layout, oq, done, r, s);
        break;
    case 128:
        attention_hd<128>(q, out, part, max_splits, split_len, T, n_heads, n_kv_heads, kv, layer, gemv_layout, oq, done, r, s);
        break;
    case 256:
        attention_hd<256>(q, out, part, max_splits, split_len, T, n_heads, n_kv_heads, kv, layer, gemv_layout, oq, done, r, s);
        break;
    }
}

/* ---- attention for prefill: a tile of entries shares each tile of keys, on the tensor cores ----
 * One block per (TA_WARPS x 16 consecutive entries, head); warp w takes entries 16w .. 16w+15 (flash-attention
 * style: its rows' scores, running maxima and outputs stay in registers). The keys and values of one sequence
 * come through shared memory TA_BK positions at a time (fp16, as stored); the scores Q K^T and the products
 * P V are mma.sync m16n8k16 (fp16 inputs: the query scaled and rounded to fp16, the probabilities rounded to
 * fp16 after the exponent; fp32 sums), the softmax online in fp32 in base 2. A row's key past its entry's
 * position (causal) or of another sequence scores -inf; entries of other sequences in a block take further
 * rounds (a prompt's entries are consecutive, so a block rarely has two). Blocks of the latest entries (the
 * most keys) are scheduled first. */

#define TA_WARPS 4
#define TA_BQ (16 * TA_WARPS)
#define TA_BK 64

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four 8x8 fp16 matrices from shared memory, transposed: lane l names row l % 8 of matrix l / 8. */
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __half *row) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ __forceinline__ uint32_t half2_bits(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const uint32_t *)&h;
}

template <int HD>
__global__ void __launch_bounds__(TA_WARPS *WARP)
    attn_tiled_kernel(const float *q, float *out, int T, int n_heads, int n_kv_heads, CkKV kv, int layer) {
    TL_KERNEL();
    constexpr int KD = HD / 16, ND = HD / 8, NK = TA_BK / 8, LD = HD + 8; /* LD: rows 16 bytes apart in banks */
    __shared__ __align__(16) __half ks[TA_BK][LD];
    __shared__ __align__(16) __half vs[TA_BK][LD];
    __shared__ int e_seq[TA_BQ], e_pos[TA_BQ], g_seq, g_last;
    pdl_begin();
    const int h = blockIdx.y, t0 = (gridDim.x - 1 - blockIdx.x) * TA_BQ;
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP, g = lane / 4, c = lane % 4;
    const int kv_dim = n_kv_heads * HD, kvh = h / (n_heads / n_kv_heads);
    const float qscale = 1.44269504088896341f / sqrtf((float)HD); /* scores in base-2 units */
    if (tid < TA_BQ) {
        const int t = t0 + tid;
        e_seq[tid] = t < T ? kv.seq[t] : -1, e_pos[tid] = t < T ? kv.pos[t] : -1;
    }
    /* this lane's two rows of the warp's 16 (fragment rows g and g + 8), and their queries as A fragments */
    const int r0 = warp * 16 + g, r1 = r0 + 8;
    uint32_t qa[KD][4];
    {
        const float *q0 = q + ((size_t)(t0 + r0) * n_heads + h) * HD, *q1 = q + ((size_t)(t0 + r1) * n_heads + h) * HD;
        const bool v0 = t0 + r0 < T, v1 = t0 + r1 < T;
#pragma unroll
        for (int kd = 0; kd < KD; kd++) {
            const int d = kd * 16 + 2 * c;
            const float2 a0 = v0 ? *(const float2 *)(q0 + d) : make_float2(0.0f, 0.0f);
            const float2 a1 = v1 ? *(const float2 *)(q1 + d) : make_float2(0.0f, 0.0f);
            const float2 a2 = v0 ? *(const float2 *)(q0 + d + 8) : make_float2(0.0f, 0.0f);
            const float2 a3 = v1 ? *(const float2 *)(q1 + d + 8) : make_float2(0.0f, 0.0f);
            qa[kd][0] = half2_bits(a0.x * qscale, a0.y * qscale), qa[kd][1] = half2_bits(a1.x * qscale, a1.y * qscale);
            qa[kd][2] = half2_bits(a2.x * qscale, a2.y * qscale), qa[kd][3] = half2_bits(a3.x * qscale, a3.y * qscale);
        }
    }
    float o[ND][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}; /* l: this lane's part of the row sum */
#pragma unroll
    for (int nd = 0; nd < ND; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    unsigned long long done = 0; /* entries whose sequence has had its round (the same in every thread) */
    for (;;) {
        __syncthreads();
        if (tid == 0) { /* this round's sequence: the first entry not done; its entries' last position */
            int sq = -1, last = -1;
            for (int e = 0; e < TA_BQ; e++)
                if (!(done >> e & 1ull) && e_seq[e] >= 0 && (sq < 0 || e_seq[e] == sq)) sq = e_seq[e], last = max(last, e_pos[e]);
            g_seq = sq, g_last = last;
        }
        __syncthreads();
        const int sq = g_seq, last = g_last;
        if (sq < 0) break;
        /* the rows' last positions this round (-1: not in it), and the warp's */
        const int p0 = e_seq[r0] == sq && !(done >> r0 & 1ull) ? e_pos[r0] : -1;
        const int p1 = e_seq[r1] == sq && !(done >> r1 & 1ull) ? e_pos[r1] : -1;
        int wlast = max(p0, p1);
#pragma unroll
        for (int o2 = 16; o2 > 0; o2 >>= 1) wlast = max(wlast, __shfl_xor_sync(0xffffffffu, wlast, o2));
        const int32_t *pages = kv.table + (size_t)sq * kv.pages_per_slot;
        const size_t base = (size_t)layer * kv.n_pages * kv.page_size * kv_dim + (size_t)kvh * HD;
        for (int k0 = 0; k0 <= last; k0 += TA_BK) {
            __syncthreads(); /* the previous tile is used up */
            for (int i = tid; i < TA_BK * (HD / 8); i += TA_WARPS * WARP) {
                const int j = i / (HD / 8), d = i % (HD / 8) * 8, p = k0 + j;
                uint4 kk = make_uint4(0, 0, 0, 0), vv = kk;
                if (p <= last) {
                    const size_t off = base + ((size_t)pages[p / kv.page_size] * kv.page_size + p % kv.page_size) * kv_dim + d;
                    kk = *(const uint4 *)((const __half *)kv.k + off), vv = *(const uint4 *)((const __half *)kv.v + off);
                }
                *(uint4 *)&ks[j][d] = kk, *(uint4 *)&vs[j][d] = vv;
            }
            __syncthreads();
            if (k0 > wlast) continue; /* none of the warp's entries sees this tile (the same for the whole warp) */
            float sc[NK][4];
#pragma unroll
            for (int nk = 0; nk < NK; nk++) {
                sc[nk][0] = sc[nk][1] = sc[nk][2] = sc[nk][3] = 0.0f;
#pragma unroll
                for (int kd = 0; kd < KD; kd++) {
                    const __half *kr = &ks[nk * 8 + g][kd * 16 + 2 * c];
                    mma_16816(sc[nk], qa[kd], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
                }
            }
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nk = 0; nk < NK; nk++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int key = k0 + nk * 8 + 2 * c + (e & 1);
                    if (key > (e < 2 ? p0 : p1)) sc[nk][e] = -INFINITY;
                    mx[e / 2] = fmaxf(mx[e / 2], sc[nk][e]);
                }
            float base2[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                const float m_new = fmaxf(m[r], mx[r]);
                base2[r] = m_new == -INFINITY ? 0.0f : m_new; /* a row with nothing yet keeps zeros */
                const float corr = exp2f(m[r] - base2[r]);
                l[r] *= corr;
#pragma unroll
                for (int nd = 0; nd < ND; nd++) o[nd][2 * r] *= corr, o[nd][2 * r + 1] *= corr;
                m[r] = m_new;
            }
#pragma unroll
            for (int nk = 0; nk < NK; nk++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    sc[nk][e] = exp2f(sc[nk][e] - base2[e / 2]);
                    l[e / 2] += sc[nk][e];
                }
#pragma unroll
            for (int kk = 0; kk < TA_BK / 16; kk++) {
                const uint32_t pa[4] = {half2_bits(sc[2 * kk][0], sc[2 * kk][1]), half2_bits(sc[2 * kk][2], sc[2 * kk][3]),
                                        half2_bits(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                                        half2_bits(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
                const int vrow = kk * 16 + lane % 8 + 8 * (lane / 8 % 2), vcol = 8 * (lane / 16);
#pragma unroll
                for (int nd = 0; nd < ND; nd += 2) {
                    uint32_t b[4];
                    ldmatrix_x4_trans(b, &vs[vrow][nd * 8 + vcol]);
                    mma_16816(o[nd], pa, b[0], b[1]);
                    mma_16816(o[nd + 1], pa, b[2], b[3]);
                }
            }
        }
        for (int e = 0; e < TA_BQ; e++)
            if (e_seq[e] == sq) done |= 1ull << e;
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int t = t0 + (r ? r1 : r0);
        if (t >= T) continue;
        float *orow = out + ((size_t)t * n_heads + h) * HD;
        const float inv = 1.0f / l[r];
#pragma unroll
        for (int nd = 0; nd < ND; nd++)
            *(float2 *)(orow + nd * 8 + 2 * c) = make_float2(o[nd][2 * r] * inv, o[nd][2 * r + 1] * inv);
    }
}

extern "C" int ck_attention_tiled(const float *q, float *out, int T, int n_heads, int n_kv_heads, int head_dim,
                                  const CkKV *kv, int layer, cudaStream_t s) {
    const dim3 grid(blocks_for(T, TA_BQ), n_heads);
    switch (head_dim) {
    case 64:
        launch((attn_tiled_kernel<64>), grid, TA_WARPS * WARP, s, q, out, T, n_heads, n_kv_heads, *kv, layer);
        return 0;
    case 128:
        launch((attn_tiled_kernel<128>), grid, TA_WARPS * WARP, s, q, out, T, n_heads, n_kv_heads, *kv, layer);
        return 0;
    }
    return -1;
}

/* ---- greedy choice: ARGMAX_BLOCKS blocks per row each reduce a slice to (max, first index, sum of
 * exp(x - max)); the row's last block to finish combines the slices in a fixed order (deterministic).
 * Latency, not bandwidth, is the cost (a row is 0.6 MB): each thread's values are loaded together
 * (ARGMAX_VALS at a time: one round for vocabularies up to 256K), the counter's atomic releases and
 * acquires the slices (no fences), and the last block reads them a slice a thread. ---- */

#define ARGMAX_BLOCKS 128
#define ARGMAX_THREADS 256
#define ARGMAX_VALS 8

__device__ __forceinline__ void better(float &v, int &i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
}

/* (v, i) of the block's threads: the best, to every thread (s_v, s_i: ARGMAX_THREADS / WARP entries) */
__device__ __forceinline__ void block_better(float &v, int &i, float *s_v, int *s_i) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
#pragma unroll
    for (int o = WARP / 2; o > 0; o >>= 1)
        better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
    if (lane == 0) s_v[warp] = v, s_i[warp] = i;
    __syncthreads();
    v = -INFINITY, i = 0x7fffffff;
    for (int w = 0; w < ARGMAX_THREADS / WARP; w++) better(v, i, s_v[w], s_i[w]);
    __syncthreads(); /* s_v and s_i may be written again */
}

__global__ void __launch_bounds__(ARGMAX_THREADS) argmax_kernel(const float *logits, int vocab, float *part,
                                                                unsigned *done, int32_t *ids, float *logprobs) {
    TL_KERNEL();
    pdl_begin();
    __shared__ float s_v[ARGMAX_THREADS / WARP];
    __shared__ int s_i[ARGMAX_THREADS / WARP];
    __shared__ bool last;
    const int row = blockIdx.y, b = blockIdx.x;
    const float *x = logits + (size_t)row * vocab;
    const int per = (vocab + ARGMAX_BLOCKS - 1) / ARGMAX_BLOCKS, lo = b * per, hi = min(vocab, lo + per);
    float best = -INFINITY;
    int bi = 0x7fffffff;
    float v[ARGMAX_VALS] = {};
    for (int i0 = lo + threadIdx.x; i0 < hi; i0 += ARGMAX_VALS * ARGMAX_THREADS) {
#pragma unroll
        for (int j = 0; j < ARGMAX_VALS; j++) v[j] = i0 + j * ARGMAX_THREADS < hi ? x[i0 + j * ARGMAX_THREADS] : -INFINITY;
#pragma unroll
        for (int j = 0; j < ARGMAX_VALS; j++)
            if (i0 + j * ARGMAX_THREADS < hi) better(best, bi, v[j], i0 + j * ARGMAX_THREADS);
    }
    block_better(best, bi, s_v, s_i);
    const float m = best;
    float z = 0.0f;
    if (hi - lo <= ARGMAX_VALS * ARGMAX_THREADS) { /* one round: the values are still here */
#pragma unroll
        for (int j = 0; j < ARGMAX_VALS; j++) z += lo + (int)threadIdx.x + j * ARGMAX_THREADS < hi ? expf(v[j] - m) : 0.0f;
    } else {
        for (int i = lo + threadIdx.x; i < hi; i += ARGMAX_THREADS) z += expf(x[i] - m);
    }
    z = block_sum(z);
    if (threadIdx.x == 0) {
        float *p = part + ((size_t)row * ARGMAX_BLOCKS + b) * 3;
        p[0] = m, p[1] = __int_as_float(bi), p[2] = z;
        last = atomic_add_acq_rel(&done[row], 1u) == ARGMAX_BLOCKS - 1;
    }
    __syncthreads();
    if (!last) return;
    /* the last block: slice k's maximum, index and sum by thread k, all loads at once (L2: the other blocks
     * wrote them; a loop of volatile loads by one thread had made 64 round trips in turn, 23 us of a 0.5B
     * decode step) */
    static_assert(ARGMAX_BLOCKS <= ARGMAX_THREADS, "the last block reads a slice a thread");
    const float *p = part + (size_t)row * ARGMAX_BLOCKS * 3;
    const int k = threadIdx.x;
    const float mk = k < ARGMAX_BLOCKS ? __ldcg(p + 3 * k) : -INFINITY;
    const int ik = k < ARGMAX_BLOCKS ? __float_as_int(__ldcg(p + 3 * k + 1)) : 0x7fffffff;
    const float zk = k < ARGMAX_BLOCKS ? __ldcg(p + 3 * k + 2) : 0.0f;
    float M = mk;
    int I = ik;
    block_better(M, I, s_v, s_i);
    const float Z = block_sum(zk > 0.0f ? zk * expf(mk - M) : 0.0f);
    if (threadIdx.x == 0) {
        ids[row] = I;
        logprobs[row] = -logf(Z);
        done[row] = 0; /* ready for the next step */
    }
}

/* The scratch ck_argmax needs for n rows: bytes of device memory, zeroed once before the first call. */
extern "C" size_t ck_argmax_scratch(int n) {
    return (size_t)n * (ARGMAX_BLOCKS * 3 * sizeof(float) + sizeof(unsigned));
}

extern "C" void ck_argmax(const float *logits, int n, int vocab, int32_t *ids, float *logprobs, void *scratch,
                          cudaStream_t s) {
    float *part = (float *)scratch;
    unsigned *done = (unsigned *)(part + (size_t)n * ARGMAX_BLOCKS * 3);
    launch(argmax_kernel, dim3(ARGMAX_BLOCKS, n), ARGMAX_THREADS, s, logits, vocab, part, done, ids, logprobs);
}

/* ---- the k largest logits of each row (sampling candidates) ----
 * One block per slice of a row: a radix select on order-preserving 32-bit keys (8 bits a pass, four passes
 * over the slice) finds the k-th largest key; one more pass gathers the keys above it, then the ties at it
 * in order of position (the smallest ids first, as the CPU's sampler ranks them); a bitonic sort puts the
 * k best first. A long row is cut into TOPK_SLICES slices, each giving its k best, and a second launch
 * takes the k best of those (the row's k best are among them; in that list equal values stand in order
 * of id, so the ties still go to the smaller ids). */

#define TOPK_THREADS 256
#define TOPK_SLICES 32

/* larger float, larger key; -0 ranks as 0, as a float comparison sees it */
__device__ __forceinline__ unsigned topk_key(float f) {
    const unsigned u = f == 0.0f ? 0u : __float_as_uint(f);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

/* Block (c, r): positions [c * slice, (c + 1) * slice) of row r (rows of len values; ids from in_ids, or the
 * positions themselves) into place (r * gridDim.x + c) * k of vals and ids. */
__global__ void __launch_bounds__(TOPK_THREADS) topk_kernel(const float *in, const int32_t *in_ids, int len, int slice,
                                                            int k, float *vals, int32_t *ids) {
    TL_KERNEL();
    pdl_begin();
    __shared__ unsigned hist[256];
    __shared__ unsigned sel_prefix;
    __shared__ int sel_want, n_above, warp_n[TOPK_THREADS / WARP];
    __shared__ unsigned ckey[CK_TOPK_MAX];
    __shared__ int cid[CK_TOPK_MAX];
    const int c = blockIdx.x, r = blockIdx.y, c0 = c * slice, vocab = min(slice, len - c0);
    const float *x = in + (size_t)r * len + c0;
    const int32_t *xid = in_ids ? in_ids + (size_t)r * len + c0 : NULL;
    const size_t o = ((size_t)r * gridDim.x + c) * k;
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    unsigned prefix = 0, mask = 0;
    if (tid == 0) sel_want = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256; i += TOPK_THREADS) hist[i] = 0;
        __syncthreads();
        for (int i = tid; i < vocab; i += TOPK_THREADS) {
            const unsigned key = topk_key(x[i]);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1u);
        }
        __syncthreads();
        if (warp == 0) { /* the digit where the k-th largest lies, from the top: lane i holds digits 8i..8i+7 */
            const int want = sel_want; /* read by every lane before the shuffles; written by one after */
            int cnt[8], own = 0;
#pragma unroll
            for (int j = 0; j < 8; j++) own += cnt[j] = (int)hist[8 * lane + j];
            int incl = own; /* values in this lane's digits and every lane above (an inclusive suffix scan) */
#pragma unroll
            for (int o = 1; o < WARP; o *= 2) {
                const int v = __shfl_down_sync(0xffffffffu, incl, o);
                if (lane + o < WARP) incl += v;
            }
            const int excl = incl - own;
            /* the one lane whose digits hold the k-th: fewer than `want` above it, at least `want` with it */
            __syncwarp(); /* every lane has read sel_want before one writes it */
            if (excl < want && incl >= want) {
                int w = want - excl, b = 7;
                for (; b > 0 && cnt[b] < w; b--) w -= cnt[b];
                sel_want = w, sel_prefix = (unsigned)(8 * lane + b) << shift;
            }
        }
        __syncthreads();
        prefix |= sel_prefix, mask |= 255u << shift;
    }
    /* prefix is the k-th largest key; take every key above it, then sel_want of the keys equal to it */
    const int ties = sel_want, above = k - ties;
    if (tid == 0) n_above = 0;
    __syncthreads();
    for (int i = tid; i < vocab; i += TOPK_THREADS) {
        const unsigned key = topk_key(x[i]);
        if (key > prefix) {
            const int at = atomicAdd(&n_above, 1);
            ckey[at] = key, cid[at] = i;
        }
    }
    int taken = 0; /* ties in order of id: a block-wide prefix count per chunk of the row */
    for (int base = 0; base < vocab && taken < ties; base += TOPK_THREADS) {
        const int i = base + tid;
        const bool hit = i < vocab && topk_key(x[i]) == prefix;
        const unsigned ball = __ballot_sync(0xffffffffu, hit);
        __syncthreads(); /* warp_n of the previous chunk read by all */
        if (lane == 0) warp_n[warp] = __popc(ball);
        __syncthreads();
        int before = taken + __popc(ball & ((1u << lane) - 1u)), total = 0;
        for (int w = 0; w < TOPK_THREADS / WARP; w++) {
            if (w < warp) before += warp_n[w];
            total += warp_n[w];
        }
        if (hit && before < ties) ckey[above + before] = prefix, cid[above + before] = i;
        taken += total;
    }
    __syncthreads();
    /* bitonic sort of the k candidates (padded to a power of two): key descending, then id ascending */
    int n = 1;
    while (n < k) n *= 2;
    for (int i = k + tid; i < n; i += TOPK_THREADS) ckey[i] = 0, cid[i] = INT32_MAX;
    __syncthreads();
    for (int size = 2; size <= n; size *= 2)
        for (int stride = size / 2; stride > 0; stride /= 2) {
            for (int i = tid; i < n; i += TOPK_THREADS) {
                const int j = i ^ stride;
                if (j > i) {
                    const bool a_first = ckey[i] > ckey[j] || (ckey[i] == ckey[j] && cid[i] < cid[j]);
                    const bool desc = (i & size) == 0; /* this run: best first */
                    if (a_first != desc) {
                        const unsigned tk = ckey[i];
                        const int ti = cid[i];
                        ckey[i] = ckey[j], cid[i] = cid[j], ckey[j] = tk, cid[j] = ti;
                    }
                }
            }
            __syncthreads();
        }
    for (int i = tid; i < k; i += TOPK_THREADS) {
        vals[o + i] = x[cid[i]];
        ids[o + i] = xid ? xid[cid[i]] : c0 + cid[i];
    }
}

extern "C" size_t ck_topk_scratch(int n) {
    return (size_t)n * TOPK_SLICES * CK_TOPK_MAX * (sizeof(float) + sizeof(int32_t));
}

extern "C" int ck_topk(const float *logits, int n, int vocab, int k, float *vals, int32_t *ids, void *scratch,
                       cudaStream_t s) {
    if (k < 1 || k > CK_TOPK_MAX || k > vocab || n < 1) return -1;
    /* slices while each (the last too) holds at least k values: vocab / slices >= k + slices suffices */
    const int slices = min(TOPK_SLICES, vocab / (k + TOPK_SLICES));
    if (slices < 2 || !scratch) {
        launch(topk_kernel, dim3(1, n), TOPK_THREADS, s, logits, (const int32_t *)NULL, vocab, vocab, k, vals, ids);
        return 0;
    }
    float *sv = (float *)scratch;
    int32_t *si = (int32_t *)(sv + (size_t)n * slices * k);
    launch(topk_kernel, dim3(slices, n), TOPK_THREADS, s, logits, (const int32_t *)NULL, vocab, (vocab + slices - 1) / slices, k, sv, si);
    launch(topk_kernel, dim3(1, n), TOPK_THREADS, s, sv, si, slices * k, slices * k, k, vals, ids);
    return 0;
}
