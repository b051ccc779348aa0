/*
 * Tests of the sampler: greedy, each truncation, penalties, determinism, and the empirical distribution
 * of draws against the exact probabilities.
 */
#include "../../src/sampler.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static Sampler *make(SamplerParams p, int vocab) {
    char err[256];
    if (sampler_validate(&p, err, sizeof err)) {
        fprintf(stderr, "  invalid params: %s\n", err);
        return NULL;
    }
    return sampler_create(&p, vocab);
}

/* Draw n times from `logits` (copied each time); counts per token into out (vocab). */
static void draw(Sampler *s, const float *logits, int vocab, int n, int *out) {
    float *tmp = malloc((size_t)vocab * sizeof *tmp);
    for (int k = 0; k < n; k++) {
        memcpy(tmp, logits, (size_t)vocab * sizeof *tmp);
        out[sampler_sample(s, tmp, NULL, 0, NULL)]++;
    }
    free(tmp);
}

TEST(sampler_greedy_is_argmax) {
    SamplerParams p = sampler_defaults();
    p.temperature = 0;
    Sampler *s = make(p, 5);
    ASSERT(s);
    float l[5] = {0.1f, 2.0f, -1.0f, 1.99f, 0.0f};
    float lp;
    ASSERT_EQ_INT(sampler_sample(s, l, NULL, 0, &lp), 1);
    double z = exp(0.1) + exp(2.0) + exp(-1.0) + exp(1.99) + exp(0.0);
    ASSERT_NEAR(lp, 2.0 - log(z), 1e-5);
    sampler_free(s);
}

TEST(sampler_distribution_matches_softmax) {
    /* p = (0.5, 0.3, 0.2) at temperature 1; at temperature 2 the softmax of logits / 2 */
    const float l[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    const int N = 40000;
    for (int pass = 0; pass < 2; pass++) {
        SamplerParams p = sampler_defaults();
        p.temperature = pass ? 2.0f : 1.0f;
        p.seed = 12345;
        Sampler *s = make(p, 3);
        int counts[3] = {0};
        draw(s, l, 3, N, counts);
        double z = 0, want[3];
        for (int i = 0; i < 3; i++) z += want[i] = exp(l[i] / p.temperature);
        for (int i = 0; i < 3; i++) {
            double got = (double)counts[i] / N, sd = sqrt(want[i] / z * (1 - want[i] / z) / N);
            if (fabs(got - want[i] / z) > 5 * sd)
                FAIL("temperature %g token %d: frequency %.4f, expected %.4f (5 sd = %.4f)", p.temperature, i, got,
                     want[i] / z, 5 * sd);
        }
        sampler_free(s);
    }
}

TEST(sampler_truncation) {
    const float l[4] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f)};
    const int N = 20000;
    /* top-k 2: tokens 0 and 1 only, in ratio 4:3 */
    SamplerParams p = sampler_defaults();
    p.top_k = 2;
    Sampler *s = make(p, 4);
    int c[4] = {0};
    draw(s, l, 4, N, c);
    ASSERT_EQ_INT(c[2] + c[3], 0);
    ASSERT_NEAR((double)c[0] / N, 4.0 / 7, 0.02);
    sampler_free(s);
    /* top-p 0.65: the smallest prefix reaching 0.65 is {0, 1} (0.7) */
    p = sampler_defaults();
    p.top_p = 0.65f;
    s = make(p, 4);
    memset(c, 0, sizeof c);
    draw(s, l, 4, N, c);
    ASSERT_EQ_INT(c[2] + c[3], 0);
    ASSERT_NEAR((double)c[1] / N, 3.0 / 7, 0.02);
    sampler_free(s);
    /* min-p 0.45: keep p >= 0.18, i.e. tokens 0, 1, 2 */
    p = sampler_defaults();
    p.min_p = 0.45f;
    s = make(p, 4);
    memset(c, 0, sizeof c);
    draw(s, l, 4, N, c);
    ASSERT_EQ_INT(c[3], 0);
    ASSERT(c[2] > 0);
    sampler_free(s);
    /* top-k 1 at a high temperature is still greedy */
    p = sampler_defaults();
    p.top_k = 1;
    p.temperature = 2;
    s = make(p, 4);
    memset(c, 0, sizeof c);
    draw(s, l, 4, 1000, c);
    ASSERT_EQ_INT(c[0], 1000);
    sampler_free(s);
}

