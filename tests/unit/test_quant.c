/*
 * Tests of the CPU side of the tensor layouts (src/quant/): fp16/bf16 conversions, dequantization of every
 * supported type against the `gguf` Python package, Q8A quantization, and quant_vec_dot on both the
 * portable and the AVX2 path against double-precision dots of the dequantized data.
 *
 * Data: ORCD_QUANT_CASES, the file tests/quant/make_quant_cases.py writes (the reference tests skip when it
 * is unset). Everything else generates its inputs here from a fixed seed.
 *
 * Tolerances: dequantization and fp32 -> fp16 must be bit-identical to the reference (0 ulp; NaN matches
 * any NaN). quant_vec_dot must match the double dot of the dequantized row with the dequantized Q8A
 * activation within 1e-5 * sum_i |w_i a_i| (float types: with x), and the double dot with x itself within
 * the activation rounding bound sum_blocks da/2 * sum_i |w_i| (plus the same 1e-5 term).
 */
#define _POSIX_C_SOURCE 200809L
#include "../../src/gguf.h"
#include "../../src/quant.h"
#include "../../src/backend/cpu/vec.h"
#include "../../src/quant/quant_impl.h"
#include "test.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* ---------------------------------------------------------------------------------------------------- */
/* helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(void) { /* [0, 1) */
    return (double)(rng_u64() >> 11) * 0x1p-53;
}

static double rng_normal(void) {
    double u = rng_uniform(), v = rng_uniform();
    return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* distance in units in the last place; 0 for two NaNs, huge for one */
static int64_t ulp_diff(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INT64_MAX;
    int64_t ia = f32_bits(a), ib = f32_bits(b);
    if (ia & 0x80000000) ia = 0x80000000 - ia; /* order the sign-magnitude bits as integers */
    if (ib & 0x80000000) ib = 0x80000000 - ib;
    return ia > ib ? ia - ib : ib - ia;
}

static GGUFFile *open_cases(void) {
    const char *path = getenv("ORCD_QUANT_CASES");
    if (!path) {
        test_skip("ORCD_QUANT_CASES not set (python3 tests/quant/make_quant_cases.py DIR writes "
                  "DIR/quant_cases.gguf)");
        return NULL;
    }
    GGUFFile *f = NULL;
    char err[256];
    if (gguf_open(&f, path, err, sizeof err) != GGUF_OK) {
        test_fail_at(__FILE__, __LINE__, "cannot open %s: %s", path, err);
        return NULL;
    }
    return f;
}

/* The types the CPU side must handle, with what the tests need to make random rows of them. */
typedef struct TypeCase {
    uint32_t type;
    int scale_off[2]; /* byte offsets of the fp16 scale fields in a block; -1 none */
} TypeCase;

static const TypeCase TYPES[] = {
    {QT_F32, {-1, -1}},
    {QT_F16, {-1, -1}},
    {QT_BF16, {-1, -1}},
    {QT_Q4_0, {offsetof(BlockQ4_0, d), -1}},
    {QT_Q4_1, {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)}},
    {QT_Q5_0, {offsetof(BlockQ5_0, d), -1}},
    {QT_Q5_1, {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)}},
    {QT_Q8_0, {offsetof(BlockQ8_0, d), -1}},
    {QT_Q2_K, {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)}},
    {QT_Q3_K, {offsetof(BlockQ3_K, d), -1}},
    {QT_Q4_K, {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)}},
    {QT_Q5_K, {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)}},
    {QT_Q6_K, {offsetof(BlockQ6_K, d), -1}},
};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])

static int is_float_type(uint32_t t) {
    return t == QT_F32 || t == QT_F16 || t == QT_BF16;
}

static size_t row_bytes(uint32_t type, int64_t n) {
    const QuantTraits *t = quant_traits(type);
    return (size_t)(n / t->block_elems) * t->block_bytes;
}

/* A random row of n values of tc's type: random bytes, fp16 scales set to sane random values (normal
 * times 10^-4..10^0, so that fp32 sums stay far from overflow). */
static void *random_row(const TypeCase *tc, int64_t n) {
    const size_t bytes = row_bytes(tc->type, n);
    uint8_t *w = malloc(bytes);
    if (tc->type == QT_F32) {
        for (int64_t i = 0; i < n; i++) ((float *)w)[i] = (float)rng_normal();
    } else if (tc->type == QT_F16) {
        for (int64_t i = 0; i < n; i++) ((uint16_t *)w)[i] = quant_f32_to_f16((float)rng_normal());
    } else if (tc->type == QT_BF16) {
        for (int64_t i = 0; i < n; i++) ((uint16_t *)w)[i] = (uint16_t)(f32_bits((float)rng_normal()) >> 16);
    } else {
        for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rng_u64();
        const QuantTraits *t = quant_traits(tc->type);
        for (int64_t b = 0; b < n / t->block_elems; b++)
            for (int k = 0; k < 2; k++) {
                if (tc->scale_off[k] < 0) continue;
                const uint16_t h =
                    quant_f32_to_f16((float)(rng_normal() * pow(10, -(double)(rng_u64() % 5))));
                memcpy(w + b * t->block_bytes + tc->scale_off[k], &h, 2);
            }
    }
    return w;
}

