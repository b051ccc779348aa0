/*
 * quant_dot: GB/s of weight bytes that quant_gemv (the decode path: one-row kernels, prefetch ahead) gets
 * through, one thread, for each type the CPU backend meets, on a matrix the size of Qwen2.5-0.5B's ffn_up (4864 rows of 896; the K-quants, whose
 * rows must be multiples of 256, on ffn_down's 896 rows of 4864: the same bytes), next to the machine's
 * single-thread memory read bandwidth.
 *
 *   cc -std=c11 -O2 -o build/quant_dot bench/quant_dot.c src/quant.c $(find src/quant -name '*.c') -lm -lpthread
 *   build/quant_dot [seconds] [TYPE...]
 *
 * Three numbers per type: "L2" runs the first rows of the matrix (about 256 KB) again and again: the
 * kernel's compute speed; "L3" the whole matrix again and again (it fits in L3, unless the machine's other
 * work evicts it); "DRAM" walks a 512 MB ring of copies of it (every byte comes from memory, as in a
 * decode step over a whole model); "tiles" is the prefill path, quant_matmul with 64 activations on the
 * matrix in L3, in GMAC/s. Times are the thread's CPU time (the machine may be shared).
 * Arguments (optional): seconds per measurement (default 0.3), then type names to run only those.
 */
#define _POSIX_C_SOURCE 200809L
#include "../src/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define RING_BYTES ((size_t)512 << 20)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_u64(void) { /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static float next_f(void) { /* roughly uniform in [-1, 1) */
    return (float)((double)(next_u64() >> 11) * 0x1p-52 - 1.0);
}

/* ---- memory bandwidth: one thread reading a buffer that does not fit in cache ---- */

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
    for (size_t i = 0; i + 64 <= n; i += 64) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
    }
    a = _mm256_add_epi64(a, b);
    return (uint64_t)_mm256_extract_epi64(a, 0) + (uint64_t)_mm256_extract_epi64(a, 3);
}
#endif

static uint64_t read_plain(const uint8_t *p, size_t n) {
    uint64_t s[4] = {0, 0, 0, 0};
    for (size_t i = 0; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t v;
            memcpy(&v, p + i + 8 * k, 8);
            s[k] += v;
        }
    return s[0] + s[1] + s[2] + s[3];
}

static double read_bandwidth(const uint8_t *buf, size_t n) {
    double best = 0;
    volatile uint64_t sink = 0;
    for (int r = 0; r < 5; r++) {
        const double t0 = now();
#if defined(__x86_64__) || defined(__i386__)
        sink += __builtin_cpu_supports("avx2") ? read_avx2(buf, n) : read_plain(buf, n);
#else
        sink += read_plain(buf, n);
#endif
        const double gbs = (double)n / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    return best;
}

/* ---- the matrices ---- */

typedef struct Case {
    uint32_t type;
    int scale_off[2]; /* fp16 scale fields per block, -1 none */
} Case;

/* in order of importance for the default models */
static const Case CASES[] = {
    {QT_Q5_0, {0, -1}},  {QT_Q8_0, {0, -1}}, {QT_Q4_K, {0, 2}},  {QT_Q6_K, {208, -1}},
    {QT_Q4_1, {0, 2}},   {QT_F16, {-1, -1}}, {QT_Q4_0, {0, -1}}, {QT_Q5_K, {0, 2}},
    {QT_BF16, {-1, -1}}, {QT_F32, {-1, -1}}, {QT_Q5_1, {0, 2}},
};

/* Fill a rows x n matrix of `c`'s type with random codes and sane fp16 scales. */
static void fill_matrix(const Case *c, uint8_t *w, int64_t rows, int64_t n) {
    const QuantTraits *t = quant_traits(c->type);
    const size_t bytes = (size_t)(rows * n / t->block_elems) * t->block_bytes;
    if (c->type == QT_F32) {
        for (size_t i = 0; i < bytes / 4; i++) ((float *)w)[i] = next_f();
    } else if (c->type == QT_F16) {
        for (size_t i = 0; i < bytes / 2; i++) ((uint16_t *)w)[i] = quant_f32_to_f16(next_f());
    } else if (c->type == QT_BF16) {
        for (size_t i = 0; i < bytes / 2;
             i++) { /* the top half of an fp32 (no subnormals: Intel CPUs slow down) */
            const float f = next_f();
            uint32_t u;
            memcpy(&u, &f, 4);
            ((uint16_t *)w)[i] = (uint16_t)(u >> 16);
        }
    } else {
        for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)next_u64();
        for (size_t b = 0; b < bytes / t->block_bytes; b++)
            for (int k = 0; k < 2; k++)
                if (c->scale_off[k] >= 0) {
                    const uint16_t h = quant_f32_to_f16(0.01f * next_f());
                    memcpy(w + b * t->block_bytes + c->scale_off[k], &h, 2);
                }
    }
}

/* Seconds per matrix-vector product over `copies` matrices of mat_bytes laid end to end in w. */
static double time_matvec(uint32_t type, const uint8_t *w, size_t mat_bytes, int copies, int64_t rows,
                          int64_t n, const float *x, const BlockQ8A *xq, float *y, double seconds) {
    const size_t rb = mat_bytes / (size_t)rows;
    int64_t done = 0;
    const double t0 = now();
    double t = t0;
    do {
        for (int m = 0; m < copies; m++, done++) quant_gemv(type, w + (size_t)m * mat_bytes, rb, rows, n, x, xq, y);
        t = now();
    } while (t - t0 < seconds);
    return (t - t0) / (double)done;
}