TEST(sampler_large_vocab_paths) {
    /* 151936 logits: one peaked row (the top-p answer lies among the best 1024) and one flat row (it does
     * not, so the whole row is sorted); every draw must come from the right set. */
    const int V = 151936;
    float *l = malloc(V * sizeof *l);
    SamplerParams p = sampler_defaults();
    p.top_p = 0.9f;
    p.seed = 7;
    Sampler *s = make(p, V);
    for (int i = 0; i < V; i++) l[i] = -10.0f;
    l[5] = 5.0f, l[77] = 4.0f, l[150000] = 4.5f;
    int *c = calloc(V, sizeof *c);
    draw(s, l, V, 2000, c);
    ASSERT_EQ_INT(c[5] + c[77] + c[150000], 2000);
    for (int i = 0; i < V; i++) l[i] = (float)(i % 1000) * 1e-4f; /* nearly flat */
    memset(c, 0, V * sizeof *c);
    draw(s, l, V, 200, c);
    int n = 0;
    for (int i = 0; i < V; i++) n += c[i];
    ASSERT_EQ_INT(n, 200);
    sampler_free(s);
    free(l);
    free(c);
}

/* top-k over a 152K row with many tied logits: the one-pass heap (k <= 256) draws only from the k best
 * (ties to the smaller id), quickselect (larger k) only from tokens at least as likely as the k-th (its
 * ties go either way); both with the softmax's frequency for the best token. */
TEST(sampler_top_k_large_vocab) {
    const int V = 151936;
    float *l = malloc(V * sizeof *l);
    uint32_t r = 12345;
    for (int i = 0; i < V; i++) {
        r = r * 1664525u + 1013904223u;
        l[i] = (float)(r >> 24) * 0.05f; /* 256 levels: many ties, also at the k-th place */
    }
    int *idx = malloc(V * sizeof *idx);
    test_rank(l, V, idx);
    char *in_top = malloc(V);
    int *c = calloc(V, sizeof *c);
    const int ks[] = {1, 40, 256, 300};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int k = ks[ki], heap = k <= 256, N = heap ? 1500 : 300;
        memset(in_top, 0, V);
        for (int i = 0; i < k; i++) in_top[idx[i]] = 1;
        SamplerParams p = sampler_defaults();
        p.top_k = k;
        p.seed = 99;
        Sampler *s = make(p, V);
        memset(c, 0, V * sizeof *c);
        draw(s, l, V, N, c);
        int outside = 0;
        double z = 0;
        for (int i = 0; i < V; i++) outside += c[i] && (heap ? !in_top[i] : l[i] < l[idx[k - 1]]);
        for (int i = 0; i < k; i++) z += exp(l[idx[i]] - l[idx[0]]);
        if (outside) FAIL("top-k %d: %d tokens drawn from outside the %d best", k, outside, k);
        const double want = exp(l[idx[0]] - l[idx[0]]) / z, got = (double)c[idx[0]] / N;
        if (fabs(got - want) > 5 * sqrt(want * (1 - want) / N) + 1e-9)
            FAIL("top-k %d: the best token drawn %.4f of the time, expected %.4f", k, got, want);
        sampler_free(s);
    }
    free(l), free(idx), free(in_top), free(c);
}