static void dequant_q8a(const BlockQ8A *xq, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = xq[i / QK8A].d * (float)xq[i / QK8A].qs[i % QK8A];
}

/* ---------------------------------------------------------------------------------------------------- */
/* conversions */

TEST(quant_f16_roundtrip_all) {
    /* every fp16 value survives fp16 -> fp32 -> fp16; NaNs stay NaN (quieted), the rest bit for bit */
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = quant_f16_to_f32((uint16_t)h);
        const uint16_t back = quant_f32_to_f16(f);
        const int is_nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF);
        if (is_nan) {
            if (!isnan(f) || (back & 0x7C00) != 0x7C00 || !(back & 0x3FF) || (back & 0x8000) != (h & 0x8000))
                FAIL("fp16 NaN 0x%04x -> %g -> 0x%04x", h, (double)f, back);
        } else if (back != h) {
            FAIL("fp16 0x%04x -> %a -> 0x%04x", h, (double)f, back);
        }
    }
    ASSERT_EQ_INT(f32_bits(quant_f16_to_f32(0x0001)), f32_bits(0x1p-24f));   /* smallest subnormal */
    ASSERT_EQ_INT(f32_bits(quant_f16_to_f32(0x03FF)), f32_bits(0x3FFp-24f)); /* largest subnormal */
    ASSERT_EQ_INT(f32_bits(quant_f16_to_f32(0x7BFF)), f32_bits(65504.0f));
    ASSERT_EQ_INT(f32_bits(quant_f16_to_f32(0xFC00)), f32_bits(-INFINITY));
    ASSERT_EQ_INT(f32_bits(quant_f16_to_f32(0x8000)), f32_bits(-0.0f));
    ASSERT_EQ_INT(quant_f32_to_f16(65519.99f), 0x7BFF);
    ASSERT_EQ_INT(quant_f32_to_f16(65520.0f), 0x7C00); /* the tie above 65504 rounds to even: inf */
    ASSERT_EQ_INT(quant_f32_to_f16(0x1p-25f), 0x0000); /* tie between 0 and the smallest subnormal */
    ASSERT_EQ_INT(quant_f32_to_f16(0x1.000002p-25f), 0x0001);
    ASSERT_EQ_INT(quant_f32_to_f16(0x3p-25f), 0x0002); /* tie 1.5 ulp -> even */
    ASSERT_EQ_INT(quant_f32_to_f16(-1e-30f), 0x8000);
}

TEST(quant_bf16) {
    ASSERT_EQ_INT(f32_bits(quant_bf16_to_f32(0x3F80)), f32_bits(1.0f));
    ASSERT_EQ_INT(f32_bits(quant_bf16_to_f32(0xC2F7)), f32_bits(-123.5f));
    ASSERT(isnan(quant_bf16_to_f32(0x7FC1)));
    ASSERT(isinf(quant_bf16_to_f32(0xFF80)));
    ASSERT_EQ_INT(f32_bits(quant_bf16_to_f32(0x0001)), 0x00010000); /* fp32 subnormal, kept */
}

TEST(quant_f32_to_f16_vs_numpy) {
    GGUFFile *f = open_cases();
    if (!f) return;
    const GGUFTensor *a = gguf_find_tensor(f, "conv.f32"), *b = gguf_find_tensor(f, "conv.f16");
    if (!a || !b || a->n_elems != b->n_elems || a->type != QT_F32 || b->type != QT_F16) {
        gguf_close(f);
        FAIL("conv.f32 / conv.f16 missing or mismatched in the cases file");
    }
    const float *x = a->data;
    const uint16_t *want = b->data;
    uint64_t bad = 0, worst = 0;
    for (uint64_t i = 0; i < a->n_elems; i++) {
        const uint16_t got = quant_f32_to_f16(x[i]);
        const int both_nan = isnan(x[i]) && (got & 0x7C00) == 0x7C00 && (got & 0x3FF) &&
                             (want[i] & 0x7C00) == 0x7C00 && (want[i] & 0x3FF);
        if (got != want[i] && !both_nan && bad++ == 0) worst = i;
    }
    if (bad) {
        const uint16_t got = quant_f32_to_f16(x[worst]);
        gguf_close(f);
        FAIL("%llu of %llu differ from numpy; first: %a -> 0x%04x, numpy 0x%04x", (unsigned long long)bad,
             (unsigned long long)a->n_elems, (double)x[worst], got, want[worst]);
    }
    fprintf(stderr, "  %llu fp32 -> fp16 conversions identical to numpy\n", (unsigned long long)a->n_elems);
    gguf_close(f);
}

/* ---------------------------------------------------------------------------------------------------- */
/* dequantization against gguf.quants.dequantize */