/* GMAC/s of quant_matmul (the tile kernels) with TILE_ACTS activations on a matrix in L3. */
#define TILE_ACTS 64
static double time_tiles(uint32_t type, const uint8_t *w, size_t mat_bytes, int64_t rows, int64_t n, const float *xs,
                         const BlockQ8A *xqs, float *ys, double seconds) {
    int64_t done = 0;
    const double t0 = now();
    double t = t0;
    do {
        quant_matmul(type, w, mat_bytes / (size_t)rows, rows, n, xs, xqs, TILE_ACTS, ys, rows);
        done++;
        t = now();
    } while (t - t0 < seconds);
    return (double)done * (double)rows * (double)n * TILE_ACTS / (t - t0) / 1e9;
}

int main(int argc, char **argv) {
    const double seconds = argc > 1 ? atof(argv[1]) : 0.3;
    uint8_t *ring = malloc(RING_BYTES);
    float *x = malloc(4864 * sizeof(float)), *y = malloc(4864 * sizeof(float));
    BlockQ8A *xq = malloc(4864 / QK8A * sizeof(BlockQ8A));
    float *xs = malloc((size_t)TILE_ACTS * 4864 * sizeof(float)), *ys = malloc((size_t)TILE_ACTS * 4864 * sizeof(float));
    BlockQ8A *xqs = malloc((size_t)TILE_ACTS * 4864 / QK8A * sizeof(BlockQ8A));
    if (!ring || !x || !y || !xq || !xs || !ys || !xqs) {
        fprintf(stderr, "quant_dot: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < RING_BYTES; i += 64) ring[i] = (uint8_t)i; /* fault the pages in */
    const double bw = read_bandwidth(ring, RING_BYTES);
    for (int i = 0; i < 4864; i++) x[i] = next_f();
    for (int i = 0; i < TILE_ACTS * 4864; i++) xs[i] = next_f();

    printf("quant_gemv, 1 thread, path %s; memory read bandwidth (1 thread, 512 MB): %.1f GB/s\n",
           quant_cpu_path(), bw);
    printf("%-5s %11s %7s %8s %8s %8s %9s %8s %10s %8s\n", "type", "matrix", "MB", "L2", "L3", "DRAM", "portable",
           "L2", "us/matvec", "tiles");
    printf("%-5s %11s %7s %8s %8s %8s %9s %8s %10s %8s\n", "", "rows x n", "", "GB/s", "GB/s", "GB/s", "L2 GB/s",
           "ns/row", "(DRAM)", "GMAC/s");
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        const Case *c = &CASES[k];
        int wanted = argc <= 2;
        for (int a = 2; a < argc; a++) wanted |= !strcmp(argv[a], quant_name(c->type));
        if (!wanted) continue;
        const QuantTraits *t = quant_traits(c->type);
        const int64_t rows = t->block_elems == 256 ? 896 : 4864, n = t->block_elems == 256 ? 4864 : 896;
        const size_t mat_bytes = (size_t)(rows * n / t->block_elems) * t->block_bytes;
        const int copies = (int)(RING_BYTES / mat_bytes);
        fill_matrix(c, ring, rows, n);
        for (int m = 1; m < copies; m++) memcpy(ring + (size_t)m * mat_bytes, ring, mat_bytes);
        quant_q8a_quantize(x, xq, n);

        const size_t rb = mat_bytes / (size_t)rows;
        const int64_t l2_rows = (int64_t)((256 << 10) / rb);
        const double l2 = time_matvec(c->type, ring, rb * (size_t)l2_rows, 1, l2_rows, n, x, xq, y, seconds);
        const double l3 = time_matvec(c->type, ring, mat_bytes, 1, rows, n, x, xq, y, seconds);
        const double dram = time_matvec(c->type, ring, mat_bytes, copies, rows, n, x, xq, y, seconds);
        for (int a = 0; a < TILE_ACTS; a++) quant_q8a_quantize(xs + (size_t)a * n, xqs + (size_t)a * (n / QK8A), n);
        const double tiles = time_tiles(c->type, ring, mat_bytes, rows, n, xs, xqs, ys, seconds);
        quant_cpu_force_portable(1);
        const double port =
            time_matvec(c->type, ring, rb * (size_t)l2_rows, 1, l2_rows, n, x, xq, y, seconds / 3);
        quant_cpu_force_portable(0);
        const double l2_bytes = (double)rb * (double)l2_rows;
        printf("%-5s %5lld x %-4lld %7.2f %8.1f %8.1f %8.1f %9.1f %8.0f %10.0f %8.1f\n", quant_name(c->type),
               (long long)rows, (long long)n, (double)mat_bytes / 1e6, l2_bytes / l2 / 1e9,
               (double)mat_bytes / l3 / 1e9, (double)mat_bytes / dram / 1e9, l2_bytes / port / 1e9,
               l2 / (double)l2_rows * 1e9, dram * 1e6, tiles);
    }

    /* the activation's quantization, once per matvec */
    const int reps = 20000;
    const double t0 = now();
    for (int r = 0; r < reps; r++) quant_q8a_quantize(x, xq, 896);
    printf("quant_q8a_quantize(896): %.0f ns\n", (now() - t0) / reps * 1e9);
    free(ring);
    free(x);
    free(y);
    free(xq);
    return 0;
}