TEST(sampler_same_seed_same_tokens) {
    const int V = 1000;
    float *l = malloc(V * sizeof *l), *t = malloc(V * sizeof *t);
    for (int i = 0; i < V; i++) l[i] = sinf((float)i) * 3;
    SamplerParams p = sampler_defaults();
    p.temperature = 0.9f, p.top_p = 0.95f, p.top_k = 50, p.seed = 99;
    Sampler *a = make(p, V), *b = make(p, V);
    p.seed = 100;
    Sampler *d = make(p, V);
    int differ = 0;
    for (int k = 0; k < 200; k++) {
        memcpy(t, l, V * sizeof *t);
        int x = sampler_sample(a, t, NULL, 0, NULL);
        memcpy(t, l, V * sizeof *t);
        int y = sampler_sample(b, t, NULL, 0, NULL);
        memcpy(t, l, V * sizeof *t);
        differ += sampler_sample(d, t, NULL, 0, NULL) != x;
        if (x != y) FAIL("draw %d: %d != %d with the same seed", k, x, y);
    }
    ASSERT(differ > 0);
    sampler_free(a), sampler_free(b), sampler_free(d);
    free(l), free(t);
}

TEST(sampler_penalties) {
    SamplerParams p = sampler_defaults();
    p.temperature = 0;
    p.repetition_penalty = 2.0f;
    Sampler *s = make(p, 3);
    int32_t hist[] = {0, 0, 2};
    float l[3] = {3.0f, 2.0f, -1.0f};
    ASSERT_EQ_INT(sampler_sample(s, l, hist, 3, NULL), 1); /* 3 / 2 = 1.5 < 2 */
    ASSERT_NEAR(l[0], 1.5, 1e-6);
    ASSERT_NEAR(l[2], -2.0, 1e-6); /* negative logits are multiplied */
    sampler_free(s);
    p = sampler_defaults();
    p.temperature = 0;
    p.frequency_penalty = 0.5f, p.presence_penalty = 0.25f;
    s = make(p, 3);
    float m[3] = {3.0f, 2.0f, -1.0f};
    sampler_sample(s, m, hist, 3, NULL);
    ASSERT_NEAR(m[0], 3.0 - 2 * 0.5 - 0.25, 1e-6);
    ASSERT_NEAR(m[2], -1.0 - 0.5 - 0.25, 1e-6);
    ASSERT_NEAR(m[1], 2.0, 0);
    sampler_free(s);
    /* the window: only the last token counts */
    p = sampler_defaults();
    p.temperature = 0, p.presence_penalty = 1.0f, p.penalty_last_n = 1;
    s = make(p, 3);
    float q[3] = {3.0f, 2.0f, -1.0f};
    sampler_sample(s, q, hist, 3, NULL);
    ASSERT_NEAR(q[0], 3.0, 0);
    ASSERT_NEAR(q[2], -2.0, 1e-6);
    sampler_free(s);
}