TEST(quant_dequant_vs_gguf) {
    GGUFFile *f = open_cases();
    if (!f) return;
    for (int k = 0; k < N_TYPES; k++) {
        const uint32_t type = TYPES[k].type;
        char qname[32], rname[32];
        snprintf(qname, sizeof qname, "q.%s", quant_name(type));
        snprintf(rname, sizeof rname, "ref.%s", quant_name(type));
        const GGUFTensor *q = gguf_find_tensor(f, qname), *r = gguf_find_tensor(f, rname);
        if (!q || !r || q->type != type || r->type != QT_F32 || q->ne[0] != r->ne[0] ||
            q->ne[1] != r->ne[1]) {
            gguf_close(f);
            FAIL("%s / %s missing or mismatched in the cases file", qname, rname);
        }
        ASSERT(quant_cpu_supported(type));
        const int64_t cols = (int64_t)q->ne[0], rows = (int64_t)q->ne[1];
        const size_t rb = q->nbytes / (size_t)rows;
        float *y = malloc((size_t)cols * sizeof(float));
        int64_t worst_ulp = -1, worst_i = 0, n_nan = 0;
        float worst_got = 0, worst_want = 0;
        for (int64_t row = 0; row < rows; row++) {
            quant_dequantize_row(type, (const uint8_t *)q->data + row * rb, y, cols);
            const float *want = (const float *)r->data + row * cols;
            for (int64_t i = 0; i < cols; i++) {
                const int64_t u = ulp_diff(y[i], want[i]);
                n_nan += isnan(want[i]) != 0;
                if (u > worst_ulp) {
                    worst_ulp = u, worst_i = row * cols + i, worst_got = y[i], worst_want = want[i];
                }
            }
        }
        free(y);
        fprintf(stderr, "  %-5s %6lld values (%lld NaN): worst %lld ulp at %lld: %.9g vs gguf %.9g\n",
                quant_name(type), (long long)(rows * cols), (long long)n_nan, (long long)worst_ulp,
                (long long)worst_i, (double)worst_got, (double)worst_want);
        if (worst_ulp > 0) {
            gguf_close(f);
            FAIL("%s: dequantize differs from gguf.quants.dequantize by %lld ulp", quant_name(type),
                 (long long)worst_ulp);
        }
    }
    gguf_close(f);
}

TEST(quant_supported_types) {
    for (int k = 0; k < N_TYPES; k++) ASSERT(quant_cpu_supported(TYPES[k].type));
    ASSERT(!quant_cpu_supported(QT_Q8_1));
    ASSERT(!quant_cpu_supported(QT_IQ4_NL));
    ASSERT(!quant_cpu_supported(QT_I8));
    ASSERT(!quant_cpu_supported(QT_COUNT));
    ASSERT(!quant_cpu_supported(0xFFFFFFFFu));
}

/* ---------------------------------------------------------------------------------------------------- */
/* Q8A quantization */

