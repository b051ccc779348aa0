/*
 * server/metrics: counters and histograms for /metrics, in Prometheus' text exposition format (0.0.4).
 *
 *   orcd_requests_total{route,outcome}     generation requests answered (outcome "OK" or an error code)
 *   orcd_prompt_tokens_total, orcd_generated_tokens_total
 *   orcd_time_to_first_token_seconds       histogram: request received to first token sampled
 *   orcd_inter_token_seconds               histogram: between two tokens of one stream
 *   orcd_requests_running, orcd_queue_depth, orcd_streams_open
 *   orcd_kv_pages_used, orcd_kv_pages_total, orcd_kv_usage_ratio, orcd_ready
 *
 * Thread-safe: the engine thread observes token times, connection threads count requests.
 * Not here: what the engine counts (EngineStats, passed in when rendering).
 */
#ifndef ORCD_SERVER_METRICS_H
#define ORCD_SERVER_METRICS_H

#include "../engine.h"
#include "errors.h"
#include "request.h"

#include <pthread.h>
#include <stdint.h>

#define METRICS_MAX_BUCKETS 16

typedef struct Histogram {
    int n;                                  /* buckets, not counting +Inf */
    double le[METRICS_MAX_BUCKETS];         /* upper bounds in seconds, increasing */
    uint64_t count[METRICS_MAX_BUCKETS + 1]; /* per bucket (not cumulative); the last is +Inf */
    double sum;
    uint64_t total;
} Histogram;

typedef struct Metrics {
    pthread_mutex_t mu;
    uint64_t requests[API_CANCEL][ERR_COUNT + 1]; /* by route (execute, completions, chat); [ERR_COUNT] = OK */
    uint64_t tokens_in, tokens_out;
    Histogram ttft, itl;
} Metrics;

void metrics_init(Metrics *m);
void metrics_free(Metrics *m);

/* A generation request answered: ok, or ended with error `code`; with its token counts. */
void metrics_request(Metrics *m, ApiKind route, bool ok, ErrCode code, int n_prompt, int n_generated);
void metrics_ttft(Metrics *m, double seconds);
void metrics_inter_token(Metrics *m, double seconds);

/* The exposition text (malloc'd, NUL-terminated) with the engine's gauges and the server's. NULL if out
 * of memory. */
char *metrics_render(Metrics *m, const EngineStats *es, int streams_open, bool ready);

#endif