TEST(sampler_validate_ranges) {
    char err[256];
    SamplerParams p = sampler_defaults();
    ASSERT_EQ_INT(sampler_validate(&p, err, sizeof err), 0);
    p.temperature = -0.1f;
    ASSERT_EQ_INT(sampler_validate(&p, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "temperature: expected 0..2, found -0.1");
    p = sampler_defaults(), p.top_p = 0;
    ASSERT_EQ_INT(sampler_validate(&p, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "top_p");
    p = sampler_defaults(), p.top_k = -1;
    ASSERT_EQ_INT(sampler_validate(&p, err, sizeof err), -1);
    p = sampler_defaults(), p.min_p = 1.5f;
    ASSERT_EQ_INT(sampler_validate(&p, err, sizeof err), -1);
    p = sampler_defaults(), p.repetition_penalty = 0;
    ASSERT_EQ_INT(sampler_validate(&p, err, sizeof err), -1);
    p = sampler_defaults(), p.presence_penalty = 3;
    ASSERT_EQ_INT(sampler_validate(&p, err, sizeof err), -1);
    p = sampler_defaults(), p.temperature = NAN;
    ASSERT_EQ_INT(sampler_validate(&p, err, sizeof err), -1);
}

/* sampler_sample_top on a row's best candidates chooses what sampler_sample chooses on the whole row, token
 * for token from the same seed: greedy, top-k with top-p / min-p, with penalties (which may push a
 * candidate below the tokens beyond: then -1, nothing consumed, and the whole row decides), on rows with
 * many ties. Parameters that need the whole row (no top-k, a penalty that raises) get 0 from
 * sampler_candidates_needed and -1 from sampler_sample_top. */
TEST(sampler_top_candidates_match_whole_row) {
    const int V = 5000, steps = 40;
    float *row = malloc(V * sizeof *row), *tmp = malloc(V * sizeof *tmp), *val = malloc(V * sizeof *val);
    int32_t *id = malloc(V * sizeof *id), *order = malloc(V * sizeof *order), hist[64];
    uint32_t x = 12345;
    int fallbacks = 0, fast = 0;
    for (int variant = 0; variant < 8; variant++) {
        SamplerParams p = sampler_defaults();
        p.seed = 1000 + (uint64_t)variant;
        p.temperature = variant == 0 ? 0.0f : 0.7f + 0.1f * variant;
        p.top_k = variant == 0 ? 0 : variant % 2 ? 40 : 7;
        if (variant == 3) p.top_p = 0.8f;
        if (variant == 4) p.min_p = 0.2f;
        if (variant >= 5) p.repetition_penalty = 1.3f, p.frequency_penalty = 0.5f, p.presence_penalty = 0.2f;
        if (variant == 7) p.top_k = 256;
        Sampler *a = make(p, V), *b = make(p, V);
        ASSERT(a && b);
        const int n_cand = variant == 6 ? p.top_k + 2 : p.temperature == 0.0f ? 3 : p.top_k + 20 > 256 ? 256 : p.top_k + 20;
        ASSERT_EQ_INT(sampler_candidates_needed(a), p.temperature == 0.0f ? 1 : p.top_k);
        for (int step = 0; step < steps; step++) {
            for (int i = 0; i < V; i++) {
                x = x * 1664525u + 1013904223u;
                row[i] = step % 2 ? (float)((x >> 20) % 9) * 0.5f : (float)(x >> 8) / (1 << 24) * 6.0f; /* ties */
            }
            /* the n_cand best, as a backend sends them */
            test_rank(row, V, order);
            for (int i = 0; i < n_cand; i++) id[i] = order[i], val[i] = row[order[i]];
            for (int i = 0; i < 64; i++) { /* a history that hits the best tokens, so that penalties bite */
                x = x * 1664525u + 1013904223u;
                hist[i] = i % 2 ? order[(x >> 10) % 60] : (int32_t)((x >> 10) % V);
            }
            memcpy(tmp, row, V * sizeof *tmp);
            const int whole = sampler_sample(a, tmp, hist, 64, NULL);
            int32_t got;
            if (sampler_sample_top(b, val, id, n_cand, hist, 64, &got) == 0) {
                fast++;
                ASSERT_EQ_INT(got, whole);
            } else {
                fallbacks++;
                memcpy(tmp, row, V * sizeof *tmp);
                ASSERT_EQ_INT(sampler_sample(b, tmp, hist, 64, NULL), whole);
            }
        }
        sampler_free(a), sampler_free(b);
    }
    fprintf(stderr, "  %d steps from candidates, %d from the whole row\n", fast, fallbacks);
    ASSERT(fast > 150 && fallbacks > 20); /* both paths taken */
    /* parameters that need the whole row */
    SamplerParams q = sampler_defaults();
    q.top_k = 0;
    Sampler *s = make(q, V);
    ASSERT_EQ_INT(sampler_candidates_needed(s), 0);
    int32_t t;
    ASSERT_EQ_INT(sampler_sample_top(s, val, id, 10, NULL, 0, &t), -1);
    sampler_free(s);
    q.top_k = 5, q.repetition_penalty = 0.9f;
    s = make(q, V);
    ASSERT_EQ_INT(sampler_candidates_needed(s), 0);
    sampler_free(s);
    q.repetition_penalty = 1.0f;
    s = make(q, V);
    ASSERT_EQ_INT(sampler_candidates_needed(s), 5);
    ASSERT_EQ_INT(sampler_sample_top(s, val, id, 4, NULL, 0, &t), -1); /* fewer than top-k */
    val[2] = NAN; /* a broken row: the whole row's rules decide */
    ASSERT_EQ_INT(sampler_sample_top(s, val, id, 10, NULL, 0, &t), -1);
    sampler_free(s);
    free(row), free(tmp), free(val), free(id), free(order);
}