/* Check one quantized block against its definition; returns 0 or fails with a message. */
static int check_q8a_block(const float *x, const BlockQ8A *b, const char *path) {
    float amax = 0;
    for (int j = 0; j < QK8A; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127, id = d != 0 ? 1 / d : 0;
    if (f32_bits(b->d) != f32_bits(d)) {
        test_fail_at(__FILE__, __LINE__, "%s: d %.9g, expected max|x|/127 = %.9g", path, (double)b->d,
                     (double)d);
        return -1;
    }
    int32_t sum = 0;
    for (int j = 0; j < QK8A; j++) {
        const int want = (int)roundf(x[j] * id);
        if (b->qs[j] != want) {
            test_fail_at(__FILE__, __LINE__, "%s: q[%d] = %d for x %.9g (d %.9g), expected %d", path, j,
                         b->qs[j], (double)x[j], (double)d, want);
            return -1;
        }
        sum += b->qs[j];
    }
    if (b->sum != sum) {
        test_fail_at(__FILE__, __LINE__, "%s: sum %d, expected %d", path, b->sum, sum);
        return -1;
    }
    return 0;
}

TEST(quant_q8a_quantize) {
    enum { N = 4864 };
    float *x = malloc(N * sizeof(float));
    BlockQ8A *y = malloc(N / QK8A * sizeof(BlockQ8A));
    for (int i = 0; i < N; i++) x[i] = (float)(rng_normal() * pow(10, (double)(i / 512) - 4));
    for (int i = 0; i < QK8A; i++) x[i] = 0;                           /* an all-zero block */
    for (int i = QK8A; i < 2 * QK8A; i++) x[i] = i % 2 ? 0.5f : -2.5f; /* exact .5 ties: d = 1 */
    x[QK8A] = 127;
    x[2 * QK8A] = 3e38f; /* huge */
    for (int path = 0; path < 2; path++) {
        quant_cpu_force_portable(path == 0);
        const char *name = quant_cpu_path();
        quant_q8a_quantize(x, y, N);
        for (int b = 0; b < N / QK8A; b++)
            if (check_q8a_block(x + b * QK8A, y + b, name)) goto done;
        ASSERT_EQ_INT(y[0].d == 0, 1);
        ASSERT_EQ_INT(y[0].sum, 0);
        ASSERT_EQ_INT(y[1].qs[1], 1); /* 0.5 -> 1, -2.5 -> -3: half away from zero */
        ASSERT_EQ_INT(y[1].qs[2], -3);
    }
    /* NaN and inf in the input: no crash, and both paths agree byte for byte (NaN is skipped by the max
     * wherever it sits in the block; codes of NaN are -127, of inf * 0 too) */
    for (int i = 0; i < 8; i++) x[100 + 37 * i] = NAN;
    x[1000] = INFINITY;
    BlockQ8A *y2 = malloc(N / QK8A * sizeof(BlockQ8A));
    quant_cpu_force_portable(1);
    quant_q8a_quantize(x, y, N);
    quant_cpu_force_portable(0);
    quant_q8a_quantize(x, y2, N);
    int mismatch = -1;
    for (int b = 0; b < N / QK8A && mismatch < 0; b++)
        if (f32_bits(y[b].d) != f32_bits(y2[b].d) || y[b].sum != y2[b].sum || memcmp(y[b].qs, y2[b].qs, QK8A))
            mismatch = b;
    if (mismatch >= 0) {
        int b = mismatch;
        test_fail_at(__FILE__, __LINE__, "block %d with NaN/inf: portable d %g sum %d vs %s d %g sum %d", b,
                     (double)y[b].d, y[b].sum, quant_cpu_path(), (double)y2[b].d, y2[b].sum);
    }
    free(y2);
    if (mismatch >= 0) goto done;
    ASSERT(!isnan(y[100 / QK8A].d));
done:
    quant_cpu_force_portable(0);
    free(x);
    free(y);
}

/* ---------------------------------------------------------------------------------------------------- */
/* quant_vec_dot */

typedef struct DotCheck {
    double got, want_q, want_x; /* the kernel; double dot with the Q8A activation; with x */
    double tol_q, tol_x;
} DotCheck;

/* Run quant_vec_dot on the current path and compute the references for row w of n values. */
static DotCheck check_dot(uint32_t type, const void *w, const float *x, const BlockQ8A *xq, int64_t n) {
    float *wd = malloc((size_t)n * sizeof(float)), *xd = malloc((size_t)n * sizeof(float));
    quant_dequantize_row(type, w, wd, n);
    const int fl = is_float_type(type);
    if (fl)
        memcpy(xd, x, (size_t)n * sizeof(float));
    else
        dequant_q8a(xq, xd, n);
    DotCheck c = {0};
    double mag = 0, act_err = 0;
    for (int64_t i = 0; i < n; i++) {
        c.want_q += (double)wd[i] * xd[i];
        c.want_x += (double)wd[i] * x[i];
        mag += fabs((double)wd[i] * xd[i]);
        if (!fl) act_err += fabs((double)wd[i]) * xq[i / QK8A].d * 0.5;
    }
    c.got = quant_vec_dot(type, w, x, fl ? NULL : xq, n);
    c.tol_q = 1e-5 * mag + 1e-30;
    c.tol_x = act_err * (1 + 1e-4) + c.tol_q;
    free(wd);
    free(xd);
    return c;
}

TEST(quant_vec_dot_random) {
    static const int64_t lengths[] = {32, 256, 896, 4864, 7, 33, 100};
    float *x = malloc(4864 * sizeof(float));
    BlockQ8A *xq = malloc(4864 / QK8A * sizeof(BlockQ8A));
    int paths = 0;
    for (int path = 0; path < 2; path++) {
        quant_cpu_force_portable(path == 0);
        const char *pname = quant_cpu_path();
        if (path == 1 && strcmp(pname, "avx2")) {
            fprintf(stderr, "  no AVX2 path on this CPU: only the portable kernels were tested\n");
            break;
        }
        paths++;
        for (int k = 0; k < N_TYPES; k++) {
            const TypeCase *tc = &TYPES[k];
            const uint32_t block = quant_traits(tc->type)->block_elems;
            double worst = 0, worst_x = 0;
            for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
                const int64_t n = lengths[li];
                if (n % block || (n % QK8A && !is_float_type(tc->type))) continue;
                for (int rep = 0; rep < 8; rep++) {
                    const double scale = pow(10, (double)(rep % 4) - 2);
                    for (int64_t i = 0; i < n; i++) x[i] = (float)(rng_normal() * scale);
                    if (n % QK8A == 0) quant_q8a_quantize(x, xq, n);
                    void *w = random_row(tc, n);
                    const DotCheck c = check_dot(tc->type, w, x, xq, n);
                    free(w);
                    if (!(fabs(c.got - c.want_q) <= c.tol_q))
                        FAIL("%s %s n=%lld: vec_dot %.9g, double dot with the Q8A activation %.9g (tol %.3g)",
                             pname, quant_name(tc->type), (long long)n, c.got, c.want_q, c.tol_q);
                    if (!(fabs(c.got - c.want_x) <= c.tol_x))
                        FAIL("%s %s n=%lld: vec_dot %.9g, double dot with x %.9g (tol %.3g)", pname,
                             quant_name(tc->type), (long long)n, c.got, c.want_x, c.tol_x);
                    worst = fmax(worst, fabs(c.got - c.want_q) / c.tol_q * 1e-5);
                    worst_x = fmax(worst_x, fabs(c.got - c.want_x) / c.tol_x);
                }
            }
            fprintf(stderr, "  %-8s %-5s worst |err| / sum|w a| = %.2g; vs x: %.2f of the rounding bound%s\n",
                    pname, quant_name(tc->type), worst, worst_x,
                    path == 1 && !quant_dot_avx2(tc->type) ? " (no AVX2 kernel: the portable one)" : "");
        }
    }
    quant_cpu_force_portable(0);
    ASSERT(paths >= 1);
    free(x);
    free(xq);
}

