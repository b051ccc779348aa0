/*
 * sampler: penalties, temperature and truncation over one row of logits, then a draw from xoshiro256**.
 *
 * A backend that keeps the logits may send only each row's best few (sampler_sample_top): for top-k
 * sampling and greedy choice that is the same draw on the same logits, token for token.
 *
 * Truncation without sorting the whole vocabulary: top-k by one pass with a heap (k <= HEAP_TOP_K, the
 * common case) or by quickselect; top-p and min-p on the CAND_CAP
 * best tokens, sorted; only when the answer may lie beyond those (a nearly flat distribution) is the whole
 * row sorted. Without top-p and min-p the draw walks the surviving candidates in any order. Each surviving
 * candidate's exp is taken once (a 152K vocabulary without top-k costs one exp per token of it, ~1 ms);
 * the log-probability over the whole row only when the caller asks for it.
 */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAND_CAP 1024
#define HEAP_TOP_K 256 /* top-k up to this by one pass with a heap; larger by quickselect */
_Static_assert(SAMPLER_MAX_CANDIDATES <= HEAP_TOP_K, "candidate rows take the heap path's order");

typedef struct Cand {
    int32_t id;
    float logit; /* at the temperature */
    double w;    /* exp(logit - max), once the candidate survives top-k */
} Cand;

struct Sampler {
    SamplerParams p;
    int vocab;
    uint64_t rng[4];
    Cand *cand;      /* (vocab,) scratch */
    int32_t *count;  /* (vocab,) occurrences in the penalty window, scratch */
};

/* ---------------------------------------------------------------------------------------------------- */
/* parameters */

SamplerParams sampler_defaults(void) {
    return (SamplerParams){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                           .repetition_penalty = 1.0f, .frequency_penalty = 0.0f, .presence_penalty = 0.0f,
                           .penalty_last_n = 64, .seed = 0};
}

