/*
 * server/metrics: counters and histograms, rendered as Prometheus text (see metrics.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const ROUTE_NAMES[API_CANCEL] = {"execute", "completions", "chat_completions"};

static void hist_init(Histogram *h, const double *le, int n) {
    memset(h, 0, sizeof *h);
    h->n = n;
    memcpy(h->le, le, (size_t)n * sizeof *le);
}

static void hist_observe(Histogram *h, double v) {
    int b = 0;
    while (b < h->n && v > h->le[b]) b++;
    h->count[b]++;
    h->sum += v;
    h->total++;
}

void metrics_init(Metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    static const double TTFT[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    static const double ITL[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
    hist_init(&m->ttft, TTFT, sizeof TTFT / sizeof *TTFT);
    hist_init(&m->itl, ITL, sizeof ITL / sizeof *ITL);
}

void metrics_free(Metrics *m) {
    pthread_mutex_destroy(&m->mu);
}

void metrics_request(Metrics *m, ApiKind route, bool ok, ErrCode code, int n_prompt, int n_generated) {
    if ((unsigned)route >= API_CANCEL) return;
    pthread_mutex_lock(&m->mu);
    m->requests[route][ok ? ERR_COUNT : (unsigned)code < ERR_COUNT ? code : ERR_INTERNAL]++;
    m->tokens_in += (uint64_t)(n_prompt > 0 ? n_prompt : 0);
    m->tokens_out += (uint64_t)(n_generated > 0 ? n_generated : 0);
    pthread_mutex_unlock(&m->mu);
}

void metrics_ttft(Metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->ttft, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_inter_token(Metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->itl, seconds);
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------------------------------------------- */
/* rendering */

typedef struct Buf {
    char *p;
    size_t len, cap;
    int oom;
} Buf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void bprintf(Buf *b, const char *fmt, ...) {
    for (int attempt = 0; attempt < 2 && !b->oom; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) break;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) b->oom = 1;
        else b->p = p, b->cap = cap;
    }
}

static void render_hist(Buf *b, const char *name, const char *help, const Histogram *h) {
    bprintf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->count[i];
        bprintf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    cum += h->count[h->n];
    bprintf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)cum, name,
            h->sum, name, (unsigned long long)h->total);
}

static void gauge(Buf *b, const char *name, const char *help, double v) {
    bprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v);
}

char *metrics_render(Metrics *m, const EngineStats *es, int streams_open, bool ready) {
    Buf b = {malloc(4096), 0, 4096, 0};
    if (!b.p) return NULL;
    b.p[0] = 0;
    pthread_mutex_lock(&m->mu);
    bprintf(&b, "# HELP orcd_requests_total Generation requests answered, by route and outcome.\n"
                "# TYPE orcd_requests_total counter\n");
    for (int r = 0; r < API_CANCEL; r++)
        for (int c = 0; c <= ERR_COUNT; c++)
            if (m->requests[r][c] || c == ERR_COUNT)
                bprintf(&b, "orcd_requests_total{route=\"%s\",outcome=\"%s\"} %llu\n", ROUTE_NAMES[r],
                        c == ERR_COUNT ? "OK" : err_info((ErrCode)c)->code, (unsigned long long)m->requests[r][c]);
    bprintf(&b, "# HELP orcd_prompt_tokens_total Prompt tokens of answered requests.\n"
                "# TYPE orcd_prompt_tokens_total counter\norcd_prompt_tokens_total %llu\n",
            (unsigned long long)m->tokens_in);
    bprintf(&b, "# HELP orcd_generated_tokens_total Tokens generated for answered requests.\n"
                "# TYPE orcd_generated_tokens_total counter\norcd_generated_tokens_total %llu\n",
            (unsigned long long)m->tokens_out);
    render_hist(&b, "orcd_time_to_first_token_seconds", "Request received to first token sampled.", &m->ttft);
    render_hist(&b, "orcd_inter_token_seconds", "Time between two tokens of one stream.", &m->itl);
    pthread_mutex_unlock(&m->mu);
    gauge(&b, "orcd_requests_running", "Sequences in the engine's slots.", es->running);
    gauge(&b, "orcd_queue_depth", "Requests waiting for a slot.", es->queued);
    gauge(&b, "orcd_streams_open", "Generation requests with an open connection.", streams_open);
    gauge(&b, "orcd_kv_pages_used", "KV cache pages held by sequences.", es->kv_pages_used);
    gauge(&b, "orcd_kv_pages_total", "KV cache pages in all.", es->kv_pages_total);
    gauge(&b, "orcd_kv_usage_ratio", "KV cache pages used / total.",
          es->kv_pages_total ? (double)es->kv_pages_used / es->kv_pages_total : 0);
    gauge(&b, "orcd_ready", "1 once the model is loaded and warm.", ready);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