/* Both paths give nearly the same number (they differ only in the order of fp32 additions). */
TEST(quant_vec_dot_paths_agree) {
    quant_cpu_force_portable(0);
    if (strcmp(quant_cpu_path(), "avx2")) {
        test_skip("no AVX2 on this CPU");
        return;
    }
    enum { N = 4864 };
    float *x = malloc(N * sizeof(float));
    BlockQ8A *xq = malloc(N / QK8A * sizeof(BlockQ8A));
    for (int i = 0; i < N; i++) x[i] = (float)rng_normal();
    quant_q8a_quantize(x, xq, N);
    for (int k = 0; k < N_TYPES; k++) {
        void *w = random_row(&TYPES[k], N);
        quant_cpu_force_portable(1);
        const float a = quant_vec_dot(TYPES[k].type, w, x, xq, N);
        quant_cpu_force_portable(0);
        const float b = quant_vec_dot(TYPES[k].type, w, x, xq, N);
        free(w);
        if (!(fabsf(a - b) <= 1e-4f * fmaxf(fabsf(a), 1.0f)))
            FAIL("%s: portable %.9g vs avx2 %.9g", quant_name(TYPES[k].type), (double)a, (double)b);
    }
    free(x);
    free(xq);
}

/* Extreme blocks: every weight at its largest magnitude against activations at +-127 (the int16 pair sums
 * of maddubs must not saturate), all-zero blocks, fp16 subnormal scales; NaN/Inf scales must not crash. */
TEST(quant_vec_dot_edges) {
    enum { N = 512 };
    float x[N];
    BlockQ8A xq[N / QK8A];
    for (int path = 0; path < 2; path++) {
        quant_cpu_force_portable(path == 0);
        const char *pname = quant_cpu_path();
        if (path == 1 && strcmp(pname, "avx2")) break;
        for (int k = 0; k < N_TYPES; k++) {
            const TypeCase *tc = &TYPES[k];
            if (is_float_type(tc->type)) continue;
            const QuantTraits *t = quant_traits(tc->type);
            const size_t rb = row_bytes(tc->type, N);
            uint8_t *w = malloc(rb);
            /* fill patterns: 0x00 and 0xFF bytes are the extreme codes of every layout (for Q8_0: 0 and
             * -1; 0x80 gives -128) */
            static const uint8_t fills[] = {0x00, 0xFF, 0x80, 0x7F};
            static const uint16_t scales[] = {0x3C00 /* 1 */, 0x0001 /* subnormal */, 0x0000,
                                              0xBC00 /* -1 */};
            for (int fi = 0; fi < 4; fi++)
                for (int si = 0; si < 4; si++)
                    for (int sign = 0; sign < 3; sign++) {
                        memset(w, fills[fi], rb);
                        for (int64_t b = 0; b < N / t->block_elems; b++)
                            for (int s = 0; s < 2; s++)
                                if (tc->scale_off[s] >= 0)
                                    memcpy(w + b * t->block_bytes + tc->scale_off[s], &scales[si], 2);
                        /* activations: all +1, all -1, alternating: Q8A codes +-127 */
                        for (int i = 0; i < N; i++)
                            x[i] = sign == 0 ? 1.0f : sign == 1 ? -1.0f : (i % 2 ? 1.0f : -1.0f);
                        quant_q8a_quantize(x, xq, N);
                        const DotCheck c = check_dot(tc->type, w, x, xq, N);
                        if (!(fabs(c.got - c.want_q) <= c.tol_q))
                            FAIL("%s %s fill 0x%02x scale 0x%04x act %d: vec_dot %.9g, reference %.9g (tol "
                                 "%.3g)",
                                 pname, quant_name(tc->type), fills[fi], scales[si], sign, c.got, c.want_q,
                                 c.tol_q);
                    }
            /* NaN and inf scales: any result, no crash */
            static const uint16_t bad[] = {0x7E00, 0x7C00, 0xFC00, 0x7BFF};
            for (int si = 0; si < 4; si++) {
                for (size_t i = 0; i < rb; i++) w[i] = (uint8_t)rng_u64();
                for (int64_t b = 0; b < N / t->block_elems; b++)
                    for (int s = 0; s < 2; s++)
                        if (tc->scale_off[s] >= 0)
                            memcpy(w + b * t->block_bytes + tc->scale_off[s], &bad[si], 2);
                volatile float r = quant_vec_dot(tc->type, w, x, xq, N);
                (void)r;
                float y[N];
                quant_dequantize_row(tc->type, w, y, N);
            }
            free(w);
        }
    }
    quant_cpu_force_portable(0);
}