int sampler_validate(const SamplerParams *p, char *err, size_t errlen) {
#define RANGE(field, ok, want)                                                                             \
    if (!(ok)) return snprintf(err, errlen, #field ": expected " want ", found %g", (double)p->field), -1;
    RANGE(temperature, p->temperature >= 0 && p->temperature <= 2, "0..2")
    RANGE(top_k, p->top_k >= 0, ">= 0")
    RANGE(top_p, p->top_p > 0 && p->top_p <= 1, "a value in (0, 1]")
    RANGE(min_p, p->min_p >= 0 && p->min_p <= 1, "0..1")
    RANGE(repetition_penalty, p->repetition_penalty > 0 && p->repetition_penalty <= 10, "a value in (0, 10]")
    RANGE(frequency_penalty, p->frequency_penalty >= -2 && p->frequency_penalty <= 2, "-2..2")
    RANGE(presence_penalty, p->presence_penalty >= -2 && p->presence_penalty <= 2, "-2..2")
    RANGE(penalty_last_n, p->penalty_last_n >= -1, ">= -1")
#undef RANGE
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* RNG: xoshiro256** seeded by splitmix64 (Blackman and Vigna) */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return r;
}

static double rng_uniform(uint64_t *s) { /* [0, 1) with 53 bits */
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

Sampler *sampler_create(const SamplerParams *p, int vocab_size) {
    Sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    s->vocab = vocab_size;
    s->cand = malloc((size_t)vocab_size * sizeof *s->cand);
    s->count = calloc((size_t)vocab_size, sizeof *s->count);
    if (!s->cand || !s->count) {
        sampler_free(s);
        return NULL;
    }
    sampler_reset(s, p);
    return s;
}

void sampler_reset(Sampler *s, const SamplerParams *p) {
    s->p = *p;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

void sampler_free(Sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->count);
    free(s);
}

/* ---------------------------------------------------------------------------------------------------- */
/* steps */

static int has_penalties(const SamplerParams *p) {
    return p->repetition_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

/* logit l of a token that occurs `count` times in the penalty window */
static float penalized(const SamplerParams *p, float l, int count) {
    if (p->repetition_penalty != 1.0f) l = l > 0 ? l / p->repetition_penalty : l * p->repetition_penalty;
    return l - ((float)count * p->frequency_penalty + p->presence_penalty);
}

/* s->count[t] = occurrences of t in the penalty window of hist (zero again after use: count_clear) */
static int count_window(Sampler *s, const int32_t *hist, int n) {
    const int start = s->p.penalty_last_n < 0 || s->p.penalty_last_n > n ? 0 : n - s->p.penalty_last_n;
    for (int i = start; i < n; i++)
        if (hist[i] >= 0 && hist[i] < s->vocab) s->count[hist[i]]++;
    return start;
}

static void count_clear(Sampler *s, const int32_t *hist, int start, int n) {
    for (int i = start; i < n; i++)
        if (hist[i] >= 0 && hist[i] < s->vocab) s->count[hist[i]] = 0;
}

static void apply_penalties(Sampler *s, float *logits, const int32_t *hist, int n) {
    if (!has_penalties(&s->p)) return;
    const int start = count_window(s, hist, n);
    for (int i = start; i < n; i++) {
        int t = hist[i];
        if (t < 0 || t >= s->vocab || s->count[t] == 0) continue; /* each token once */
        logits[t] = penalized(&s->p, logits[t], s->count[t]);
        s->count[t] = 0;
    }
}

static int cmp_cand(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    return x->logit < y->logit ? 1 : x->logit > y->logit ? -1 : x->id - y->id;
}

/* Move the k largest of c[0..n) to the front (unordered), by quickselect. */
static void select_top(Cand *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = c[lo + (hi - lo) / 2].logit;
        int i = lo, j = hi;
        while (i <= j) {
            while (c[i].logit > pivot) i++;
            while (c[j].logit < pivot) j--;
            if (i <= j) {
                Cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

/* (logit a, id ia) ranks before (logit b, id ib): larger logit, then smaller id */
static int ranks_before(float a, int32_t ia, float b, int32_t ib) {
    return a > b || (a == b && ia < ib);
}

/* The k best of x[0..V) (k <= HEAP_TOP_K) into c[0..k), best first, in one pass with a min-heap of k: for
 * a small top-k this reads the row once instead of writing and partitioning a candidate per token. Ties
 * go to the smaller id. Logits not yet divided by the temperature. */
static void top_k_heap(const float *x, int V, int k, Cand *c) {
    int n = 0;
    for (int i = 0; i < V; i++) {
        if (n == k && !ranks_before(x[i], i, c[0].logit, c[0].id)) continue;
        int j;
        if (n < k) { /* sift up from the end */
            j = n++;
            while (j > 0 && ranks_before(c[(j - 1) / 2].logit, c[(j - 1) / 2].id, x[i], i)) {
                c[j] = c[(j - 1) / 2];
                j = (j - 1) / 2;
            }
        } else { /* replace the worst (the root), sift down */
            j = 0;
            for (;;) {
                int w = 2 * j + 1;
                if (w >= n) break;
                if (w + 1 < n && ranks_before(c[w].logit, c[w].id, c[w + 1].logit, c[w + 1].id)) w++;
                if (!ranks_before(x[i], i, c[w].logit, c[w].id)) break; /* x is worse than both children */
                c[j] = c[w];
                j = w;
            }
        }
        c[j] = (Cand){i, x[i], 0};
    }
    qsort(c, (size_t)n, sizeof *c, cmp_cand);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int sampler_is_greedy(const Sampler *s) {
    const SamplerParams *p = &s->p;
    return p->temperature == 0.0f && p->repetition_penalty == 1.0f && p->frequency_penalty == 0.0f &&
           p->presence_penalty == 0.0f;
}

/* The draw over what top-k left, c[0..n): candidates at the temperature, cmax the largest of them (best
 * first when top-p or min-p truncate; any order otherwise): each one's exp once, top-p, min-p, then one
 * uniform from the random state. */
static int32_t draw(Sampler *s, Cand *c, int n, float cmax) {
    const SamplerParams *p = &s->p;
    double zn = 0; /* normaliser of what top-k left */
    for (int i = 0; i < n; i++) zn += c[i].w = exp((double)c[i].logit - cmax);
    if (p->top_p < 1.0f || p->min_p > 0.0f) {
        /* sort only the CAND_CAP best, unless the answer may lie beyond them */
        int m = n > CAND_CAP ? CAND_CAP : n;
        if (m < n) select_top(c, n, m);
        qsort(c, (size_t)m, sizeof *c, cmp_cand);
        if (m < n) {
            double mass = 0;
            for (int i = 0; i < m; i++) mass += c[i].w / zn;
            int more = (p->top_p < 1.0f && mass < p->top_p) ||
                       (p->min_p > 0.0f && c[m - 1].logit >= c[0].logit + logf(p->min_p));
            if (more) qsort(c, (size_t)n, sizeof *c, cmp_cand), m = n;
        }
        n = m;
        /* top-p: the smallest prefix whose probability reaches top_p */
        if (p->top_p < 1.0f) {
            double cum = 0;
            for (int i = 0; i < n; i++) {
                cum += c[i].w / zn;
                if (cum >= p->top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
        /* min-p: drop tokens less likely than min_p times the most likely */
        if (p->min_p > 0.0f) {
            double floor_logit = (double)c[0].logit + log(p->min_p);
            int keep = 1;
            while (keep < n && c[keep].logit >= floor_logit) keep++;
            n = keep;
        }
    }
    /* draw from what is left, renormalised */
    double total = 0;
    for (int i = 0; i < n; i++) total += c[i].w;
    double u = rng_uniform(s->rng) * total, acc = 0;
    int32_t chosen = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += c[i].w;
        if (u < acc) {
            chosen = c[i].id;
            break;
        }
    }
    return chosen;
}

int sampler_candidates_needed(const Sampler *s) {
    const SamplerParams *p = &s->p;
    if (p->repetition_penalty < 1.0f || p->frequency_penalty < 0.0f || p->presence_penalty < 0.0f) return 0;
    if (p->temperature == 0.0f) return 1;
    return p->top_k > 0 && p->top_k <= SAMPLER_MAX_CANDIDATES && p->top_k < s->vocab ? p->top_k : 0;
}

/* The best n_cand logits in, best first: the penalties can only lower a logit here (see
 * sampler_candidates_needed), so a candidate that keeps its logit, or whose lowered logit still beats the
 * last candidate's, still ranks before every token beyond the candidates; if the `need` best after the
 * penalties all are such, they are the `need` best of the whole row, and the rest is sampler_sample's. */
int sampler_sample_top(Sampler *s, const float *val, const int32_t *id, int n_cand, const int32_t *history,
                       int n_history, int32_t *token) {
    const SamplerParams *p = &s->p;
    const int need = sampler_candidates_needed(s);
    if (need < 1 || n_cand < need || n_cand > s->vocab) return -1;
    Cand *c = s->cand;
    for (int i = 0; i < n_cand; i++)
        if (isnan(val[i])) return -1; /* a broken row: the whole row's rules (NaN ranks nowhere there) */
    const float last = val[n_cand - 1];
    for (int i = 0; i < n_cand; i++) c[i] = (Cand){id[i], val[i], 0.0}; /* w = 1: penalized */
    if (has_penalties(p)) {
        const int start = count_window(s, history, n_history);
        for (int i = 0; i < n_cand; i++)
            if (c[i].id >= 0 && c[i].id < s->vocab && s->count[c[i].id])
                c[i].logit = penalized(p, c[i].logit, s->count[c[i].id]), c[i].w = 1.0;
        count_clear(s, history, start, n_history);
        qsort(c, (size_t)n_cand, sizeof *c, cmp_cand);
        for (int i = 0; i < need; i++)
            if (c[i].w != 0.0 && !(c[i].logit > last)) return -1; /* a token beyond may now rank here */
    }
    if (p->temperature == 0.0f) {
        *token = c[0].id;
        return 0;
    }
    for (int i = 0; i < need; i++) c[i].logit /= p->temperature, c[i].w = 0.0;
    *token = draw(s, c, need, c[0].logit);
    return 0;
}

int sampler_sample(Sampler *s, float *logits, const int32_t *history, int n_history, float *logprob) {
    const SamplerParams *p = &s->p;
    const int V = s->vocab;
    apply_penalties(s, logits, history, n_history);

    const int best = argmax(logits, V);
    const float max = logits[best];
    int chosen;
    if (p->temperature == 0.0f) {
        chosen = best;
    } else {
        /* candidates at the chosen temperature; c[0..n) is what survives truncation */
        Cand *c = s->cand;
        float cmax = max / p->temperature;
        int n = V;
        if (p->top_k > 0 && p->top_k <= HEAP_TOP_K && p->top_k < V) {
            top_k_heap(logits, V, p->top_k, c);
            n = p->top_k;
            for (int i = 0; i < n; i++) c[i].logit /= p->temperature;
        } else {
            for (int i = 0; i < V; i++) c[i] = (Cand){i, logits[i] / p->temperature, 0};
            if (p->top_k > 0 && p->top_k < V) {
                select_top(c, V, p->top_k);
                n = p->top_k;
            }
        }
        chosen = draw(s, c, n, cmax);
    }
    if (logprob) {
        double z = 0; /* sum of exp(logit - max) at temperature 1 */
        for (int i = 0; i < V; i++) z += exp((double)logits[i] - max);
        *logprob = (float)((double)logits[chosen] - max - log(z));
    }
    return chosen;
}