/* ---------------------------------------------------------------------------------------------------- */
/* quant_matmul */

/* quant_matmul of nr rows (w, contiguous) with T activations against check_dot of every pair; y has a
 * padding column that must stay untouched. Returns 0, or -1 after reporting the first mismatch. */
static int check_matmul(const TypeCase *tc, const uint8_t *w, int nr, int64_t n, const float *x, const BlockQ8A *xq,
                        int T, const char *what) {
    const size_t rb = row_bytes(tc->type, n);
    const int ldy = nr + 1, fl = is_float_type(tc->type);
    float *y = malloc((size_t)T * ldy * sizeof(float));
    for (int i = 0; i < T * ldy; i++) y[i] = -12345.0f;
    quant_matmul(tc->type, w, rb, nr, n, x, fl ? NULL : xq, T, y, ldy);
    int rc = 0;
    for (int t = 0; t < T && !rc; t++) {
        if (y[(size_t)t * ldy + nr] != -12345.0f) {
            test_fail_at(__FILE__, __LINE__, "%s %s %s: rows %d, activations %d: wrote past row %d of activation %d",
                         quant_cpu_path(), quant_name(tc->type), what, nr, T, nr, t);
            rc = -1;
        }
        for (int r = 0; r < nr && !rc; r++) {
            const DotCheck c = check_dot(tc->type, w + (size_t)r * rb, x + (size_t)t * n,
                                         fl ? NULL : xq + (size_t)t * (n / QK8A), n);
            const double got = y[(size_t)t * ldy + r];
            if (!(fabs(got - c.want_q) <= c.tol_q)) {
                test_fail_at(__FILE__, __LINE__,
                             "%s %s %s n=%lld rows %d activations %d: y[%d][%d] = %.9g, reference %.9g (tol %.3g)",
                             quant_cpu_path(), quant_name(tc->type), what, (long long)n, nr, T, t, r, got, c.want_q,
                             c.tol_q);
                rc = -1;
            }
        }
    }
    free(y);
    return rc;
}

/* Every type, both paths: row counts and activation counts around the tile sizes (1, odd, not multiples
 * of 3 or 4), random rows; then the extreme blocks of quant_vec_dot_edges (saturation of the int16 pair
 * sums) through the tiles. */
TEST(quant_matmul_tiles) {
    static const int64_t lengths[] = {256, 896, 4864};
    static const int rows[] = {1, 3, 4, 5, 9};
    static const int acts[] = {1, 2, 3, 4, 7};
    enum { MAXR = 9, MAXT = 7, MAXN = 4864 };
    float *x = malloc(MAXT * MAXN * sizeof(float));
    BlockQ8A *xq = malloc(MAXT * MAXN / QK8A * sizeof(BlockQ8A));
    for (int path = 0; path < 2; path++) {
        quant_cpu_force_portable(path == 0);
        if (path == 1 && strcmp(quant_cpu_path(), "avx2")) break;
        for (int k = 0; k < N_TYPES; k++) {
            const TypeCase *tc = &TYPES[k];
            for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
                const int64_t n = lengths[li];
                if (n % quant_traits(tc->type)->block_elems) continue;
                const size_t rb = row_bytes(tc->type, n);
                uint8_t *w = malloc(MAXR * rb);
                for (int r = 0; r < MAXR; r++) {
                    void *row = random_row(tc, n);
                    memcpy(w + r * rb, row, rb);
                    free(row);
                }
                for (int i = 0; i < MAXT * n; i++) x[i] = (float)rng_normal();
                for (int t = 0; t < MAXT; t++) quant_q8a_quantize(x + t * n, xq + t * (n / QK8A), n);
                for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                    for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++)
                        if (check_matmul(tc, w, rows[ri], n, x, xq, acts[ai], "random")) goto out;
                if (!is_float_type(tc->type)) {
                    static const uint8_t fills[] = {0x00, 0xFF, 0x80, 0x7F};
                    for (int fi = 0; fi < 4; fi++) {
                        memset(w, fills[fi], MAXR * rb);
                        const QuantTraits *t = quant_traits(tc->type);
                        for (int64_t b = 0; b < MAXR * n / t->block_elems; b++)
                            for (int s = 0; s < 2; s++)
                                if (tc->scale_off[s] >= 0) {
                                    const uint16_t one = (b + s) % 2 ? 0x3C00 : 0xBC00;
                                    memcpy(w + b * t->block_bytes + tc->scale_off[s], &one, 2);
                                }
                        for (int i = 0; i < MAXT * n; i++) x[i] = (i / n) % 2 ? (i % 2 ? 1.0f : -1.0f) : 1.0f;
                        for (int t2 = 0; t2 < MAXT; t2++) quant_q8a_quantize(x + t2 * n, xq + t2 * (n / QK8A), n);
                        if (check_matmul(tc, w, 5, n, x, xq, 7, "extreme")) goto out;
                    }
                }
                free(w);
                continue;
            out:
                free(w);
                goto done;
            }
        }
    }
done:
    quant_cpu_force_portable(0);
    free(x);
    free(xq);
}

/* ---------------------------------------------------------------------------------------------------- */
/* the CPU backend's fp32 row kernels (src/backend/cpu/vec.c): AVX2 against portable */

static double max_rel(const float *a, const float *b, int n) {
    double worst = 0, mag = 1e-30;
    for (int i = 0; i < n; i++) mag = fmax(mag, fabs((double)b[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]) / mag);
    return worst;
}

TEST(vec_kernels_paths_agree) {
    const VecKernels p = vec_kernels(1), v = vec_kernels(0);
    if (v.scores == p.scores) {
        test_skip("no AVX2 on this CPU");
        return;
    }
    enum { MAXN = 37, STRIDE = 72 };
    static const int hds[] = {64, 128, 40, 12};
    float k[MAXN * STRIDE], q[128], s1[MAXN], s2[MAXN], o1[128], o2[128];
    for (int i = 0; i < MAXN * STRIDE; i++) k[i] = (float)rng_normal();
    for (int i = 0; i < 128; i++) q[i] = (float)rng_normal();
    for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++) {
        const int hd = hds[hi], stride = hd > STRIDE ? hd : STRIDE;
        for (int n = 1; n <= MAXN && n * stride <= MAXN * STRIDE; n++) {
            p.scores(s1, q, k, n, stride, hd, 0.125f);
            v.scores(s2, q, k, n, stride, hd, 0.125f);
            if (max_rel(s2, s1, n) > 1e-5) FAIL("scores hd %d n %d: rel diff %.3g", hd, n, max_rel(s2, s1, n));
            v.softmax(s2, n);
            p.softmax(s1, n);
            if (max_rel(s2, s1, n) > 1e-5) FAIL("softmax n %d: rel diff %.3g", n, max_rel(s2, s1, n));
            for (int d = 0; d < hd; d++) o1[d] = o2[d] = (float)d;
            p.accum(o1, s1, k, n, stride, hd);
            v.accum(o2, s1, k, n, stride, hd);
            if (max_rel(o2, o1, hd) > 1e-5) FAIL("accum hd %d n %d: rel diff %.3g", hd, n, max_rel(o2, o1, hd));
        }
    }
    /* softmax of widely spread scores (exp underflows to 0 for most), and SwiGLU over the whole range of
     * exp's argument, odd lengths */
    float x1[301], x2[301], up[301];
    for (int i = 0; i < 301; i++) x1[i] = x2[i] = (float)(rng_normal() * 60), up[i] = (float)rng_normal();
    p.softmax(x1, 301);
    v.softmax(x2, 301);
    for (int i = 0; i < 301; i++)
        if (!(fabsf(x1[i] - x2[i]) <= 1e-6f + 1e-5f * x1[i])) FAIL("softmax wide [%d]: %.9g vs %.9g", i, x1[i], x2[i]);
    for (int i = 0; i < 301; i++) x1[i] = x2[i] = (float)(rng_normal() * (i % 3 ? 4 : 60));
    x1[7] = x2[7] = 100, x1[8] = x2[8] = -100, x1[9] = x2[9] = 88.5f, x1[10] = x2[10] = -89;
    p.swiglu(x1, up, 301);
    v.swiglu(x2, up, 301);
    for (int i = 0; i < 301; i++)
        if (!(fabsf(x1[i] - x2[i]) <= 1e-30f + 1e-5f * fabsf(x1[i]))) FAIL("swiglu [%d]: %.9g vs %.9g", i, x1[i], x2[i]);
    /* the greedy choice: the same index as the scalar loop (ties: the first; NaNs never win, except at 0),
     * and log-sum-exp close; lengths around the vector width */
    static const int lens[] = {1, 7, 16, 17, 301};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (int rep = 0; rep < 6; rep++) {
            const int n = lens[li];
            for (int i = 0; i < n; i++) x1[i] = (float)(int)(rng_normal() * 3); /* many ties */
            if (rep == 1 && n > 9) x1[9] = NAN;
            if (rep == 2) x1[0] = NAN;
            if (rep == 3) x1[n - 1] = 1000;
            if (rep == 4)
                for (int i = 0; i < n; i++) x1[i] = -INFINITY;
            const int a = p.argmax(x1, n), b = v.argmax(x1, n);
            if (a != b) FAIL("argmax n %d rep %d: portable %d, avx2 %d", n, rep, a, b);
            if (rep == 2 || rep == 4) continue;
            const double la = p.log_sum_exp(x1, n, x1[a]), lb = v.log_sum_exp(x1, n, x1[a]);
            if (!(fabs(la - lb) <= 1e-6 * (1 + fabs(la))) && !(isnan(la) && isnan(lb)))
                FAIL("log_sum_exp n %d rep %d: %.12g vs %.12g", n, rep, la, lb);
        }
}

/* An activation's results do not depend on the others in the call (bit for bit): the engine's promise
 * that a sequence decoded in a batch gets the tokens it gets alone rests on it. Rows 5 (a full panel and a
 * lone row), activations 1 alone against 7 together, every type, rows shorter and longer than a panel. */
TEST(quant_matmul_batch_invariant) {
    static const int64_t lengths[] = {256, 896, 4864};
    enum { NR = 5, T = 7, MAXN = 4864 };
    float *x = malloc(T * MAXN * sizeof(float)), yall[T * NR], y1[NR];
    BlockQ8A *xq = malloc(T * MAXN / QK8A * sizeof(BlockQ8A));
    for (int k = 0; k < N_TYPES; k++) {
        const TypeCase *tc = &TYPES[k];
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            const int64_t n = lengths[li];
            if (n % quant_traits(tc->type)->block_elems) continue;
            const size_t rb = row_bytes(tc->type, n);
            uint8_t *w = malloc(NR * rb);
            for (int r = 0; r < NR; r++) {
                void *row = random_row(tc, n);
                memcpy(w + r * rb, row, rb);
                free(row);
            }
            for (int i = 0; i < T * n; i++) x[i] = (float)rng_normal();
            for (int t = 0; t < T; t++) quant_q8a_quantize(x + t * n, xq + t * (n / QK8A), n);
            const BlockQ8A *q = is_float_type(tc->type) ? NULL : xq;
            quant_matmul(tc->type, w, rb, NR, n, x, q, T, yall, NR);
            for (int t = 0; t < T; t++) {
                quant_matmul(tc->type, w, rb, NR, n, x + t * n, q ? q + t * (n / QK8A) : NULL, 1, y1, NR);
                if (memcmp(y1, yall + t * NR, sizeof y1)) {
                    free(w);
                    FAIL("%s n=%lld activation %d: alone %.9g %.9g ..., in a batch of %d %.9g %.9g ...",
                         quant_name(tc->type), (long long)n, t, y1[0], y1[1], T, yall[t * NR], yall[t * NR + 1]);
                }
            }
            free(w);
        }
    }
    free(x);
    free(xq);
}

/* quant_gemv (the decode path: two rows per step where the type has a two-row kernel, rows nr/2 apart)
 * gives each row bit for bit what quant_vec_dot gives it, on both paths, for row counts odd and even. */
TEST(quant_gemv_is_vec_dot) {
    static const int64_t lengths[] = {256, 896, 4864};
    enum { MAXR = 9, MAXN = 4864 };
    float *x = malloc(MAXN * sizeof(float)), y[MAXR];
    BlockQ8A *xq = malloc(MAXN / QK8A * sizeof(BlockQ8A));
    for (int path = 0; path < 2; path++) {
        quant_cpu_force_portable(path == 0);
        if (path == 1 && strcmp(quant_cpu_path(), "avx2")) break;
        for (int k = 0; k < N_TYPES; k++) {
            const TypeCase *tc = &TYPES[k];
            for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
                const int64_t n = lengths[li];
                if (n % quant_traits(tc->type)->block_elems) continue;
                const size_t rb = row_bytes(tc->type, n);
                uint8_t *w = malloc(MAXR * rb);
                for (int r = 0; r < MAXR; r++) {
                    void *row = random_row(tc, n);
                    memcpy(w + r * rb, row, rb);
                    free(row);
                }
                for (int i = 0; i < n; i++) x[i] = (float)rng_normal();
                quant_q8a_quantize(x, xq, n);
                const BlockQ8A *q = is_float_type(tc->type) ? NULL : xq;
                for (int nr = 1; nr <= MAXR; nr++) {
                    quant_gemv(tc->type, w, rb, nr, n, x, q, y);
                    for (int r = 0; r < nr; r++) {
                        const float want = quant_vec_dot(tc->type, w + r * rb, x, q, n);
                        if (memcmp(&want, &y[r], sizeof want)) {
                            free(w);
                            quant_cpu_force_portable(0);
                            FAIL("%s path %s n=%lld rows %d: row %d %.9g, quant_vec_dot %.9g", quant_name(tc->type),
                                 quant_cpu_path(), (long long)n, nr, r, y[r], want);
                        }
                    }
                }
                free(w);
            }
        }
    }
    quant_cpu_force_portable(0);
    free(x);
    free(xq);
}
